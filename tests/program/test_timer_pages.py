"""Care time and episodes in the admin, through the admin's own URLs: the timer box on the
patient page and the alert page (start, stop, discard), the patient page's care time this
month with its approve buttons, and the Episode and TimeEntry admins (scoped, audited)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from monitoring.models import AuditEvent
from program.models import Episode, TimeEntry
from tests.factories import AlertFactory
from tests.program.factories import EpisodeFactory, TimeEntryFactory
from tests.program.pages import alert_page, logged_in, patient_page

pytestmark = pytest.mark.django_db

# 11:00 in New York (EDT; the `patient` fixture's zone), Tuesday 10 March 2026.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
START = reverse("admin:program_timeentry_timer_start")


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def stop_url(entry) -> str:
    return reverse("admin:program_timeentry_timer_stop", args=[entry.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def box(html: str, element_id: str) -> str:
    match = re.search(rf'<div class="module[^"]*" id="{element_id}"[^>]*>.*?\n</div>', html, re.S)
    assert match, f"no #{element_id}"
    return " ".join(match[0].split())  # as read: whitespace runs are one space


def audit_rows():
    return list(
        AuditEvent.objects.order_by("pk").values_list(
            "user__username", "patient_id", "action", "model", "fields", "surface"
        )
    )


# --- The timer on the patient page ------------------------------------------------------------


def test_the_patient_page_offers_to_start_a_timer(patient, nurse):
    html = logged_in(nurse).get(patient_page(patient)).content.decode()

    timer = box(html, "care-time-timer")
    assert f'action="{START}"' in timer
    assert f'name="patient" value="{patient.pk}"' in timer
    assert 'value="Start timer"' in timer
    assert "<script" not in timer  # CSP: plain forms, no inline script


def test_a_timer_is_started_from_the_patient_page_and_audited(patient, nurse):
    client = logged_in(nurse)

    response = client.post(
        START, {"patient": patient.pk, "next": patient_page(patient)}, follow=True
    )

    assert response.redirect_chain == [(patient_page(patient), 302)]
    assert messages_of(response) == ["Timer started."]
    timer = TimeEntry.objects.get()
    assert (timer.user_id, timer.patient_id, timer.alert_id, timer.is_running) == (
        nurse.pk,
        patient.pk,
        None,
        True,
    )
    assert ("nurse", patient.pk, "create", "program.timeentry", [], "admin") in audit_rows()
    box_html = box(response.content.decode(), "care-time-timer")
    assert "Your timer is running on this patient since 10 Mar 2026, 11:00 EDT" in box_html
    assert "<strong>0 min</strong>" not in box_html and "<strong>1 min</strong>" in box_html
    assert f'action="{stop_url(timer)}"' in box_html


def test_the_running_timer_shows_its_minutes_and_is_stopped_with_what_was_done(
    patient, nurse, time_machine
):
    client = logged_in(nurse)
    client.post(START, {"patient": patient.pk})
    timer = TimeEntry.objects.get()
    time_machine.move_to(NOW + timedelta(minutes=12, seconds=10), tick=False)

    page = client.get(patient_page(patient)).content.decode()
    response = client.post(
        stop_url(timer),
        {
            "activity": "phone_call",
            "interactive": "on",
            "note": "Called about the weights.",
            "next": patient_page(patient),
        },
        follow=True,
    )

    assert "<strong>12 min</strong>" in box(page, "care-time-timer")
    assert messages_of(response) == ["Timer stopped: 12 min logged."]
    timer.refresh_from_db()
    assert (timer.minutes, timer.activity, timer.interactive, timer.note, timer.capped) == (
        12,
        "phone_call",
        True,
        "Called about the weights.",
        False,
    )
    assert audit_rows()[-2][:5] == (
        "nurse",
        patient.pk,
        "change",
        "program.timeentry",
        ["activity", "interactive", "minutes", "note", "stopped_at"],
    )
    assert 'value="Start timer"' in box(response.content.decode(), "care-time-timer")


def test_a_timer_past_the_cap_says_so_and_stops_at_the_cap(patient, nurse, time_machine):
    logged_in(nurse).post(START, {"patient": patient.pk})
    timer = TimeEntry.objects.get()
    time_machine.move_to(NOW + timedelta(hours=2), tick=False)
    client = logged_in(nurse)  # the first session has expired by now

    page = client.get(patient_page(patient)).content.decode()
    response = client.post(stop_url(timer), {"activity": "data_review"}, follow=True)

    assert "Past the 60-minute cap: it counts 60 minutes, flagged for the approver." in page
    assert messages_of(response) == ["Timer stopped: 60 min logged, capped at 60 minutes."]
    timer.refresh_from_db()
    assert (timer.minutes, timer.capped) == (60, True)


def test_a_second_timer_is_refused_and_the_running_one_shown(patient, nurse, team):
    from tests.factories import PatientFactory

    elsewhere = PatientFactory(care_team=team)
    client = logged_in(nurse)
    client.post(START, {"patient": patient.pk})

    response = client.post(
        START, {"patient": elsewhere.pk, "next": patient_page(elsewhere)}, follow=True
    )

    assert messages_of(response)[-1:] == [
        "Your timer is running already (since 10 Mar 2026, 11:00 EDT, shown in the timer box): "
        "stop it first."
    ]
    assert TimeEntry.objects.count() == 1
    timer_box = box(response.content.decode(), "care-time-timer")
    assert "Your timer is running on" in timer_box
    assert f'href="{patient_page(patient)}">another patient</a>' in timer_box


def test_a_wrong_stop_leaves_the_timer_running(patient, nurse):
    client = logged_in(nurse)
    client.post(START, {"patient": patient.pk})
    timer = TimeEntry.objects.get()

    response = client.post(
        stop_url(timer), {"activity": "message", "interactive": "on"}, follow=True
    )

    assert messages_of(response)[-1:] == [
        "The timer is still running: Only a phone or video call is a real-time interactive "
        "communication."
    ]
    assert TimeEntry.objects.get().is_running


def test_nobody_stops_or_discards_another_users_timer(patient, nurse, physician):
    timer = TimeEntryFactory(patient=patient, user=nurse, running=True, started_at=NOW)
    client = logged_in(physician)

    stopped = client.post(stop_url(timer), {"activity": "data_review"}, follow=True)
    discarded = client.post(
        reverse("admin:program_timeentry_timer_discard", args=[timer.pk]), follow=True
    )

    assert messages_of(stopped) == ["You have no such timer."]
    assert messages_of(discarded) == ["You have no such running timer."]
    assert TimeEntry.objects.get().is_running
    assert AuditEvent.objects.filter(action__in=["change", "delete"]).count() == 0


def test_a_timer_started_by_mistake_is_discarded(patient, nurse):
    client = logged_in(nurse)
    client.post(START, {"patient": patient.pk})
    timer = TimeEntry.objects.get()

    response = client.post(
        reverse("admin:program_timeentry_timer_discard", args=[timer.pk]), follow=True
    )

    assert messages_of(response)[-1:] == ["Timer discarded: nothing logged."]
    assert TimeEntry.objects.count() == 0
    assert audit_rows()[-2][:4] == ("nurse", patient.pk, "delete", "program.timeentry")


def test_another_teams_patient_is_not_found_and_nothing_is_written(other_patient, nurse):
    response = logged_in(nurse).post(START, {"patient": other_patient.pk})

    assert response.status_code == 404
    assert TimeEntry.objects.count() == 0


def test_the_timer_buttons_take_posts_only(patient, nurse):
    assert logged_in(nurse).get(START, {"patient": patient.pk}).status_code == 405
    assert TimeEntry.objects.count() == 0


def test_the_page_to_return_to_is_this_sites_only(patient, nurse):
    response = logged_in(nurse).post(
        START, {"patient": patient.pk, "next": "https://evil.example/"}
    )

    assert response.status_code == 302
    assert response["Location"] == patient_page(patient)


# --- The timer on the alert page ------------------------------------------------------------


def test_a_timer_is_started_from_the_alert_page_for_that_alert(patient, nurse):
    alert = AlertFactory(patient=patient)
    client = logged_in(nurse)

    page = client.get(alert_page(alert)).content.decode()
    response = client.post(
        START, {"patient": patient.pk, "alert": alert.pk, "next": alert_page(alert)}, follow=True
    )

    timer_box = box(page, "care-time-timer")
    assert f'name="alert" value="{alert.pk}"' in timer_box
    assert response.redirect_chain == [(alert_page(alert), 302)]
    assert TimeEntry.objects.get().alert_id == alert.pk
    assert "Your timer is running on this patient" in response.content.decode()


def test_an_alert_of_another_patient_is_not_found(patient, nurse, other_patient):
    alert = AlertFactory(patient=other_patient)

    response = logged_in(nurse).post(START, {"patient": patient.pk, "alert": alert.pk})

    assert response.status_code == 404
    assert TimeEntry.objects.count() == 0


# --- Care time this month on the patient page -----------------------------------------------


def test_the_patient_page_lists_this_months_time_with_approve_buttons_for_approvers(
    patient, nurse, physician
):
    nurses = TimeEntryFactory(
        patient=patient,
        user=nurse,
        minutes=12,
        interactive=True,
        started_at=NOW - timedelta(days=1),
    )
    physicians = TimeEntryFactory(
        patient=patient, user=physician, minutes=5, started_at=NOW - timedelta(hours=1)
    )
    approved = TimeEntryFactory(
        patient=patient, minutes=7, approved=True, started_at=NOW - timedelta(hours=2)
    )
    # 1 March 03:00 UTC is 28 February in New York: last month.
    TimeEntryFactory(patient=patient, minutes=30, started_at=datetime(2026, 3, 1, 3, tzinfo=UTC))

    as_physician = box(
        logged_in(physician).get(patient_page(patient)).content.decode(), "care-time"
    )
    as_nurse = box(logged_in(nurse).get(patient_page(patient)).content.decode(), "care-time")

    assert "Care time, March 2026" in as_physician
    assert "24 min logged, 7 min approved;" in as_physician
    assert "an interactive communication this month" in as_physician
    assert re.findall(r'data-entry="(\d+)"', as_physician) == [
        str(physicians.pk),
        str(approved.pk),
        str(nurses.pk),
    ]
    approve_buttons = re.findall(r"/admin/program/timeentry/(\d+)/approve/", as_physician)
    assert approve_buttons == [str(nurses.pk)]  # not their own, not the approved one
    assert re.findall(r"/approve/", as_nurse) == []


def test_an_entry_is_approved_from_the_patient_page(patient, nurse, physician):
    entry = TimeEntryFactory(patient=patient, user=nurse)

    response = logged_in(physician).post(
        reverse("admin:program_timeentry_approve", args=[entry.pk]),
        {"next": patient_page(patient)},
        follow=True,
    )

    assert messages_of(response) == ["Approved 10 min of nurse."]
    entry.refresh_from_db()
    assert (entry.approved_by_id, entry.approved_at) == (physician.pk, NOW)
    assert audit_rows()[-2][:5] == (
        "physician",
        patient.pk,
        "change",
        "program.timeentry",
        ["approved_at", "approved_by"],
    )


def test_a_nurse_may_not_approve_from_the_page(patient, nurse, coordinator):
    entry = TimeEntryFactory(patient=patient, user=coordinator)

    response = logged_in(nurse).post(reverse("admin:program_timeentry_approve", args=[entry.pk]))

    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.approved_at is None


def test_another_teams_entry_is_not_found_to_approve(other_patient, physician):
    entry = TimeEntryFactory(patient=other_patient)

    response = logged_in(physician).post(
        reverse("admin:program_timeentry_approve", args=[entry.pk])
    )

    assert response.status_code == 404
    entry.refresh_from_db()
    assert entry.approved_at is None


# --- The TimeEntry admin ----------------------------------------------------------------------


def test_the_approve_action_approves_what_the_physician_may_and_says_what_it_left(
    patient, nurse, physician
):
    nurses = TimeEntryFactory(patient=patient, user=nurse)
    own = TimeEntryFactory(patient=patient, user=physician)

    response = logged_in(physician).post(
        reverse("admin:program_timeentry_changelist"),
        {"action": "approve", "_selected_action": [nurses.pk, own.pk]},
        follow=True,
    )

    assert messages_of(response) == [
        "Approved 1 time entry.",
        f"Left alone: {own.pk} (Nobody approves their own time entry, except the billing "
        "practitioner of the episode.)",
    ]
    assert list(
        TimeEntry.objects.filter(approved_at__isnull=False).values_list("pk", flat=True)
    ) == [nurses.pk]


def test_the_approve_action_is_not_offered_to_nurses(patient, nurse):
    TimeEntryFactory(patient=patient)

    response = logged_in(nurse).get(reverse("admin:program_timeentry_changelist"))

    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action at all


def test_time_is_logged_by_hand_in_the_admin(patient, nurse):
    response = logged_in(nurse).post(
        reverse("admin:program_timeentry_add"),
        {
            "patient": patient.pk,
            "started_at_0": "2026-03-10",
            "started_at_1": "14:00:00",
            "minutes": "20",
            "activity": "care_plan",
            "note": "Care plan updated.",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = TimeEntry.objects.get()
    assert (entry.user_id, entry.source, entry.minutes, entry.activity) == (
        nurse.pk,
        "manual",
        20,
        "care_plan",
    )
    assert ("nurse", patient.pk, "create", "program.timeentry", [], "admin") in audit_rows()


def test_a_wrong_entry_is_shown_beside_its_fields_and_nothing_is_written(patient, nurse):
    response = logged_in(nurse).post(
        reverse("admin:program_timeentry_add"),
        {
            "patient": patient.pk,
            "started_at_0": "2026-03-10",
            "started_at_1": "14:00:00",
            "minutes": "500",
            "activity": "data_review",
            "interactive": "on",
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "minutes": ["Between 1 and 120 minutes."],
        "interactive": ["Only a phone or video call is a real-time interactive communication."],
    }
    assert TimeEntry.objects.count() == 0


def test_the_author_changes_an_unapproved_entry_others_only_see_it(patient, nurse, physician):
    entry = TimeEntryFactory(patient=patient, user=nurse, started_at=NOW - timedelta(hours=2))
    url = reverse("admin:program_timeentry_change", args=[entry.pk])
    body = {
        "started_at_0": "2026-03-10",
        "started_at_1": "12:30:00",
        "minutes": "25",
        "activity": "data_review",
        "note": "Reviewed two weeks of readings.",
    }

    by_physician = logged_in(physician).post(url, body)
    by_author = logged_in(nurse).post(url, body)

    assert by_physician.status_code == 403
    assert by_author.status_code == 302
    entry.refresh_from_db()
    assert (entry.minutes, entry.note) == (25, "Reviewed two weeks of readings.")
    assert AuditEvent.objects.filter(action="change", user=nurse).values_list(
        "fields", flat=True
    ).get() == ["minutes", "note", "started_at"]


def test_an_approved_entry_is_changed_by_nobody(patient, nurse):
    entry = TimeEntryFactory(patient=patient, user=nurse, approved=True)

    response = logged_in(nurse).post(
        reverse("admin:program_timeentry_change", args=[entry.pk]),
        {
            "started_at_0": "2026-03-10",
            "started_at_1": "13:00:00",
            "minutes": "99",
            "activity": "data_review",
        },
    )

    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.minutes == 10


def test_another_teams_entries_are_not_found_in_the_admin(other_patient, nurse):
    entry = TimeEntryFactory(patient=other_patient)

    response = logged_in(nurse).get(reverse("admin:program_timeentry_change", args=[entry.pk]))

    assert response.status_code == 404


# --- The Episode admin ----------------------------------------------------------------------


def episode_form(patient, physician, **overrides) -> dict:
    return {
        "patient": patient.pk,
        "start": "2026-03-02",
        "consent_at_0": "2026-03-02",
        "consent_at_1": "14:00:00",
        "consent_method": "verbal",
        "billing_practitioner": physician.pk,
        "conditions": "i10, E11.9",
    } | overrides


def test_a_coordinator_starts_an_episode_in_the_admin(patient, physician, coordinator):
    response = logged_in(coordinator).post(
        reverse("admin:program_episode_add"), episode_form(patient, physician)
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    episode = Episode.objects.get()
    assert (episode.start, episode.billing_practitioner_id, episode.conditions) == (
        date(2026, 3, 2),
        physician.pk,
        ["I10", "E11.9"],
    )
    assert (episode.consent_method, episode.created_by_id) == ("verbal", coordinator.pk)
    assert ("coordinator", patient.pk, "create", "program.episode", [], "admin") in audit_rows()


def test_the_admin_shows_the_episodes_rules_beside_the_fields(
    patient, physician, nurse, coordinator
):
    running = EpisodeFactory(
        patient=patient, start=date(2026, 1, 5), billing_practitioner=physician
    )

    response = logged_in(coordinator).post(
        reverse("admin:program_episode_add"),
        episode_form(patient, nurse, conditions="I10, X"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "billing_practitioner": ["'nurse' is not an active physician of the patient's care team."],
        "conditions": [
            "Item 2: Not an ICD-10-CM code: a letter, a digit and a digit or letter, then "
            'optionally a dot and up to four more, e.g. "I10" or "E11.9".'
        ],
    }
    ok_otherwise = logged_in(coordinator).post(
        reverse("admin:program_episode_add"), episode_form(patient, physician)
    )
    assert ok_otherwise.context["adminform"].form.errors == {
        "start": [
            f"The patient has an open episode (episode {running.pk}, started 2026-01-05): end "
            "it first."
        ]
    }
    assert Episode.objects.count() == 1


def test_nurses_do_not_start_episodes_in_the_admin(patient, physician, nurse):
    response = logged_in(nurse).post(
        reverse("admin:program_episode_add"), episode_form(patient, physician)
    )

    assert response.status_code == 403
    assert Episode.objects.count() == 0


def test_a_coordinator_ends_an_episode_in_the_admin(patient, physician, coordinator):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 1, 5), billing_practitioner=physician
    )
    url = reverse("admin:program_episode_change", args=[episode.pk])

    too_early = logged_in(coordinator).post(url, {"end": "2026-01-04"})
    ended = logged_in(coordinator).post(url, {"end": "2026-03-09"})

    assert too_early.context["adminform"].form.errors == {
        "end": ["Is before the episode's start (2026-01-05)."]
    }
    assert ended.status_code == 302
    episode.refresh_from_db()
    assert (episode.end, episode.ended_by_id) == (date(2026, 3, 9), coordinator.pk)
    assert AuditEvent.objects.filter(action="change", model="program.episode").values_list(
        "fields", flat=True
    ).get() == ["end"]


def test_an_ended_episode_is_shown_not_changed(patient, physician, coordinator):
    episode = EpisodeFactory(
        patient=patient,
        start=date(2026, 1, 5),
        end=date(2026, 2, 1),
        billing_practitioner=physician,
    )
    url = reverse("admin:program_episode_change", args=[episode.pk])

    shown = logged_in(coordinator).get(url)
    posted = logged_in(coordinator).post(url, {"end": "2026-03-01"})

    assert shown.status_code == 200
    assert shown.context["adminform"].form.fields == {}
    assert posted.status_code == 403
    episode.refresh_from_db()
    assert episode.end == date(2026, 2, 1)


def test_the_patient_pages_link_lists_that_patients_entries(patient, team, nurse):
    from tests.factories import PatientFactory

    mine = TimeEntryFactory(patient=patient)
    TimeEntryFactory(patient=PatientFactory(care_team=team))

    response = logged_in(nurse).get(
        reverse("admin:program_timeentry_changelist"), {"patient": patient.pk}
    )

    assert [entry.pk for entry in response.context["cl"].result_list] == [mine.pk]


def test_another_teams_episodes_are_not_found_in_the_admin(other_patient, coordinator):
    episode = EpisodeFactory(patient=other_patient)

    response = logged_in(coordinator).get(
        reverse("admin:program_episode_change", args=[episode.pk])
    )

    assert response.status_code == 404


def test_the_add_and_list_pages_render(patient, physician, coordinator, nurse):
    EpisodeFactory(patient=patient, billing_practitioner=physician)
    TimeEntryFactory(patient=patient, user=nurse)

    pages = [
        logged_in(coordinator).get(reverse("admin:program_episode_add")),
        logged_in(coordinator).get(reverse("admin:program_episode_changelist")),
        logged_in(nurse).get(reverse("admin:program_timeentry_add"), {"patient": patient.pk}),
        logged_in(nurse).get(reverse("admin:program_timeentry_changelist")),
    ]

    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    assert "<script>" not in pages[0].content.decode()
