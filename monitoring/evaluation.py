"""Evaluation of stored readings, and the sweep that makes sure none is left waiting.

The rules engine plugs in here; until it does, evaluating a patient's readings only marks
them evaluated. The database row is the outbox: `evaluated_at IS NULL` means "still to do",
whatever happened to the task that was meant to do it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.models import Reading

logger = logging.getLogger(__name__)


def evaluate_pending_readings(*, patient_id: int, now: datetime | None = None) -> int:
    """Evaluate the patient's readings not yet evaluated; return how many were.

    Writes: Reading.evaluated_at. Idempotent: the conditional UPDATE touches only rows still
    pending, so a second run (redelivery, two workers) changes nothing.
    """
    now = now or timezone.now()
    return Reading.objects.filter(patient_id=patient_id, evaluated_at__isnull=True).update(
        evaluated_at=now
    )


def enqueue_unevaluated_readings(*, now: datetime | None = None) -> int:
    """Enqueue an evaluation for each patient with readings waiting longer than the grace.

    Enqueues: one evaluation task per such patient (at most VIGIL_SWEEP_BATCH), and the sweep
    itself again when more patients remain. Returns the number of patients enqueued.
    """
    from monitoring.tasks import enqueue_unevaluated_readings_task, evaluate_patient_readings_task

    now = now or timezone.now()
    cutoff = now - settings.VIGIL_EVALUATION_GRACE
    limit = settings.VIGIL_SWEEP_BATCH
    patient_ids = list(
        Reading.objects.filter(evaluated_at__isnull=True, received_at__lt=cutoff)
        .order_by()
        .values_list("patient_id", flat=True)
        .distinct()[: limit + 1]
    )
    for patient_id in patient_ids[:limit]:
        transaction.on_commit(
            partial(evaluate_patient_readings_task.delay, patient_id), robust=True
        )
    if len(patient_ids) > limit:
        transaction.on_commit(enqueue_unevaluated_readings_task.delay, robust=True)
    if patient_ids:
        logger.info("evaluation sweep enqueued %s patients", min(len(patient_ids), limit))
    return min(len(patient_ids), limit)
