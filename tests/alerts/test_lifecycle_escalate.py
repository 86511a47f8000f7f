"""alerts/lifecycle.py: escalate.

At most one unresolved alert per patient and dedupe key (the rule group); a new trigger adds
occurrences and raises the severity if worse, never lowers it; only a person resolves a
warning or critical alert; info alerts expire. Every transition writes an AlertEvent.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from alerts.lifecycle import (
    escalate_alert,
    mark_events_routed,
    raise_alert,
)
from alerts.models import Alert, AlertEvent
from tests.alerts.lifecycle_helpers import MINUTE, NOW, critical_rule, events, rule, trigger  # noqa: F401
from tests.factories import (
    MembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


# --- Escalate ----------------------------------------------------------------------------
# The policy, swept over time, is tested with alerts/escalation.py; here the one step each
# overdue alert takes, with the exact row and event it writes.


def locked(alert: Alert) -> Alert:
    """The alert as the escalation sweep holds it (row-locked, with its team)."""
    return Alert.objects.select_for_update().select_related("patient__care_team").get(pk=alert.pk)


def escalation_of(alert: Alert) -> tuple:
    alert = Alert.objects.get(pk=alert.pk)
    return alert.status, alert.escalation_level, alert.repeats, alert.next_escalation_at


def test_escalating_moves_the_alert_to_the_next_level_with_a_fresh_deadline(
    patient, critical_rule, nurse, physician
):
    # given: a critical alert raised at NOW, overdue 15 minutes later
    alert = raise_alert(patient=patient, trigger=trigger(critical_rule), now=NOW).alert
    assert escalation_of(alert) == ("open", 1, 0, NOW + 15 * MINUTE)
    at = NOW + 15 * MINUTE

    # when
    with transaction.atomic():
        event = escalate_alert(alert=locked(alert), now=at)

    # then: level 2 (the physician), the critical delay again from now, one event
    assert escalation_of(alert) == ("open", 2, 0, at + 15 * MINUTE)
    assert (event.alert_id, event.kind, event.at, event.actor, event.note, event.data) == (
        alert.pk,
        "escalated",
        at,
        None,
        "",
        {"level": 2, "repeat": 0},
    )
    assert event.routed_at is None
    assert [kind for kind, *_ in events(alert)] == ["raised", "escalated"]


def test_escalating_skips_a_level_nobody_holds(patient, critical_rule, nurse, team):
    # given: on call at levels 1 and 3 only
    MembershipFactory(team=team, user=UserFactory(username="cardiologist"), escalation_level=3)
    alert = raise_alert(patient=patient, trigger=trigger(critical_rule), now=NOW).alert

    with transaction.atomic():
        event = escalate_alert(alert=locked(alert), now=NOW + 15 * MINUTE)

    assert (event.kind, event.data) == ("escalated", {"level": 3, "repeat": 0})
    assert escalation_of(alert) == ("open", 3, 0, NOW + 30 * MINUTE)


def test_at_the_top_level_escalating_repeats_the_page_then_stops(
    patient, rule, nurse, physician, team
):
    # given: a warning alert already at the top level (2); the team repeats every 60 minutes,
    # at most 3 times
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert
    Alert.objects.filter(pk=alert.pk).update(escalation_level=2)
    assert (team.repeat_minutes, team.max_repeats) == (60, 3)

    # when: four overdue deadlines in turn
    steps = []
    for hour in range(1, 5):
        at = NOW + timedelta(hours=4 + hour)
        with transaction.atomic():
            event = escalate_alert(alert=locked(alert), now=at)
        steps.append((event and (event.kind, event.at, event.data), escalation_of(alert)))

    # then: three repeats, each with the next deadline an hour on; the fourth writes no event
    # and leaves no deadline (the alert stays open at the top of the queue)
    start = NOW + timedelta(hours=4)
    assert steps == [
        (
            ("repeated", start + timedelta(hours=n), {"level": 2, "repeat": n}),
            ("open", 2, n, start + timedelta(hours=n + 1)),
        )
        for n in (1, 2, 3)
    ] + [(None, ("open", 2, 3, None))]
    assert [kind for kind, *_ in events(alert)] == ["raised", "repeated", "repeated", "repeated"]


def test_marking_events_routed_claims_each_once(patient, rule):
    first = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).event
    second = raise_alert(
        patient=patient, trigger=trigger(rule, severity="critical", at=NOW + MINUTE), now=NOW
    ).event

    assert mark_events_routed(event_ids=[first.pk], now=NOW) == 1
    assert mark_events_routed(event_ids=[first.pk, second.pk], now=NOW + MINUTE) == 1
    assert mark_events_routed(event_ids=[first.pk, second.pk], now=NOW + 2 * MINUTE) == 0
    assert mark_events_routed(event_ids=[], now=NOW) == 0
    assert dict(AlertEvent.objects.values_list("pk", "routed_at")) == {
        first.pk: NOW,
        second.pk: NOW + MINUTE,
    }
