"""GET /api/v1/alerts, POST /api/v1/alerts/{id}/acknowledge and /resolve.

Staff see and act on the alerts of their own care teams' patients only: another team's
alert is a 404, exactly like a missing one, and nothing about it changes. Patient tokens
are refused with a 403. Every acknowledgement and resolution is an AlertEvent with its
author and note.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.lifecycle import resolve_alert
from alerts.models import Alert, AlertEvent
from tests.factories import AlertFactory, PatientFactory, RuleFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
URL = "/api/v1/alerts"
NOT_FOUND = {"detail": "Not found."}
NEEDS_STAFF = {"detail": "This endpoint needs a staff token."}


@pytest.fixture(autouse=True)
def _frozen_clock(time_machine):
    # Autouse: the clock stops before any persona or token is made.
    time_machine.move_to(NOW, tick=False)


def alert_at(patient, minutes_ago: int, *, key: str | None = None, **fields) -> Alert:
    key = key or f"rule_{patient.pk}_{minutes_ago}"
    rule = RuleFactory(
        patient=patient, key=key, group=key, severity=fields.get("severity", "warning")
    )
    at = NOW - minutes_ago * MINUTE
    return AlertFactory(
        patient=patient, rule=rule, first_triggered_at=at, last_triggered_at=at, **fields
    )


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [alert["id"] for alert in response.json()["results"]]


def snapshot(alert) -> tuple:
    """Everything a refused request must leave as it was."""
    fresh = Alert.objects.get(pk=alert.pk)
    events = list(AlertEvent.objects.filter(alert=alert).values_list("kind", "actor", "note"))
    return (
        fresh.status, fresh.acknowledged_by_id, fresh.acknowledged_at, fresh.resolved_by_id,
        fresh.resolved_at, fresh.assignee_id, fresh.next_escalation_at, events,
    )  # fmt: skip


# --- The list -----------------------------------------------------------------------------


def test_the_list_shows_the_teams_alerts_newest_first_in_the_documented_shape(
    nurse_client, patient, other_patient
):
    # given
    older = alert_at(patient, 30, key="glucose_low", occurrences=3)
    newer = alert_at(patient, 5, key="bp_high", severity="critical")
    alert_at(other_patient, 1)  # another team's

    # when
    response = nurse_client.get(URL)

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert [alert["id"] for alert in body["results"]] == [newer.pk, older.pk]
    assert body["results"][1] == {
        "id": older.pk,
        "patient": patient.pk,
        "rule": {
            "id": older.rule_id,
            "kind": "threshold",
            "metric": "glucose",
            "version": 1,
            "parameters": {
                "conditions": [{"component": "value", "op": "lt", "value": 70}],
                "match": "any",
            },
        },
        "severity": "warning",
        "status": "open",
        "title": "Low glucose",
        "detail": "62 mg/dL at 2026-03-01 07:30 CET; rule: < 70 mg/dL",
        "occurrences": 3,
        "first_triggered_at": "2026-03-01T11:30:00+00:00",
        "last_triggered_at": "2026-03-01T11:30:00+00:00",
        "condition_cleared_at": None,
        "escalation_level": 1,
        "assignee": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_by": None,
        "resolved_at": None,
        "resolution_reason": "",
    }


def test_alerts_triggered_at_the_same_time_list_the_newest_row_first(nurse_client, patient):
    first = alert_at(patient, 10, key="a")
    second = alert_at(patient, 10, key="b")

    assert ids(nurse_client.get(URL)) == [second.pk, first.pk]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=open", ["open_warning", "open_critical"]),
        ("status=acknowledged", ["acknowledged"]),
        ("status=resolved", ["resolved"]),
        ("severity=critical", ["open_critical", "resolved"]),
        ("status=open&severity=critical", ["open_critical"]),
        ("severity=info", []),
    ],
)
def test_the_list_filters_by_status_and_severity(nurse_client, patient, query, expected):
    alerts = {
        "open_warning": alert_at(patient, 1),
        "open_critical": alert_at(patient, 2, severity="critical"),
        "acknowledged": alert_at(patient, 3, status="acknowledged"),
        "resolved": alert_at(patient, 4, severity="critical", status="resolved"),
    }

    assert ids(nurse_client.get(f"{URL}?{query}")) == [alerts[name].pk for name in expected]


def test_the_list_filters_by_patient(nurse_client, patient, team):
    second_patient = PatientFactory(care_team=team)
    mine = alert_at(patient, 1)
    alert_at(second_patient, 2)

    assert ids(nurse_client.get(f"{URL}?patient={patient.pk}")) == [mine.pk]


def test_filtering_by_another_teams_patient_shows_nothing(nurse_client, patient, other_patient):
    alert_at(patient, 1)
    alert_at(other_patient, 2)

    response = nurse_client.get(f"{URL}?patient={other_patient.pk}")

    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_filtering_by_a_patient_id_past_64_bits_shows_nothing(nurse_client, patient):
    # SQLite cannot even bind such a number: the filter must not reach it as a parameter.
    alert_at(patient, 1)

    response = nurse_client.get(f"{URL}?patient=99999999999999999999999")

    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("status=closed", {"status": ['"closed" is not a valid choice.']}),
        ("severity=urgent", {"severity": ['"urgent" is not a valid choice.']}),
        ("patient=abc", {"patient": ["A valid integer is required."]}),
        ("patient=0", {"patient": ["Ensure this value is greater than or equal to 1."]}),
    ],
)
def test_an_invalid_filter_is_a_400_naming_it(nurse_client, query, errors):
    response = nurse_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": errors}


def test_the_list_is_paginated(nurse_client, patient):
    alerts = [alert_at(patient, minutes) for minutes in range(1, 6)]  # newest first

    first = nurse_client.get(f"{URL}?page_size=2")
    third = nurse_client.get(f"{URL}?page_size=2&page=3")

    assert first.json()["count"] == 5
    assert ids(first) == [alerts[0].pk, alerts[1].pk]
    assert first.json()["next"] == "http://testserver/api/v1/alerts?page=2&page_size=2"
    assert first.json()["previous"] is None
    assert ids(third) == [alerts[4].pk]
    assert third.json()["next"] is None


def test_a_page_past_the_end_is_a_404(nurse_client, patient):
    alert_at(patient, 1)

    response = nurse_client.get(f"{URL}?page=2")

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def test_another_team_sees_only_its_own_alerts(outsider_client, patient, other_patient):
    alert_at(patient, 1)
    theirs = alert_at(other_patient, 2)

    assert ids(outsider_client.get(URL)) == [theirs.pk]


def test_a_superuser_sees_every_teams_alerts(superuser, staff_client, patient, other_patient):
    mine = alert_at(patient, 1)
    theirs = alert_at(other_patient, 2)

    assert ids(staff_client(superuser).get(URL)) == [mine.pk, theirs.pk]


def test_a_patient_token_may_not_list_alerts(patient_client, patient):
    alert_at(patient, 1)

    response = patient_client.get(URL)

    assert response.status_code == 403
    assert response.json() == NEEDS_STAFF


def test_no_credential_is_a_401(anonymous_client):
    assert anonymous_client.get(URL).status_code == 401


# --- Acknowledge --------------------------------------------------------------------------


def test_acknowledging_with_a_note_records_who_and_why(nurse_client, nurse, patient):
    alert = alert_at(patient, 5, next_escalation_at=NOW + 10 * MINUTE)

    response = nurse_client.post(
        f"{URL}/{alert.pk}/acknowledge", {"note": "Calling the patient now"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["acknowledged_by"], body["assignee"]) == (
        alert.pk,
        "acknowledged",
        "nurse",
        "nurse",
    )
    assert body["acknowledged_at"] == "2026-03-01T12:00:00+00:00"
    fresh = Alert.objects.get(pk=alert.pk)
    assert (fresh.status, fresh.acknowledged_by, fresh.next_escalation_at) == (
        "acknowledged",
        nurse,
        None,
    )
    assert list(AlertEvent.objects.values_list("alert", "kind", "actor", "at", "note")) == [
        (alert.pk, "acknowledged", nurse.pk, NOW, "Calling the patient now")
    ]


def test_acknowledging_without_a_body_records_an_empty_note(nurse_client, nurse, patient):
    alert = alert_at(patient, 5)

    response = nurse_client.post(f"{URL}/{alert.pk}/acknowledge")

    assert response.status_code == 200
    assert list(AlertEvent.objects.values_list("kind", "actor", "note")) == [
        ("acknowledged", nurse.pk, "")
    ]


def test_acknowledging_twice_records_it_once(nurse_client, staff_client, physician, patient):
    alert = alert_at(patient, 5)
    nurse_client.post(f"{URL}/{alert.pk}/acknowledge", {"note": "mine"}, format="json")
    before = snapshot(alert)

    response = staff_client(physician).post(f"{URL}/{alert.pk}/acknowledge", format="json")

    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "nurse"
    assert snapshot(alert) == before


def test_a_resolved_alert_cannot_be_acknowledged(nurse_client, physician, patient):
    alert = alert_at(patient, 5)
    resolve_alert(alert=alert, user=physician, note="fine")
    before = snapshot(alert)

    response = nurse_client.post(f"{URL}/{alert.pk}/acknowledge", {"note": "x"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": "This alert is resolved."}
    assert snapshot(alert) == before


# --- Resolve ------------------------------------------------------------------------------


def test_resolving_with_a_note_records_who_and_why(staff_client, physician, patient):
    alert = alert_at(patient, 5, status="acknowledged")

    response = staff_client(physician).post(
        f"{URL}/{alert.pk}/resolve", {"note": "Juice taken; 112 mg/dL at recheck"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["resolved_by"], body["resolved_at"]) == (
        "resolved",
        "physician",
        "2026-03-01T12:00:00+00:00",
    )
    assert Alert.objects.get(pk=alert.pk).resolved_by == physician
    assert list(AlertEvent.objects.values_list("kind", "actor", "at", "note")) == [
        ("resolved", physician.pk, NOW, "Juice taken; 112 mg/dL at recheck")
    ]


def test_resolving_a_resolved_alert_is_a_409_and_changes_nothing(nurse_client, physician, patient):
    alert = alert_at(patient, 5)
    resolve_alert(alert=alert, user=physician, note="first")
    before = snapshot(alert)

    response = nurse_client.post(f"{URL}/{alert.pk}/resolve", {"note": "again"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": "This alert is already resolved."}
    assert snapshot(alert) == before


def test_a_note_longer_than_4000_characters_is_refused(nurse_client, patient):
    alert = alert_at(patient, 5)
    before = snapshot(alert)

    response = nurse_client.post(f"{URL}/{alert.pk}/resolve", {"note": "x" * 4001}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"note": ["Ensure this field has no more than 4000 characters."]},
    }
    assert snapshot(alert) == before


# --- Who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_another_teams_alert_is_a_404_and_nothing_changes(outsider_client, patient, action):
    alert = alert_at(patient, 5, next_escalation_at=NOW + 10 * MINUTE)
    before = snapshot(alert)

    response = outsider_client.post(f"{URL}/{alert.pk}/{action}", {"note": "x"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert snapshot(alert) == before
    assert AlertEvent.objects.count() == 0


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_another_teams_alert_looks_exactly_like_a_missing_one(outsider_client, patient, action):
    alert = alert_at(patient, 5)

    theirs = outsider_client.post(f"{URL}/{alert.pk}/{action}", {"note": "x"}, format="json")
    missing = outsider_client.post(f"{URL}/999999/{action}", {"note": "x"}, format="json")

    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_a_patient_token_may_not_act_on_alerts(patient_client, patient, action):
    alert = alert_at(patient, 5)
    before = snapshot(alert)

    response = patient_client.post(f"{URL}/{alert.pk}/{action}", {"note": "x"}, format="json")

    assert response.status_code == 403
    assert response.json() == NEEDS_STAFF
    assert snapshot(alert) == before


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_a_superuser_may_act_on_any_teams_alert(superuser, staff_client, other_patient, action):
    alert = alert_at(other_patient, 5)

    response = staff_client(superuser).post(f"{URL}/{alert.pk}/{action}", format="json")

    assert response.status_code == 200
    assert AlertEvent.objects.get().actor == superuser
