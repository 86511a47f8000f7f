"""Routing alert events to people, and delivering each notification.

Routing claims the alert event (its `routed_at`, a conditional UPDATE), writes one
Notification row per (event, channel, target) in the same transaction — the unique constraint
makes a re-run route nobody twice — and enqueues a delivery per row after commit. The event is
routing's outbox row: a paging event still unrouted after the grace is routed by the sweep.
Each notification is then a row of the delivery outbox (delivery.outbox: claim with a lease,
attempt record, backoff, sweep); what is particular to alerts is here: the message, a page
cancelled once its alert is handled, and a target that fails for good flagged for the
operator (ChannelFault).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from alerts.lifecycle import mark_events_routed
from alerts.models import (
    PAGING_EVENTS,
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    Channel,
    ChannelFault,
    Notification,
    NotificationStatus,
)
from alerts.silences import is_silenced
from config.celery import enqueue_all_on_commit
from delivery import outbox
from delivery.channels import CHANNELS, DeliveryError, Message
from delivery.channels import sms as sms_channel
from monitoring.models import Severity

logger = logging.getLogger(__name__)


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


def calls_for_a_person(alert: Alert) -> bool:
    """Whether the alert, at its current severity, is paged at all. Info is "outside target,
    no action needed now; shown in trends/reports" (clinical.yaml severity_scale): it waits
    in the queue unless the patient's team asked to hear of it too."""
    if alert.severity == Severity.INFO:
        return alert.patient.care_team.page_info_alerts
    return True


def route_alert_event(*, event_id: int, now: datetime | None = None) -> list[int]:
    """Create the notifications an alert event calls for; return their ids.

    Claims the event first (`routed_at`, a conditional UPDATE in the same transaction): a
    second run, concurrent or later (redelivery, the sweep), finds it routed and returns [].
    Writes: AlertEvent.routed_at, Notification rows (pending). Enqueues after commit: one
    delivery per pending row. Nobody is paged, though the event is marked routed, for an
    event that pages nobody (PAGING_EVENTS), an alert no longer open (acknowledged or resolved
    by the time this runs), an info alert of a team that does not page for them, or a
    silenced alert. The alert's current severity decides: an info alert raised to warning or
    critical pages through its severity_raised event.
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not mark_events_routed(event_ids=[event_id], now=now):
            return []
        event = AlertEvent.objects.select_related("alert__patient__care_team").get(pk=event_id)
        if not _pages(event, now):
            return []
        level = event.data.get("level", event.alert.escalation_level)
        Notification.objects.bulk_create(
            [
                Notification(
                    alert=event.alert, event=event, channel=channel, recipient=user, target=target
                )
                for channel, user, target in _targets(event.alert, level)
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


def _pages(event: AlertEvent, now: datetime) -> bool:
    alert = event.alert
    if event.kind not in PAGING_EVENTS or alert.status != AlertStatus.OPEN:
        return False
    return calls_for_a_person(alert) and not is_silenced(
        patient_id=alert.patient_id, rule_id=alert.rule_id, at=now
    )


def settle_without_paging(*, event_ids: list[int], now: datetime) -> int:
    """Mark these events routed with nobody paged: the evaluation that wrote them decided
    nobody is to hear of them (a silenced alert; a lesser finding of a problem whose critical
    alert is open), so the outbox sweep must not route them later. Writes:
    AlertEvent.routed_at. Returns how many were marked."""
    return mark_events_routed(event_ids=event_ids, now=now)


def enqueue_deliveries(notification_ids: list[int]) -> None:
    outbox.enqueue_deliveries(NOTIFICATIONS, row_ids=notification_ids)


def unrouted_alert_events(*, now: datetime) -> QuerySet[AlertEvent]:
    """Paging events whose routing has not run within the grace readings get before their
    own sweep: with the broker and a worker up, routing runs within a second of its event.
    The partial index alertevent_unrouted serves this (its condition is the same kinds)."""
    return AlertEvent.objects.filter(
        routed_at__isnull=True,
        kind__in=sorted(PAGING_EVENTS),
        at__lt=now - settings.VIGIL_EVALUATION_GRACE,
    )


def overdue_routings(*, now: datetime) -> int:
    """How many paging events still wait for their routing two sweeps after the grace: the
    sweep should have routed them, so a page may be stuck (no worker on the notifications
    queue, a broker down, an event that fails to route every time)."""
    sweep = timedelta(
        seconds=settings.CELERY_BEAT_SCHEDULE["enqueue-unrouted-alert-events"]["schedule"]
    )
    return unrouted_alert_events(now=now - 2 * sweep).count()


def enqueue_unrouted_alert_events(
    *, now: datetime | None = None, after_event_id: int | None = None
) -> int:
    """The routing outbox sweep: paging events not routed within the grace lost their routing
    task (a Redis restart without persistence, a worker killed before it committed).

    Enqueues after commit: a routing task per such event, oldest first, at most
    VIGIL_SWEEP_BATCH of them after `after_event_id`, and, when more remain, the sweep itself
    to carry on after the last of them. Returns the number of events enqueued. Routing claims
    each event, so one enqueued twice (a slow queue) pages nobody twice.
    """
    now = now or timezone.now()
    limit = settings.VIGIL_SWEEP_BATCH
    unrouted = unrouted_alert_events(now=now)
    if after_event_id is not None:
        # Carry on after the previous batch, which may still wait in the queue.
        unrouted = unrouted.filter(pk__gt=after_event_id)
    event_ids = list(unrouted.order_by("pk").values_list("pk", flat=True)[: limit + 1])
    batch = event_ids[:limit]
    messages = [("alerts.tasks.route_alert_event_task", (pk,), {}) for pk in batch]
    if len(event_ids) > limit:
        messages.append(
            ("alerts.tasks.enqueue_unrouted_alert_events_task", (), {"after_event_id": batch[-1]})
        )
    enqueue_all_on_commit(messages)
    if batch:
        logger.info("routing sweep enqueued %s alert events not routed in time", len(batch))
    return len(batch)


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


# --- Delivery: notifications in the outbox ----------------------------------------------------


class NotificationOutbox(outbox.Outbox):
    model = Notification
    max_attempts_setting = "VIGIL_NOTIFICATION_MAX_ATTEMPTS"
    deliver_task = "alerts.tasks.deliver_notification_task"
    sweep_task = "alerts.tasks.enqueue_pending_notifications_task"

    def load(self, row_id: int) -> Notification:
        return Notification.objects.select_related("alert__patient__care_team", "event").get(
            pk=row_id
        )

    def cancelled(self, notification: Notification) -> str | None:
        # Someone took the alert while this page waited (a retry, a queue): a late page
        # about a handled alert is noise that teaches people to ignore pages.
        if notification.alert.status != AlertStatus.OPEN:
            return f"alert {notification.alert.status} before delivery"
        return None

    def send(self, notification: Notification, *, now: datetime) -> outbox.Sent:
        status_code = CHANNELS[notification.channel].send(
            target=notification.target,
            message=build_message(notification),
            team=notification.alert.patient.care_team,
        )
        return outbox.Sent(status_code=status_code)

    def failed(self, notification: Notification, *, error: DeliveryError, now: datetime) -> None:
        flag_channel_fault(
            channel=notification.channel, target=notification.target, error=str(error), now=now
        )


NOTIFICATIONS = NotificationOutbox()


def deliver_notification(*, notification_id: int, now: datetime | None = None) -> str:
    """Send one notification once (delivery.outbox.deliver). Returns an outbox.Outcome.

    Writes: Notification (claim, status), NotificationAttempt, ChannelFault when it fails
    for good (a permanent failure, or out of attempts). A notification already sent,
    failed, or held by another worker is skipped; one whose alert was handled is cancelled.
    """
    return outbox.deliver(NOTIFICATIONS, row_id=notification_id, now=now)


def enqueue_pending_notifications(
    *, now: datetime | None = None, older_than: timedelta | None = None
) -> int:
    """The notifications' outbox sweep (delivery.outbox.enqueue_due)."""
    return outbox.enqueue_due(NOTIFICATIONS, now=now, older_than=older_than)


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
