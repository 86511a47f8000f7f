"""Why an alert was resolved (issue 13.3): a reason with every resolve, required on the alert
page and in the queue's bulk action, optional in the API (the contract's body is {"note"}),
stored on the alert and in the resolved event; Vigil's own `expired` for an info alert that
expired."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from alerts.lifecycle import expire_info_alerts, resolve_alert
from alerts.models import PERSON_REASONS, Alert, AlertEvent, AlertStatus, ResolutionReason
from monitoring.models import AuditEvent
from tests.alerts.triage_helpers import (  # noqa: F401
    NOW,
    QUEUE,
    _messages,
    alert_of,
    frozen,
    page_url,
    root,
    select,
)
from tests.factories import AlertEventFactory

API = "/api/v1/alerts"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def state(alert: Alert) -> dict:
    return Alert.objects.filter(pk=alert.pk).values().get()


def events(alert: Alert) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert=alert)
        .order_by("id")
        .values_list("kind", "actor__username", "note", "data")
    )


def changes(patient) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(patient=patient)
        .exclude(action="view")
        .order_by("id")
        .values_list("actor", "action", "model", "object_id", "fields")
    )


def test_the_reasons_a_person_may_give_are_the_issues_four():
    assert PERSON_REASONS == [
        ("contacted_patient", "Contacted the patient"),
        ("escalated", "Escalated"),
        ("no_action_needed", "No action needed"),
        ("false_alarm", "False alarm"),
    ]


# --- The lifecycle ------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [value for value, _ in PERSON_REASONS])
def test_a_resolve_stores_the_reason_on_the_alert_and_in_its_event(patient, nurse, reason):
    alert = alert_of(patient)

    resolve_alert(alert=alert, user=nurse, note="Done.", reason=reason)

    fresh = state(alert)
    assert (fresh["status"], fresh["resolved_by_id"], fresh["resolution_reason"]) == (
        "resolved",
        nurse.pk,
        reason,
    )
    assert events(alert) == [("resolved", "nurse", "Done.", {"reason": reason})]


@pytest.mark.parametrize("reason", ["expired", "fixed", "FALSE_ALARM"])
def test_a_person_may_not_give_another_reason(patient, nurse, reason):
    alert = alert_of(patient)
    before = state(alert)

    with pytest.raises(ValueError):
        resolve_alert(alert=alert, user=nurse, note="Done.", reason=reason)

    assert state(alert) == before
    assert events(alert) == []


def test_an_expired_info_alert_gets_vigils_own_reason(patient, settings):
    alert = alert_of(patient, severity="info", expires_at=NOW - timedelta(minutes=1))

    assert expire_info_alerts(now=NOW) == 1

    assert state(alert)["resolution_reason"] == "expired"
    assert events(alert) == [("expired", None, "", {"reason": "expired"})]


def test_the_migration_marks_alerts_that_expired_before_reasons_existed(patient, nurse):
    # given: one expired and one resolved by a person, as they were stored before 0008
    expired = alert_of(patient, status=AlertStatus.RESOLVED, resolved_at=NOW)
    AlertEventFactory(alert=expired, kind="expired", at=NOW, data={})
    by_hand = alert_of(patient, status=AlertStatus.RESOLVED, resolved_by=nurse, resolved_at=NOW)
    AlertEventFactory(alert=by_hand, kind="resolved", at=NOW, data={})
    still_open = alert_of(patient)

    # when
    migration = __import__(
        "alerts.migrations.0008_resolution_reason", fromlist=["mark_expired_alerts"]
    )
    migration.mark_expired_alerts(apps, None)

    # then
    assert [state(a)["resolution_reason"] for a in (expired, by_hand, still_open)] == [
        "expired",
        "",
        "",
    ]


# --- The alert page and the queue ---------------------------------------------------------


def test_the_alert_page_needs_a_reason_and_writes_nothing_without_one(patient, nurse):
    alert = alert_of(patient)
    client = logged_in(nurse)
    before = state(alert)

    response = client.post(
        reverse("admin:alerts_alert_resolve", args=[alert.pk]), {"note": "Called her."}
    )

    assert response.status_code == 302
    assert state(alert) == before
    assert events(alert) == []
    assert changes(patient) == []
    assert _messages(client, response) == ["Pick why the alert is resolved."]


def test_the_alert_page_refuses_a_reason_that_is_not_offered(patient, nurse):
    alert = alert_of(patient)
    client = logged_in(nurse)
    before = state(alert)

    response = client.post(
        reverse("admin:alerts_alert_resolve", args=[alert.pk]),
        {"note": "Called her.", "reason": "expired"},
    )

    assert response.status_code == 302
    assert state(alert) == before
    assert events(alert) == []
    assert _messages(client, response) == [
        "Select a valid choice. expired is not one of the available choices."
    ]


def test_the_alert_page_resolves_with_the_reason_audited_and_shows_it(patient, nurse):
    # given
    alert = alert_of(patient)
    client = logged_in(nurse)
    page = client.get(page_url(alert)).content.decode()
    # The four reasons are offered, none preselected.
    for value, label in PERSON_REASONS:
        assert f'value="{value}"' in page
        assert label in page
    assert 'value="expired"' not in page

    # when
    response = client.post(
        reverse("admin:alerts_alert_resolve", args=[alert.pk]),
        {"note": "Meter error.", "reason": "false_alarm"},
    )

    # then
    assert state(alert)["resolution_reason"] == "false_alarm"
    assert events(alert) == [("resolved", "nurse", "Meter error.", {"reason": "false_alarm"})]
    assert changes(patient) == [
        ("nurse", "change", "alerts.alert", str(alert.pk), ["action:resolve"])
    ]
    assert _messages(client, response) == ["Alert resolved."]
    after = client.get(page_url(alert))
    assert [(e.kind, e.details) for e in after.context["timeline"]] == [
        ("resolved", ["False alarm"])
    ]
    assert "by nurse · False alarm" in after.content.decode()


def test_the_bulk_resolve_asks_for_a_reason_and_resolves_nothing_without_one(root, patient):
    first, second = alert_of(patient), alert_of(patient, severity="critical")

    response = select(root, "resolve_with_note", [first, second], apply="yes", note="Checked.")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Pick why the alert is resolved." in html
    for value, _ in PERSON_REASONS:
        assert f'value="{value}"' in html
    for alert in (first, second):
        assert (state(alert)["status"], events(alert)) == ("open", [])


def test_the_bulk_resolve_records_the_reason_on_each_alert(root, patient):
    first, second = alert_of(patient), alert_of(patient, severity="critical")

    response = select(
        root,
        "resolve_with_note",
        [first, second],
        url=QUEUE,
        apply="yes",
        note="Patient called: cuff was loose.",
        reason="contacted_patient",
    )

    assert response.status_code == 302
    for alert in (first, second):
        assert state(alert)["resolution_reason"] == "contacted_patient"
        assert events(alert) == [
            (
                "resolved",
                "root",
                "Patient called: cuff was loose.",
                {"reason": "contacted_patient"},
            )
        ]


# --- The API ------------------------------------------------------------------------------


def test_the_api_resolves_with_a_reason_and_shows_it(patient, physician, staff_client):
    alert = alert_of(patient)

    response = staff_client(physician).post(
        f"{API}/{alert.pk}/resolve", {"note": "Sent to ED.", "reason": "escalated"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["resolved_by"], body["resolution_reason"]) == (
        "resolved",
        "physician",
        "escalated",
    )
    assert events(alert) == [("resolved", "physician", "Sent to ED.", {"reason": "escalated"})]
    assert changes(patient) == [("physician", "change", "alerts.alert", str(alert.pk), ["status"])]
    listed = staff_client(physician).get(API, {"status": "resolved"}).json()["results"]
    assert [(a["id"], a["resolution_reason"]) for a in listed] == [(alert.pk, "escalated")]


def test_the_api_still_resolves_without_a_reason(patient, nurse_client, nurse):
    alert = alert_of(patient)

    response = nurse_client.post(f"{API}/{alert.pk}/resolve", {"note": "ok"}, format="json")

    assert response.status_code == 200
    assert response.json()["resolution_reason"] == ""
    assert state(alert)["resolution_reason"] == ""
    assert events(alert) == [("resolved", "nurse", "ok", {})]


@pytest.mark.parametrize("reason", ["expired", "fixed", "", None])
def test_the_api_refuses_an_unknown_reason_by_field_and_changes_nothing(
    patient, nurse_client, reason
):
    alert = alert_of(patient)
    before = state(alert)

    response = nurse_client.post(
        f"{API}/{alert.pk}/resolve", {"note": "ok", "reason": reason}, format="json"
    )

    assert response.status_code == 400
    message = (
        "This field may not be null." if reason is None else f'"{reason}" is not a valid choice.'
    )
    assert response.json() == {"detail": "Invalid input.", "errors": {"reason": [message]}}
    assert state(alert) == before
    assert events(alert) == []
    assert changes(patient) == []


def test_the_expired_reason_is_shown_by_the_api(patient, nurse_client):
    alert = alert_of(patient, severity="info", expires_at=NOW - timedelta(minutes=1))
    expire_info_alerts(now=NOW)

    listed = nurse_client.get(API, {"status": "resolved"}).json()["results"]

    assert [(a["id"], a["resolution_reason"]) for a in listed] == [
        (alert.pk, ResolutionReason.EXPIRED.value)
    ]
