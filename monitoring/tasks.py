from celery import shared_task
from celery.signals import worker_process_init
from django.db import OperationalError
from django.utils import timezone

from config.celery import enqueue_on_commit
from delivery.outbox import Outcome, retry_countdown
from monitoring.evaluation import (
    drain_pending_readings,
    enqueue_due_scheduled_rules,
    enqueue_unevaluated_readings,
    evaluate_pending_readings,
    evaluate_scheduled_rules,
)
from monitoring.nudges import nudge_streaks, run_reminder_sweep, settle_nudge_outcomes
from monitoring.nudges.delivery import NUDGES, deliver_nudge, enqueue_pending_nudges
from monitoring.nudges.outcomes import SETTLE_BATCH
from monitoring.partitions import ensure_reading_partitions
from monitoring.problems import problem_table
from monitoring.retention import apply_retention
from monitoring.units import metric_units


@worker_process_init.connect
def load_reference_data(**kwargs) -> None:
    """Parse the clinical reference and the problem table when a worker process starts, not
    in the middle of the first evaluation that needs them (parsing clinical.yaml took ~100 ms,
    and up to a few hundred under load: a stall of the readings waiting behind it)."""
    metric_units()
    problem_table()


# Database hiccups (failover, a killed connection) are worth retrying; everything else is a
# bug to see in the logs, not to loop on.
RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}


@shared_task(**RETRY)
def evaluate_patient_readings_task(patient_id: int) -> int:
    return evaluate_pending_readings(patient_id=patient_id)


@shared_task(**RETRY)
def drain_pending_readings_task(patient_id: int | None = None) -> int:
    # Ingest's wake-up (monitoring/evaluation/drain.py): this patient and every one that
    # joined the wake-up set before this task took it.
    return drain_pending_readings(patient_id=patient_id)


@shared_task(**RETRY)
def evaluate_scheduled_rules_task(patient_id: int, rule_ids: list[int]) -> int:
    return evaluate_scheduled_rules(patient_id=patient_id, rule_ids=rule_ids)


@shared_task
def enqueue_unevaluated_readings_task(after_patient_id: int | None = None) -> int:
    return enqueue_unevaluated_readings(after_patient_id=after_patient_id)


@shared_task
def enqueue_due_scheduled_rules_task() -> int:
    return enqueue_due_scheduled_rules()


@shared_task(bind=True, max_retries=None)
def deliver_nudge_task(self, nudge_id: int) -> str:
    outcome = deliver_nudge(nudge_id=nudge_id)
    if outcome == Outcome.RETRY:
        # Unbounded here: VIGIL_NUDGE_MAX_ATTEMPTS, counted on the row, bounds it.
        raise self.retry(countdown=retry_countdown(NUDGES, row_id=nudge_id))
    return outcome


@shared_task
def enqueue_pending_nudges_task() -> int:
    return enqueue_pending_nudges()


@shared_task
def run_reminder_sweep_task() -> int:
    # No retry: beat runs the sweep again within a minute, and every step of it is claimed.
    return run_reminder_sweep(now=timezone.now())


@shared_task
def settle_nudge_outcomes_task() -> int:
    # No retry: beat runs it again in five minutes, and each outcome is claimed once.
    settled = settle_nudge_outcomes(now=timezone.now(), limit=SETTLE_BATCH)
    if settled == SETTLE_BATCH:
        enqueue_on_commit(settle_nudge_outcomes_task)
    return settled


@shared_task
def nudge_streaks_task(after_patient_id: int | None = None) -> int:
    written, last_patient_id = nudge_streaks(now=timezone.now(), after_patient_id=after_patient_id)
    if last_patient_id is not None:
        enqueue_on_commit(nudge_streaks_task, last_patient_id)
    return written


# --- partition: the readings' partitions and retention (docs/retention.md) ----------------


@shared_task(**RETRY)
def maintain_reading_partitions_task() -> list[str]:
    return ensure_reading_partitions()


@shared_task(**RETRY)
def apply_retention_task() -> dict[str, int]:
    return apply_retention()
