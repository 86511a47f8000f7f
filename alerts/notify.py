"""Routing alert events to people, and delivering each notification.

Routing writes one Notification row per (event, channel, target) — the unique constraint
makes a re-run route nobody twice — and enqueues a delivery per row after commit. Delivery
claims its row with a lease (conditional UPDATE), calls the channel, and records the attempt;
transient failures are retried with backoff by the task, permanent ones are recorded, not
retried, and flag the target for the operator (ChannelFault).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.channels import CHANNELS, DeliveryError, Message
from alerts.channels import sms as sms_channel
from alerts.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    AttemptOutcome,
    Channel,
    ChannelFault,
    Notification,
    NotificationAttempt,
    NotificationStatus,
    Silence,
)
from config.celery import enqueue_on_commit
from monitoring.models import Severity

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
# Backoff for deliveries that may succeed later: 30 s, 1, 2, 4, 8 … min, capped at 30 min.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
# Events that page someone, while the alert is open and its current severity calls for a
# person (`calls_for_a_person`). A worse finding re-opens an acknowledged alert (lifecycle),
# so one still acknowledged was acknowledged since. A new kind of event that should page
# as a new alert does (a further tier of the same problem) is one more line here.
PAGING_EVENTS = frozenset(
    {
        AlertEventKind.RAISED,
        AlertEventKind.SEVERITY_RAISED,
        # A further tier of the same problem at the same severity (INR > 10 after INR >= 5).
        AlertEventKind.WORSENED,
        # Escalation's own events: only warning and critical alerts have a deadline.
        AlertEventKind.ESCALATED,
        AlertEventKind.REPEATED,
    }
)


def _targets(alert: Alert, level: int) -> list[tuple[str, object, str]]:
    team = alert.patient.care_team
    memberships = list(team.memberships.on_call().select_related("user"))
    levels = sorted({m.escalation_level for m in memberships if m.escalation_level <= level})
    # A team without anyone at this level reaches its highest level below it; one without
    # anyone at or below it (no level-1 nurse) its lowest level, rather than nobody.
    reached = levels[-1] if levels else min((m.escalation_level for m in memberships), default=None)
    targets = []
    for membership in memberships:
        if membership.escalation_level != reached:
            continue
        if membership.user.email:
            targets.append((Channel.EMAIL, membership.user, membership.user.email))
        if membership.phone and sms_channel.is_enabled():
            targets.append((Channel.SMS, membership.user, membership.phone))
    if team.webhook_url:
        targets.append((Channel.WEBHOOK, None, team.webhook_url))
    return targets


def _silenced(alert: Alert, now: datetime) -> bool:
    return Silence.objects.filter(
        Q(rule__isnull=True) | Q(rule_id=alert.rule_id),
        patient_id=alert.patient_id,
        starts_at__lte=now,
        ends_at__gt=now,
    ).exists()


def calls_for_a_person(alert: Alert) -> bool:
    """Whether the alert, at its current severity, is paged at all. Info is "outside target,
    no action needed now; shown in trends/reports" (clinical.yaml severity_scale): it waits
    in the queue unless the patient's team asked to hear of it too."""
    if alert.severity == Severity.INFO:
        return alert.patient.care_team.page_info_alerts
    return True


def route_alert_event(*, event_id: int, now: datetime | None = None) -> list[int]:
    """Create the notifications an alert event calls for; return their ids.

    Writes: Notification rows (pending). Enqueues after commit: one delivery per pending row.
    Nothing is sent for an event that pages nobody (PAGING_EVENTS), an alert no longer open
    (acknowledged or resolved by the time this runs), an info alert of a team that does not
    page for them, or a silenced alert. The alert's current severity decides: an info alert
    raised to warning or critical pages through its severity_raised event.
    """
    now = now or timezone.now()
    event = AlertEvent.objects.select_related("alert__patient__care_team").get(pk=event_id)
    alert = event.alert
    if event.kind not in PAGING_EVENTS or alert.status != AlertStatus.OPEN:
        return []
    if not calls_for_a_person(alert):
        return []
    if _silenced(alert, now):
        return []
    level = event.data.get("level", alert.escalation_level)
    with transaction.atomic():
        Notification.objects.bulk_create(
            [
                Notification(
                    alert=alert, event=event, channel=channel, recipient=user, target=target
                )
                for channel, user, target in _targets(alert, level)
            ],
            ignore_conflicts=True,
        )
        pending = list(
            Notification.objects.filter(event=event, status=NotificationStatus.PENDING)
            .order_by("id")
            .values_list("id", flat=True)
        )
        enqueue_deliveries(pending)
    return pending


def enqueue_deliveries(notification_ids: list[int]) -> None:
    from alerts.tasks import deliver_notification_task

    for notification_id in notification_ids:
        enqueue_on_commit(deliver_notification_task, notification_id)


def build_message(notification: Notification) -> Message:
    """The alert as each channel carries it.

    Minimum necessary: a subject line and an SMS are read on lock screens and kept by mail
    and phone providers, so they name the alert (its number, severity and the rule's title),
    never the patient (no name, no MRN); the email body adds the link to the alert page,
    where the patient and readings are shown after signing in. Only the signed webhook,
    received by the clinic's own system, identifies the patient (`patient_external_id`).
    """
    alert = notification.alert
    event = notification.event
    url = f"{settings.VIGIL_BASE_URL}/admin/alerts/alert/{alert.pk}/change/"
    heading = {
        AlertEventKind.RAISED: "New alert",
        AlertEventKind.SEVERITY_RAISED: "Alert got worse",
        AlertEventKind.ESCALATED: "Escalated alert (not acknowledged)",
        AlertEventKind.REPEATED: "Reminder: alert still not acknowledged",
    }.get(event.kind, "Alert")
    patient = alert.patient
    return Message(
        subject=f"Vigil alert #{alert.pk}: {alert.severity} — {alert.title}",
        text=(
            f"{heading}: {alert.title}\n"
            f"Alert: #{alert.pk}\nSeverity: {alert.severity}\n"
            f"Occurrences: {alert.occurrences}\n"
            f"First triggered: {alert.first_triggered_at.isoformat()}\n\n"
            f"The patient, readings and detail are in Vigil, after signing in.\n"
            f"Open and acknowledge: {url}\n"
        ),
        short=f"Vigil {alert.severity}: {alert.title}. Alert #{alert.pk}. Acknowledge in Vigil.",
        payload={
            "event": event.kind,
            "event_id": event.pk,
            "alert": {
                "id": alert.pk,
                "patient": patient.pk,
                "patient_external_id": patient.external_id,
                "rule": {"kind": alert.kind, "metric": alert.metric},
                "severity": alert.severity,
                "status": alert.status,
                "title": alert.title,
                "detail": alert.detail,
                "occurrences": alert.occurrences,
                "first_triggered_at": alert.first_triggered_at.isoformat(),
                "last_triggered_at": alert.last_triggered_at.isoformat(),
                "escalation_level": alert.escalation_level,
                "url": url,
            },
        },
    )


class DeliveryOutcome:
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


def deliver_notification(*, notification_id: int, now: datetime | None = None) -> str:
    """Send one notification once. Returns a DeliveryOutcome.

    Writes: Notification (claim, status), NotificationAttempt, ChannelFault on permanent
    failure. A notification already sent, failed, or leased to another worker is skipped.
    """
    now = now or timezone.now()
    claimed = (
        Notification.objects.filter(pk=notification_id, status=NotificationStatus.PENDING)
        # A retry is scheduled for the moment its hold lapses (retry_delay): that moment is free.
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return DeliveryOutcome.SKIPPED
    notification = Notification.objects.select_related("alert__patient__care_team", "event").get(
        pk=notification_id
    )
    if notification.alert.status != AlertStatus.OPEN:
        # Someone took the alert while this page waited (a retry, a queue): a late page
        # about a handled alert is noise that teaches people to ignore pages.
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.CANCELLED,
            claimed_until=None,
            last_error=f"alert {notification.alert.status} before delivery",
        )
        return DeliveryOutcome.CANCELLED
    started = time.monotonic()
    try:
        status_code = CHANNELS[notification.channel].send(
            target=notification.target,
            message=build_message(notification),
            team=notification.alert.patient.care_team,
        )
    except DeliveryError as error:
        return _record_failure(notification, error, now, started)
    _record(notification, AttemptOutcome.SENT, now, started, status_code=status_code)
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENT, sent_at=now, claimed_until=None, last_error=""
    )
    return DeliveryOutcome.SENT


def _record(notification, outcome, now, started, *, status_code=None, error=""):
    try:
        NotificationAttempt.objects.create(
            notification=notification,
            number=notification.attempts,
            at=now,
            outcome=outcome,
            status_code=status_code,
            error=error[:2000],
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    except IntegrityError:
        logger.warning(
            "attempt %s of notification %s recorded twice", notification.attempts, notification.pk
        )


def _record_failure(notification, error: DeliveryError, now, started) -> str:
    exhausted = notification.attempts >= settings.VIGIL_NOTIFICATION_MAX_ATTEMPTS
    permanent = error.permanent or exhausted
    outcome = (
        AttemptOutcome.PERMANENT_FAILURE if error.permanent else (AttemptOutcome.TRANSIENT_FAILURE)
    )
    _record(notification, outcome, now, started, status_code=error.status_code, error=str(error))
    logger.warning(
        "notification %s via %s failed (%s): %s",
        notification.pk,
        notification.channel,
        "permanent" if permanent else "transient",
        error,
    )
    if not permanent:
        # Held until the retry is due, so the outbox sweep does not take it early (which
        # would undo the backoff); if the retry task is lost, the sweep takes it after that.
        Notification.objects.filter(pk=notification.pk).update(
            claimed_until=now + retry_delay(notification.attempts), last_error=str(error)[:2000]
        )
        return DeliveryOutcome.RETRY
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.FAILED, claimed_until=None, last_error=str(error)[:2000]
    )
    flag_channel_fault(
        channel=notification.channel, target=notification.target, error=str(error), now=now
    )
    return DeliveryOutcome.FAILED


def flag_channel_fault(*, channel: str, target: str, error: str, now: datetime) -> None:
    """Writes or updates the open ChannelFault for this target (one per target)."""
    updated = ChannelFault.objects.filter(
        channel=channel, target=target, cleared_at__isnull=True
    ).update(failures=F("failures") + 1, last_failed_at=now, last_error=error[:2000])
    if not updated:
        try:
            with transaction.atomic():
                ChannelFault.objects.create(
                    channel=channel,
                    target=target,
                    first_failed_at=now,
                    last_failed_at=now,
                    last_error=error[:2000],
                )
        except IntegrityError:
            flag_channel_fault(channel=channel, target=target, error=error, now=now)
    logger.error("channel %s flagged for the operator after a permanent failure", channel)


def retry_delay(attempts: int) -> timedelta:
    """How long a delivery waits after its `attempts`-th transient failure."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def enqueue_pending_notifications(*, now: datetime | None = None, older_than=timedelta(minutes=2)):
    """The outbox sweep: pending deliveries whose task was lost are enqueued again.

    A delivery is left alone while claimed (in flight, or waiting for its retry) and for
    `older_than` after, which gives the task that was due then the time to take it."""
    now = now or timezone.now()
    from alerts.tasks import enqueue_pending_notifications_task

    limit = settings.VIGIL_SWEEP_BATCH
    stuck = list(
        Notification.objects.filter(
            status=NotificationStatus.PENDING, created_at__lt=now - older_than
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now - older_than))
        .order_by("created_at", "id")
        .values_list("id", flat=True)[: limit + 1]
    )
    with transaction.atomic():
        enqueue_deliveries(stuck[:limit])
        if len(stuck) > limit:
            # Deliveries are claimed when they run, so the next batch may overlap this one
            # without sending anything twice.
            enqueue_on_commit(enqueue_pending_notifications_task)
    return min(len(stuck), limit)
