from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.db import InterfaceError, OperationalError

from alerts.escalation import escalate_overdue_alerts
from alerts.lifecycle import expire_info_alerts
from alerts.notify import (
    NOTIFICATIONS,
    deliver_notification,
    enqueue_pending_notifications,
    enqueue_unrouted_alert_events,
    route_alert_event,
)
from delivery.outbox import Outcome, retry_countdown

# A lost or restarting database (failover, pg_terminate_backend, a pooler) is worth retrying
# with backoff, as the evaluation task does; the connection is replaced before each run
# (config.celery.close_unusable_database_connections). Anything else is a bug to see, not to
# loop on. After the last retry the outbox sweeps still take the row.
DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_RETRY = {
    "autoretry_for": DATABASE_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}


@shared_task(**DATABASE_RETRY)
def route_alert_event_task(event_id: int) -> int:
    return len(route_alert_event(event_id=event_id))


@shared_task(bind=True, max_retries=None)
def deliver_notification_task(self, notification_id: int) -> str:
    try:
        outcome = deliver_notification(notification_id=notification_id)
    except DATABASE_ERRORS as error:
        # As DATABASE_RETRY, by hand: autoretry would bound the delivery's own retries too.
        # This bound counts those as well (request.retries); past it, the outbox sweep.
        countdown = get_exponential_backoff_interval(
            factor=1, retries=self.request.retries, maximum=60, full_jitter=True
        )
        raise self.retry(exc=error, countdown=countdown, max_retries=5) from error
    if outcome == Outcome.RETRY:
        # Unbounded here: VIGIL_NOTIFICATION_MAX_ATTEMPTS, counted on the row, bounds it.
        countdown = retry_countdown(NOTIFICATIONS, row_id=notification_id)
        raise self.retry(countdown=countdown)
    return outcome


@shared_task
def escalate_overdue_alerts_task() -> int:
    return escalate_overdue_alerts()


@shared_task
def expire_info_alerts_task() -> int:
    return expire_info_alerts()


@shared_task
def enqueue_unrouted_alert_events_task(after_event_id: int | None = None) -> int:
    return enqueue_unrouted_alert_events(after_event_id=after_event_id)


@shared_task
def enqueue_pending_notifications_task() -> int:
    return enqueue_pending_notifications()
