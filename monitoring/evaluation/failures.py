"""Readings whose evaluation failed: marking them, counting them, retrying them.

A reading that makes its evaluation raise, evaluated alone, is marked failed
(`evaluation_failed_at`, `evaluation_error`) and stays unevaluated: the patient's other
readings and later ones are evaluated without it, the sweep leaves it (retrying a bug every
minute changes nothing), /healthz reports it, and an operator retries it from the admin once
the cause is fixed.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count, Q

from config.celery import enqueue_on_commit
from monitoring.models import Reading

logger = logging.getLogger(__name__)

# Errors about the run, not about a reading: a database that failed over or deadlocked, a
# lost connection, the task's time running out. The task retries an OperationalError
# (tasks.py RETRY), the sweep re-enqueues whatever is still pending; no reading is marked.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, SoftTimeLimitExceeded)
ERROR_LENGTH = Reading._meta.get_field("evaluation_error").max_length


def describe_error(error: BaseException) -> str:
    """The error's class and the last line of Vigil's own code it passed through, e.g.
    "OverflowError at monitoring/schedules/slots.py:93 in slots_between" (a library's frame
    when none is Vigil's). Never its message: a message may quote the reading's value or
    date (Python's and PostgreSQL's often do)."""
    frames = traceback.extract_tb(error.__traceback__)
    text = type(error).__name__
    if frames:
        frame = ([f for f in frames if _own_code(f.filename)] or frames)[-1]
        path = Path(frame.filename)
        if _own_code(frame.filename):
            path = path.relative_to(settings.BASE_DIR)
        text += f" at {path}:{frame.lineno} in {frame.name}"
    return text[:ERROR_LENGTH]


# Vigil's top-level packages. Installed from the wheel, BASE_DIR is site-packages, where only
# these are Vigil's own code; in a source tree, all of it but the virtualenv is.
VIGIL_PACKAGES = frozenset({"config", "monitoring", "alerts", "delivery"})


def _own_code(filename: str) -> bool:
    path = Path(filename)
    if not path.is_relative_to(settings.BASE_DIR):
        return False
    return (
        path.relative_to(settings.BASE_DIR).parts[0] in VIGIL_PACKAGES
        or "site-packages" not in path.parts
    )


def mark_evaluation_failed(
    *, reading_id: int, patient_id: int, error: BaseException, now: datetime
) -> bool:
    """Record that evaluating this reading raised `error`; returns whether it was marked
    (not if it was evaluated meanwhile, by a run that did not fail).

    Writes: Reading.evaluation_failed_at and evaluation_error. Logs the traceback once, here:
    the sweep does not try the reading again. Ids and the error's class only, no message.
    """
    marked = Reading.objects.filter(pk=reading_id, evaluated_at__isnull=True).update(
        evaluation_failed_at=now, evaluation_error=describe_error(error)
    )
    if marked:
        logger.error(
            "evaluation of reading %s of patient %s failed with %s; marked failed, not "
            "retried until an operator does\n%s",
            reading_id,
            patient_id,
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)).rstrip(),
        )
    return bool(marked)


@dataclass(frozen=True)
class EvaluationBacklog:
    overdue: int  # readings unevaluated for longer than VIGIL_EVALUATION_GRACE, failed included
    failed: int  # readings whose evaluation failed, waiting for an operator

    @property
    def healthy(self) -> bool:
        return not (self.overdue or self.failed)


def evaluation_backlog(*, now: datetime) -> EvaluationBacklog:
    """What waits for evaluation: one query over the partial index of unevaluated readings
    (reading_unevaluated), which holds the failed ones too."""
    counts = Reading.objects.filter(evaluated_at__isnull=True).aggregate(
        overdue=Count("pk", filter=Q(received_at__lt=now - settings.VIGIL_EVALUATION_GRACE)),
        failed=Count("pk", filter=Q(evaluation_failed_at__isnull=False)),
    )
    return EvaluationBacklog(overdue=counts["overdue"], failed=counts["failed"])


def retry_failed_evaluations(*, reading_ids: list[int]) -> int:
    """Clear the failure mark of those of these readings whose evaluation failed, and
    evaluate them again; returns how many were marked.

    Writes: Reading.evaluation_failed_at and evaluation_error, back to empty. Enqueues after
    commit: one evaluation task per patient of those readings. A reading that fails again is
    marked again.
    """
    with transaction.atomic():
        failed = Reading.objects.filter(
            pk__in=reading_ids, evaluated_at__isnull=True, evaluation_failed_at__isnull=False
        )
        patient_ids = sorted(set(failed.values_list("patient_id", flat=True)))
        cleared = failed.update(evaluation_failed_at=None, evaluation_error="")
        for patient_id in patient_ids:
            enqueue_on_commit("monitoring.tasks.evaluate_patient_readings_task", patient_id)
    return cleared
