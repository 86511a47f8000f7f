"""A note on an alert that changes nothing else, and assigning an alert to another member of
the patient's team (issue 13.3): alerts.lifecycle.note_alert / assign_alert, and the alert
page's forms (AlertAdmin.note_view / assign_view), audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from alerts.lifecycle import (
    EmptyNote,
    InvalidAssignee,
    InvalidTransition,
    assign_alert,
    note_alert,
    resolve_alert,
)
from alerts.models import Alert, AlertEvent, AlertStatus
from monitoring.models import AuditEvent
from tests.alerts.triage_helpers import (  # noqa: F401
    NOW,
    _messages,
    alert_of,
    frozen,
    page_url,
)
from tests.factories import MembershipFactory, UserFactory


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def state(alert: Alert) -> dict:
    """Every field of the alert, as stored."""
    return Alert.objects.filter(pk=alert.pk).values().get()


def events(alert: Alert) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert=alert)
        .order_by("id")
        .values_list("kind", "actor__username", "at", "note", "data")
    )


def changes(patient) -> list[tuple]:
    """The audit rows of changes to the patient's data (not the page views)."""
    return list(
        AuditEvent.objects.filter(patient=patient)
        .exclude(action="view")
        .order_by("id")
        .values_list("actor", "action", "model", "object_id", "fields")
    )


# --- A note -------------------------------------------------------------------------------


def test_a_note_is_an_event_and_changes_nothing_else(patient, nurse):
    # given
    alert = alert_of(patient, status=AlertStatus.ACKNOWLEDGED, assignee=nurse)
    before = state(alert)

    # when
    event = note_alert(alert=alert, user=nurse, note="  Left a voicemail; will retry at 3.  ")

    # then
    assert state(alert) == before
    assert events(alert) == [("note", "nurse", NOW, "Left a voicemail; will retry at 3.", {})]
    assert event.kind == "note"


def test_a_resolved_alert_takes_a_note_too(patient, nurse, physician):
    alert = alert_of(patient)
    resolve_alert(alert=alert, user=physician, note="Fine.", reason="no_action_needed")
    before = state(alert)

    note_alert(alert=alert, user=nurse, note="Patient called back: all well.")

    assert state(alert) == before
    assert [e[:2] for e in events(alert)] == [("resolved", "physician"), ("note", "nurse")]


def test_an_empty_note_is_refused_and_writes_nothing(patient, nurse):
    alert = alert_of(patient)

    with pytest.raises(EmptyNote):
        note_alert(alert=alert, user=nurse, note="   ")

    assert events(alert) == []


def test_the_alert_page_adds_a_note_audited_and_shows_it_in_the_timeline(patient, nurse):
    # given
    alert = alert_of(patient)
    client = logged_in(nurse)
    before = state(alert)

    # when
    response = client.post(
        reverse("admin:alerts_alert_note", args=[alert.pk]), {"note": "Glucometer replaced."}
    )

    # then
    assert response.status_code == 302
    assert response.url == page_url(alert)
    assert state(alert) == before
    assert events(alert) == [("note", "nurse", NOW, "Glucometer replaced.", {})]
    assert changes(patient) == [("nurse", "change", "alerts.alert", str(alert.pk), ["action:note"])]
    assert _messages(client, response) == ["Note added."]
    page = client.get(page_url(alert))
    assert [(e.kind, e.actor, e.note) for e in page.context["timeline"]] == [
        ("note", "nurse", "Glucometer replaced.")
    ]
    assert 'action="' + reverse("admin:alerts_alert_note", args=[alert.pk]) in (
        page.content.decode()
    )


def test_an_empty_note_from_the_page_writes_nothing(patient, nurse):
    alert = alert_of(patient)
    client = logged_in(nurse)

    response = client.post(reverse("admin:alerts_alert_note", args=[alert.pk]), {"note": ""})

    assert response.status_code == 302
    assert events(alert) == []
    assert changes(patient) == []
    assert _messages(client, response) == ["Write the note."]


def test_a_coordinator_may_not_add_a_note_and_another_team_gets_404(patient, coordinator, outsider):
    alert = alert_of(patient)
    url = reverse("admin:alerts_alert_note", args=[alert.pk])

    assert logged_in(coordinator).post(url, {"note": "x"}).status_code == 403
    assert logged_in(outsider).post(url, {"note": "x"}).status_code == 404
    assert events(alert) == []
    assert changes(patient) == []
    # The coordinator's page offers no note form.
    page = logged_in(coordinator).get(page_url(alert)).content.decode()
    assert url not in page


# --- Assigning ----------------------------------------------------------------------------


def test_a_nurse_assigns_the_alert_to_a_physician_of_the_team(patient, nurse, physician):
    # given
    alert = alert_of(patient, assignee=nurse)
    client = logged_in(nurse)

    # when
    response = client.post(
        reverse("admin:alerts_alert_assign", args=[alert.pk]), {"assignee": physician.pk}
    )

    # then: who assigned whom, from whom
    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.assignee, alert.status) == (physician, AlertStatus.OPEN)
    assert events(alert) == [
        ("assigned", "nurse", NOW, "", {"assignee": physician.pk, "previous_assignee": nurse.pk})
    ]
    assert changes(patient) == [
        ("nurse", "change", "alerts.alert", str(alert.pk), ["action:assign"])
    ]
    assert _messages(client, response) == ["Alert assigned to physician."]
    timeline = client.get(page_url(alert)).context["timeline"]
    assert [(e.kind, e.actor, e.details) for e in timeline] == [
        ("assigned", "nurse", ["to physician", "from nurse"])
    ]


def test_the_page_offers_the_teams_active_nurses_and_physicians_only(
    patient, team, nurse, physician, coordinator, outsider
):
    # given: an inactive nurse of the team, and a physician of another team
    MembershipFactory(team=team, user=UserFactory(username="retired", is_active=False))
    alert = alert_of(patient)

    # when
    page = logged_in(nurse).get(page_url(alert))

    # then
    assert [user.username for user in page.context["assignable"]] == ["nurse", "physician"]
    html = page.content.decode()
    assert f'<option value="{physician.pk}">physician</option>' in html
    assert f'value="{coordinator.pk}"' not in html


@pytest.mark.parametrize("who", ["coordinator", "outsider", "inactive"])
def test_assigning_to_someone_who_does_not_triage_the_patient_is_refused(
    patient, team, nurse, coordinator, outsider, who
):
    # given
    inactive = MembershipFactory(
        team=team, user=UserFactory(username="retired", is_active=False)
    ).user
    assignee = {"coordinator": coordinator, "outsider": outsider, "inactive": inactive}[who]
    alert = alert_of(patient)
    client = logged_in(nurse)
    before = state(alert)

    # when: through the page, and through the lifecycle directly
    response = client.post(
        reverse("admin:alerts_alert_assign", args=[alert.pk]), {"assignee": assignee.pk}
    )
    with pytest.raises(InvalidAssignee):
        assign_alert(alert=alert, user=nurse, assignee=assignee)

    # then: nothing changed, nothing recorded
    assert state(alert) == before
    assert events(alert) == []
    assert changes(patient) == []
    assert _messages(client, response) == [
        "Only an active nurse or physician of the patient's team may be assigned the alert."
    ]


def test_assigning_oneself_needs_no_membership(patient, superuser):
    # "Assign to me" by a superuser, who triages every team without belonging to it.
    alert = alert_of(patient)

    assign_alert(alert=alert, user=superuser, assignee=superuser)

    alert.refresh_from_db()
    assert alert.assignee == superuser


def test_a_resolved_alert_is_not_assigned(patient, nurse, physician):
    alert = alert_of(patient, status=AlertStatus.RESOLVED)
    before = state(alert)

    with pytest.raises(InvalidTransition):
        assign_alert(alert=alert, user=nurse, assignee=physician)

    assert state(alert) == before
    assert events(alert) == []


def test_a_coordinator_may_not_assign(patient, coordinator, physician):
    alert = alert_of(patient)

    response = logged_in(coordinator).post(
        reverse("admin:alerts_alert_assign", args=[alert.pk]), {"assignee": physician.pk}
    )

    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.assignee is None
    assert events(alert) == []
