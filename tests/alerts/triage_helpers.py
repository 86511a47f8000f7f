"""Constants, builders and fixtures shared by test_admin_triage.py, test_alert_page.py (imported by
name: a fixture here applies only where a test module imports it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import (
    Alert,
    AlertEvent,
    AlertStatus,
    Notification,
    NotificationAttempt,
)
from tests.factories import (
    AlertFactory,
    ReadingFactory,
    RuleFactory,
)

# Monday 9 March 2026, 12:00 in New York (EDT since Sunday), where `patient` lives.
NOW = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)


QUEUE = "/admin/alerts/alert/"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def root(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def page_url(alert: Alert) -> str:
    return reverse("admin:alerts_alert_change", args=[alert.pk])


def alert_of(patient, *, severity="warning", status=AlertStatus.OPEN, age=timedelta(hours=1), **kw):
    """An alert raised `age` before NOW, with its own rule of `severity`."""
    first = NOW - age
    if "rule" not in kw:
        kw["rule"] = RuleFactory(patient=patient, severity=severity)
    return AlertFactory(
        patient=patient,
        status=status,
        first_triggered_at=first,
        last_triggered_at=kw.pop("last_triggered_at", first),
        **kw,
    )


def shown(response) -> list[int]:
    """The alert ids of the queue page, in the order shown."""
    return [alert.pk for alert in response.context["cl"].result_list]


def select(client: Client, action: str, alerts, url: str = QUEUE, **extra):
    return client.post(url, {"action": action, "_selected_action": [a.pk for a in alerts], **extra})


def events_of(alert: Alert) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert=alert)
        .order_by("id")
        .values_list("kind", "actor__username", "note")
    )


def _messages(client, response) -> list[str]:
    return [str(m) for m in client.get(response.url).context["messages"]]


@pytest.fixture
def hypo(patient, nurse):
    """A critical low-glucose alert, raised through the lifecycle by the reading at 08:30
    New York time three and a half days ago, paged to the nurse by email (sent on the
    second attempt), with the patient's own two low-glucose rules."""
    ReadingFactory(patient=patient, metric="glucose", value=110, unit="mg/dL",
                   sent_value=6.1, sent_unit="mmol/L", context="fasting",
                   measured_at=NOW - timedelta(days=20))  # fmt: skip
    low = ReadingFactory(patient=patient, metric="glucose", value=50, unit="mg/dL",
                         sent_value=2.8, sent_unit="mmol/L", context="fasting",
                         measured_at=NOW - timedelta(days=3, hours=12))  # fmt: skip
    ReadingFactory(patient=patient, metric="glucose", value=98, unit="mg/dL",
                   measured_at=NOW - timedelta(hours=2))  # fmt: skip
    level_1 = RuleFactory(
        patient=patient,
        key="hypoglycemia_level_1",
        title="Level 1 hypoglycaemia",
        severity="warning",
        group="glucose_low",
        parameters={
            "conditions": [
                {"component": "value", "op": "ge", "value": 54},
                {"component": "value", "op": "lt", "value": 70},
            ],
            "match": "all",
        },
        reference="blood_glucose.thresholds.hypoglycemia_level_1",
        source="verified: ada_soc_glycemic_targets",
    )
    level_2 = RuleFactory(
        patient=patient,
        key="hypoglycemia_level_2",
        title="Level 2 hypoglycaemia",
        severity="critical",
        group="glucose_low",
        parameters={"conditions": [{"component": "value", "op": "lt", "value": 54}]},
        reference="blood_glucose.thresholds.hypoglycemia_level_2",
        source="verified: ada_soc_glycemic_targets, ihsg_2017",
    )
    RuleFactory(patient=patient, key="weight_gain", metric="weight", title="Weight gain")
    raised = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=level_2,
            severity="critical",
            title="Level 2 hypoglycaemia",
            detail="50 mg/dL at 2026-03-05 23:00 EST; rule: < 54 mg/dL",
            first_at=low.measured_at,
            last_at=low.measured_at,
            values={"observed": "50 mg/dL"},
            reading_ids=[low.pk],
        ),
        now=low.measured_at + timedelta(minutes=1),
    )
    notification = Notification.objects.create(
        alert=raised.alert,
        event=raised.event,
        channel="email",
        recipient=nurse,
        target="nurse@clinic.test",
        status="sent",
        attempts=2,
    )
    NotificationAttempt.objects.create(
        notification=notification, number=1, at=low.measured_at + timedelta(minutes=1),
        outcome="transient_failure", error="421 try again later", duration_ms=35,
    )  # fmt: skip
    NotificationAttempt.objects.create(
        notification=notification, number=2, at=low.measured_at + timedelta(minutes=3),
        outcome="sent", duration_ms=41,
    )  # fmt: skip
    raised.alert.level_1 = level_1
    raised.alert.low = low
    return raised.alert
