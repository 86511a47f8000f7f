from celery import shared_task
from django.db import OperationalError

from monitoring.evaluation import enqueue_unevaluated_readings, evaluate_pending_readings


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, retry_backoff_max=60, max_retries=5
)
def evaluate_patient_readings_task(patient_id: int) -> int:
    return evaluate_pending_readings(patient_id=patient_id)


@shared_task
def enqueue_unevaluated_readings_task() -> int:
    return enqueue_unevaluated_readings()
