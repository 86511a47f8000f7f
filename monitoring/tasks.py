from celery import shared_task
from django.db import OperationalError

from monitoring.evaluation import (
    enqueue_due_scheduled_rules,
    enqueue_unevaluated_readings,
    evaluate_pending_readings,
    evaluate_scheduled_rules,
)

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
def evaluate_scheduled_rules_task(patient_id: int, rule_ids: list[int]) -> int:
    return evaluate_scheduled_rules(patient_id=patient_id, rule_ids=rule_ids)


@shared_task
def enqueue_unevaluated_readings_task(after_patient_id: int | None = None) -> int:
    return enqueue_unevaluated_readings(after_patient_id=after_patient_id)


@shared_task
def enqueue_due_scheduled_rules_task() -> int:
    return enqueue_due_scheduled_rules()
