"""Escalation of unacknowledged alerts, by each care team's policy.

An open warning or critical alert carries a deadline (`next_escalation_at`). The sweep
claims overdue alerts with row locks that skip rows another sweep holds, so two beats never
escalate one alert twice: the next level hears of it, and at the top level the alert is
repeated every `repeat_minutes`, at most `max_repeats` times, then left to the queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertEventKind, AlertStatus
from config.celery import enqueue_all_on_commit


def escalate_overdue_alerts(*, now: datetime | None = None) -> int:
    """Escalate or repeat each overdue open alert once. Returns how many were.

    Writes: Alert (level, repeats, next deadline), AlertEvent (escalated / repeated).
    Enqueues after commit: notification routing for each event.
    """
    from alerts.tasks import escalate_overdue_alerts_task, route_alert_event_task

    now = now or timezone.now()
    limit = settings.VIGIL_SWEEP_BATCH
    with transaction.atomic():
        due = list(
            Alert.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("patient__care_team")
            .filter(status=AlertStatus.OPEN, next_escalation_at__lte=now)
            .order_by("next_escalation_at")[: limit + 1]
        )
        events = [_escalate(alert, now) for alert in due[:limit]]
        # Each event is routing's outbox row: one whose publish fails is routed by the sweep.
        messages = [(route_alert_event_task, (event.pk,), {}) for event in filter(None, events)]
        if len(due) > limit:
            messages.append((escalate_overdue_alerts_task, (), {}))
        enqueue_all_on_commit(messages)
    return sum(1 for event in events if event)


def _escalate(alert: Alert, now: datetime) -> AlertEvent | None:
    team = alert.patient.care_team
    # The next level someone (active) holds: a gap in the numbering (levels 1 and 3) must not
    # cost the alert another delay while it pages the level below again.
    higher = (
        team.memberships.on_call()
        .filter(escalation_level__gt=alert.escalation_level)
        .values_list("escalation_level", flat=True)
    )
    next_level = min(higher, default=None)
    if next_level is not None:
        alert.escalation_level = next_level
        alert.next_escalation_at = now + alert.escalation_delay(team)
        kind = AlertEventKind.ESCALATED
    elif alert.repeats < team.max_repeats:
        alert.repeats += 1
        alert.next_escalation_at = now + timedelta(minutes=team.repeat_minutes)
        kind = AlertEventKind.REPEATED
    else:
        # The loop is bounded: the alert stays open at the top of the queue.
        alert.next_escalation_at = None
        alert.save(update_fields=["next_escalation_at"])
        return None
    alert.save(update_fields=["escalation_level", "repeats", "next_escalation_at"])
    return AlertEvent.objects.create(
        alert=alert,
        kind=kind,
        at=now,
        data={"level": alert.escalation_level, "repeat": alert.repeats},
    )
