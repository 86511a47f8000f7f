"""Evaluation of stored readings against the patient's own rules.

The database row is the outbox: `evaluated_at IS NULL` means "still to do", whatever happened
to the task meant to do it, and the sweep re-enqueues what waits too long. One evaluation
holds a per-patient transaction lock, loads the patient's rules once and each metric's
window once, runs the pure rule kinds, and writes its alerts and `evaluated_at` in the same
transaction: evaluating a reading twice, or two workers on one patient, changes nothing more
than one evaluation would.
"""

from monitoring.evaluation.drain import DRAIN_TASK, drain_pending_readings
from monitoring.evaluation.locking import lock_patient, unit_of
from monitoring.evaluation.outcomes import apply_outcomes
from monitoring.evaluation.readings import (
    SINGLE_READING_KINDS,
    evaluate_dose_adherence,
    evaluate_patients_together,
    evaluate_pending_readings,
)
from monitoring.evaluation.scheduled import (
    claim_due_scheduled_rules,
    enqueue_due_scheduled_rules,
    evaluate_scheduled_rules,
)
from monitoring.evaluation.sweep import enqueue_unevaluated_readings

__all__ = [
    "DRAIN_TASK",
    "SINGLE_READING_KINDS",
    "apply_outcomes",
    "claim_due_scheduled_rules",
    "drain_pending_readings",
    "enqueue_due_scheduled_rules",
    "enqueue_unevaluated_readings",
    "evaluate_dose_adherence",
    "evaluate_patients_together",
    "evaluate_pending_readings",
    "evaluate_scheduled_rules",
    "lock_patient",
    "unit_of",
]
