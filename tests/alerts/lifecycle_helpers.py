"""Constants, builders and fixtures shared by test_lifecycle.py, test_lifecycle_escalate.py,
test_lifecycle_evaluation.py (imported by name: a fixture here applies only where a test module
imports it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.lifecycle import (
    Trigger,
)
from alerts.models import Alert, AlertEvent
from tests.factories import (
    RuleFactory,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


MINUTE = timedelta(minutes=1)


LOW_GLUCOSE = {"conditions": [{"component": "value", "op": "lt", "value": 70}], "match": "any"}


VERY_LOW_GLUCOSE = {"conditions": [{"component": "value", "op": "lt", "value": 54}], "match": "any"}


@pytest.fixture
def rule(patient):
    """Level 1 hypoglycaemia: a warning in the glucose_low group."""
    return RuleFactory(
        patient=patient,
        key="hypoglycemia_level_1",
        group="glucose_low",
        severity="warning",
        title="Level 1 hypoglycaemia",
        parameters=LOW_GLUCOSE,
    )


@pytest.fixture
def critical_rule(patient):
    """Level 2 hypoglycaemia: critical, in the same group, so it feeds the same alert."""
    return RuleFactory(
        patient=patient,
        key="hypoglycemia_level_2",
        group="glucose_low",
        severity="critical",
        title="Level 2 hypoglycaemia",
        parameters=VERY_LOW_GLUCOSE,
    )


@pytest.fixture
def info_rule(patient):
    return RuleFactory(
        patient=patient,
        key="glucose_cv",
        group="cgm_variability",
        kind="cgm_summary",
        severity="info",
        title="CGM glucose variability above target",
    )


def trigger(rule, *, at=NOW, severity=None, occurrences=1, reading_ids=(101,)) -> Trigger:
    return Trigger(
        rule=rule,
        severity=severity or rule.severity,
        title=rule.title,
        detail=f"{rule.title} at {at:%H:%M}",
        first_at=at,
        last_at=at,
        occurrences=occurrences,
        values={"observed": "62 mg/dL"},
        reading_ids=list(reading_ids),
    )


def events(alert) -> list[tuple]:
    return [
        (e.kind, e.actor.username if e.actor else None, e.at, e.note, e.data)
        for e in AlertEvent.objects.filter(alert=alert).order_by("at", "id")
    ]


def state(alert) -> dict:
    """The columns a transition may change, fresh from the database."""
    alert = Alert.objects.get(pk=alert.pk)
    return {
        name: getattr(alert, name)
        for name in (
            "status", "severity", "occurrences", "last_triggered_at", "condition_cleared_at",
            "next_escalation_at", "expires_at", "acknowledged_by_id", "resolved_by_id",
            "assignee_id",
        )
    }  # fmt: skip
