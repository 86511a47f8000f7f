"""The outbox sweep: readings still unevaluated after the grace are enqueued again."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import enqueue_all_on_commit
from monitoring.models import Reading

logger = logging.getLogger(__name__)


# The patients with readings waiting, found one patient at a time in the partial index
# reading_unevaluated (patient, received_at) WHERE evaluated_at IS NULL: each step is the
# next patient id in it (a min() the index answers from its first entry), then whether that
# patient has a reading received before the cutoff and not marked failed. A backlog of
# 243,000 readings after an outage costs one probe per patient, not a read of every row.
# Readings marked failed are left out: evaluating one again fails again, every minute; an
# operator retries them (retry_failed_evaluations) once the cause is fixed.
TABLE = Reading._meta.db_table
PATIENTS_WAITING = f"""
WITH RECURSIVE pending (patient_id) AS (
    SELECT min(patient_id) FROM {TABLE}
    WHERE evaluated_at IS NULL AND patient_id > %(after)s
    UNION ALL
    SELECT (
        SELECT min(later.patient_id) FROM {TABLE} AS later
        WHERE later.evaluated_at IS NULL AND later.patient_id > pending.patient_id
    )
    FROM pending WHERE pending.patient_id IS NOT NULL
)
SELECT patient_id FROM pending
WHERE patient_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM {TABLE} AS waiting
    WHERE waiting.patient_id = pending.patient_id
      AND waiting.evaluated_at IS NULL
      AND waiting.evaluation_failed_at IS NULL
      AND waiting.received_at < %(cutoff)s
)
LIMIT %(limit)s
"""


def patients_waiting(*, received_before: datetime, after_patient_id: int, limit: int) -> list[int]:
    """Ids (ascending, after `after_patient_id`) of up to `limit` patients with a reading
    unevaluated, not marked failed, received before `received_before`."""
    with connection.cursor() as cursor:
        cursor.execute(
            PATIENTS_WAITING,
            {
                "after": after_patient_id,
                "cutoff": connection.ops.adapt_datetimefield_value(received_before),
                "limit": limit,
            },
        )
        return [patient_id for (patient_id,) in cursor.fetchall()]


def enqueue_unevaluated_readings(
    *, now: datetime | None = None, after_patient_id: int | None = None
) -> int:
    """Enqueue an evaluation for each patient with readings waiting longer than the grace
    (not counting readings whose evaluation failed: they wait for an operator).

    Enqueues, after commit: one evaluation task per such patient, at most VIGIL_SWEEP_BATCH
    of them in patient id order after `after_patient_id`, and, when more remain, the sweep
    itself again to carry on after the last of them. Returns the number of patients enqueued.
    """
    now = now or timezone.now()
    cutoff = now - settings.VIGIL_EVALUATION_GRACE
    limit = settings.VIGIL_SWEEP_BATCH
    patient_ids = patients_waiting(
        received_before=cutoff, after_patient_id=after_patient_id or 0, limit=limit + 1
    )
    batch, more = patient_ids[:limit], len(patient_ids) > limit

    messages = [
        ("monitoring.tasks.evaluate_patient_readings_task", (patient_id,), {})
        for patient_id in batch
    ]
    if more:
        messages.append(
            (
                "monitoring.tasks.enqueue_unevaluated_readings_task",
                (),
                {"after_patient_id": batch[-1]},
            )
        )
    # One hook for the batch, which stops at the first failed publish (a hung broker costs
    # one socket timeout, not one per patient); the next sweep enqueues the rest.
    enqueue_all_on_commit(messages)
    if batch:
        logger.info("evaluation sweep enqueued %s patients", len(batch))
    return len(batch)
