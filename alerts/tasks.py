from celery import shared_task
from django.db import OperationalError

from alerts.escalation import escalate_overdue_alerts
from alerts.lifecycle import expire_info_alerts
from alerts.models import Notification
from alerts.notify import (
    DeliveryOutcome,
    deliver_notification,
    enqueue_pending_notifications,
    retry_delay,
    route_alert_event,
)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def route_alert_event_task(event_id: int) -> int:
    return len(route_alert_event(event_id=event_id))


@shared_task(bind=True, max_retries=None)
def deliver_notification_task(self, notification_id: int) -> str:
    outcome = deliver_notification(notification_id=notification_id)
    if outcome == DeliveryOutcome.RETRY:
        # The attempt count lives in the row (a sweep may have enqueued this task, so
        # self.request.retries undercounts); VIGIL_NOTIFICATION_MAX_ATTEMPTS bounds it. The
        # row is held for the same delay (notify.retry_delay), so the retry finds it free.
        attempts = Notification.objects.values_list("attempts", flat=True).get(pk=notification_id)
        raise self.retry(countdown=retry_delay(attempts).total_seconds())
    return outcome


@shared_task
def escalate_overdue_alerts_task() -> int:
    return escalate_overdue_alerts()


@shared_task
def expire_info_alerts_task() -> int:
    return expire_info_alerts()


@shared_task
def enqueue_pending_notifications_task() -> int:
    return enqueue_pending_notifications()
