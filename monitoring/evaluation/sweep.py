"""The outbox sweep: readings still unevaluated after the grace are enqueued again."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from config.celery import enqueue_all_on_commit
from monitoring.models import Reading

logger = logging.getLogger(__name__)


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
    # Not the readings marked failed: evaluating one again fails again, every minute; an
    # operator retries them (retry_failed_evaluations) once the cause is fixed. The partial
    # index reading_unevaluated serves this (the failed rows in it are few).
    pending = Reading.objects.filter(
        evaluated_at__isnull=True, evaluation_failed_at__isnull=True, received_at__lt=cutoff
    )
    if after_patient_id is not None:
        # Carry on after the previous batch rather than start over: that batch may still be
        # pending (in flight, or failing every time), and would be picked again and again.
        pending = pending.filter(patient_id__gt=after_patient_id)
    patient_ids = list(
        pending.order_by("patient_id").values_list("patient_id", flat=True).distinct()[: limit + 1]
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
