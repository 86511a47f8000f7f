"""Notes and the call log on the patient page (program.reviews.write_note / recent_notes and
program.admin.reviews): a note or a call with its outcome, listed newest first, audited;
refusals write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from monitoring.models import AuditEvent
from program.models import PatientNote
from program.reviews import recent_notes, write_note
from tests.program.pages import logged_in, patient_page

# Monday 9 March 2026, 12:00 in New York (EDT), where `patient` lives.
NOW = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def write_url(patient) -> str:
    return reverse("admin:monitoring_patient_write_note", args=[patient.pk])


def notes(patient) -> list[tuple]:
    return list(
        PatientNote.objects.filter(patient=patient)
        .order_by("id")
        .values_list("author__username", "at", "kind", "call_outcome", "text")
    )


def changes(patient) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(patient=patient)
        .exclude(action="view")
        .order_by("id")
        .values_list("actor", "action", "model", "object_id", "surface")
    )


def messages_after(client, response) -> list[str]:
    return [str(m) for m in client.get(response.url).context["messages"]]


# --- The service --------------------------------------------------------------------------


def test_a_note_and_a_call_are_written(patient, nurse):
    write_note(patient=patient, user=nurse, text="  Daughter now helps with the scale. ", now=NOW)
    write_note(patient=patient, user=nurse, text="", kind="call", call_outcome="no_answer", now=NOW)

    assert notes(patient) == [
        ("nurse", NOW, "note", "", "Daughter now helps with the scale."),
        ("nurse", NOW, "call", "no_answer", ""),
    ]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"text": "  "}, {"text": ["Write the note."]}),
        (
            {"text": "x", "kind": "call"},
            {"call_outcome": ["Say how the call went: reached, left_message, no_answer."]},
        ),
        (
            {"text": "x", "kind": "call", "call_outcome": "voicemail"},
            {"call_outcome": ["Say how the call went: reached, left_message, no_answer."]},
        ),
        (
            {"text": "x", "call_outcome": "reached"},
            {"call_outcome": ["Only a call has an outcome."]},
        ),
        ({"text": "x", "kind": "email"}, {"kind": ["One of note, call."]}),
        ({"text": "x" * 4001}, {"text": ["At most 4000 characters."]}),
    ],
)
def test_refused_notes_say_why_by_field_and_write_nothing(patient, nurse, fields, errors):
    with pytest.raises(ValidationError) as refused:
        write_note(patient=patient, user=nurse, now=NOW, **fields)

    assert refused.value.message_dict == errors
    assert notes(patient) == []


def test_recent_notes_are_newest_first_and_bounded(patient, nurse, physician):
    for hours in (5, 1, 3):
        write_note(
            patient=patient, user=nurse, text=f"{hours} h ago", now=NOW - timedelta(hours=hours)
        )
    write_note(patient=patient, user=physician, text="now", now=NOW)

    assert [n.text for n in recent_notes(patient)] == ["now", "1 h ago", "3 h ago", "5 h ago"]
    assert [n.text for n in recent_notes(patient, limit=2)] == ["now", "1 h ago"]


# --- The patient page ---------------------------------------------------------------------


def test_a_call_is_logged_from_the_page_audited_and_listed(patient, nurse):
    # given
    client = logged_in(nurse)

    # when
    response = client.post(
        write_url(patient),
        {"kind": "call", "call_outcome": "left_message", "text": "Asked her to call back."},
    )

    # then
    assert response.status_code == 302
    assert response.url == f"{patient_page(patient)}#notes"
    assert notes(patient) == [("nurse", NOW, "call", "left_message", "Asked her to call back.")]
    note = PatientNote.objects.get()
    assert changes(patient) == [("nurse", "create", "program.patientnote", str(note.pk), "admin")]
    assert messages_after(client, response) == ["Call logged."]


def test_the_page_lists_notes_and_calls_newest_first_in_the_patients_time(
    patient, nurse, physician
):
    write_note(patient=patient, user=nurse, text="First", now=NOW - timedelta(days=1))
    write_note(
        patient=patient,
        user=physician,
        text="Reached her",
        kind="call",
        call_outcome="reached",
        now=NOW,
    )

    response = logged_in(nurse).get(patient_page(patient))

    section = response.context["reviews_and_notes"]
    assert [(at, n.text) for at, n in section.notes] == [
        ("9 Mar 2026, 12:00 EDT", "Reached her"),
        ("8 Mar 2026, 12:00 EDT", "First"),
    ]
    html = response.content.decode()
    assert html.index("Reached her") < html.index("First")
    assert "Call: Reached the patient" in html


def test_a_note_without_text_from_the_page_writes_nothing(patient, nurse):
    client = logged_in(nurse)

    response = client.post(write_url(patient), {"kind": "note", "call_outcome": "", "text": ""})

    assert response.status_code == 302
    assert notes(patient) == []
    assert changes(patient) == []
    assert messages_after(client, response) == ["Write the note."]


def test_an_unknown_kind_from_the_page_writes_nothing(patient, nurse):
    client = logged_in(nurse)

    response = client.post(write_url(patient), {"kind": "fax", "text": "x"})

    assert response.status_code == 302
    assert notes(patient) == []
    assert messages_after(client, response) == [
        "Select a valid choice. fax is not one of the available choices."
    ]


def test_another_team_gets_404_and_nothing_is_written(patient, outsider):
    response = logged_in(outsider).post(write_url(patient), {"kind": "note", "text": "x"})

    assert response.status_code == 404
    assert notes(patient) == []
    assert changes(patient) == []


def test_a_user_without_the_capability_gets_403(patient, nurse):
    from django.contrib.auth.models import Group, Permission

    Group.objects.get(name="nurse").permissions.remove(
        Permission.objects.get(codename="add_patientnote")
    )
    client = logged_in(nurse)

    response = client.post(write_url(patient), {"kind": "note", "text": "x"})

    assert response.status_code == 403
    assert notes(patient) == []
    assert changes(patient) == []
    assert (
        f'action="{write_url(patient)}"' not in client.get(patient_page(patient)).content.decode()
    )


def test_a_coordinator_writes_notes_too(patient, coordinator):
    response = logged_in(coordinator).post(
        write_url(patient), {"kind": "note", "text": "Sent the cuff."}
    )

    assert response.status_code == 302
    assert notes(patient) == [("coordinator", NOW, "note", "", "Sent the cuff.")]
