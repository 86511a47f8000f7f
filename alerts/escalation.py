"""Escalation of unacknowledged alerts, by each care team's policy.

An open warning or critical alert carries a deadline (`next_escalation_at`). The sweep
claims overdue alerts with row locks that skip rows another sweep holds, so two beats never
escalate one alert twice: the next level hears of it, and at the top level the alert is
repeated every `repeat_minutes`, at most `max_repeats` times, then left to the queue. This
module picks the alerts; alerts.lifecycle.escalate_alert changes each one.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts.lifecycle import escalate_alert
from alerts.models import Alert, AlertStatus
from config.celery import enqueue_all_on_commit


def escalate_overdue_alerts(*, now: datetime | None = None) -> int:
    """Escalate or repeat each overdue open alert once. Returns how many were.

    Claims at most VIGIL_SWEEP_BATCH overdue alerts, each changed by
    alerts.lifecycle.escalate_alert. Writes (through it): Alert (level, repeats, next
    deadline), AlertEvent (escalated / repeated). Enqueues after commit: notification routing
    for each event, and the sweep again when more alerts are overdue.
    """
    now = now or timezone.now()
    limit = settings.VIGIL_SWEEP_BATCH
    with transaction.atomic():
        due = list(
            Alert.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("patient__care_team")
            .filter(status=AlertStatus.OPEN, next_escalation_at__lte=now)
            .order_by("next_escalation_at")[: limit + 1]
        )
        events = [escalate_alert(alert=alert, now=now) for alert in due[:limit]]
        # Each event is routing's outbox row: one whose publish fails is routed by the sweep.
        messages = [
            ("alerts.tasks.route_alert_event_task", (event.pk,), {})
            for event in filter(None, events)
        ]
        if len(due) > limit:
            messages.append(("alerts.tasks.escalate_overdue_alerts_task", (), {}))
        enqueue_all_on_commit(messages)
    return sum(1 for event in events if event)
