"""Constants, builders and fixtures shared by test_notify.py, test_notify_delivery.py (imported by
name: a fixture here applies only where a test module imports it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import (
    AlertEvent,
    ChannelFault,
    Notification,
    NotificationAttempt,
)
from alerts.tasks import deliver_notification_task
from tests.factories import RuleFactory
from tests.monitoring.conftest import QueuedTask

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


MINUTE = timedelta(minutes=1)


NURSE_PHONE = "+15550100001"


PHYSICIAN_PHONE = "+15550100002"


@pytest.fixture
def on_call(team, nurse, physician, twilio, time_machine):
    """The team pages by email and SMS (nurse at level 1, physician at 2) and a webhook."""
    time_machine.move_to(NOW, tick=False)
    for user, phone in ((nurse, NURSE_PHONE), (physician, PHYSICIAN_PHONE)):
        user.email = f"{user.username}@clinic.test"
        user.save()
        team.memberships.filter(user=user).update(phone=phone)
    team.webhook_url = f"{twilio.url}/hooks/vigil"
    team.webhook_secret = "whsec-heart-failure"
    team.save()
    return team


@pytest.fixture
def rule(patient):
    return RuleFactory(patient=patient, key="glucose_low", group="glucose_low", severity="critical")


def raise_event(patient, rule, *, severity=None, at=NOW) -> AlertEvent:
    raised = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=rule,
            severity=severity or rule.severity,
            title="Level 2 hypoglycaemia",
            detail="48 mg/dL at 2026-03-01 06:55 EST; rule: < 54 mg/dL",
            first_at=at,
            last_at=at,
        ),
        now=at,
    )
    return raised.event


def rows() -> list[tuple]:
    return list(
        Notification.objects.order_by("id").values_list(
            "event__kind", "channel", "recipient__username", "target", "status", "attempts"
        )
    )


def deliveries(*notification_ids: int) -> list[QueuedTask]:
    return [
        QueuedTask(name=deliver_notification_task.name, args=[pk], kwargs={})
        for pk in notification_ids
    ]


def attempts(notification) -> list[tuple]:
    return list(
        NotificationAttempt.objects.filter(notification=notification)
        .order_by("number")
        .values_list("number", "at", "outcome", "status_code", "error")
    )


def faults() -> list[tuple]:
    return list(
        ChannelFault.objects.order_by("id").values_list(
            "channel", "target", "failures", "first_failed_at", "last_failed_at", "last_error",
            "cleared_at",
        )
    )  # fmt: skip
