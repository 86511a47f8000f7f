"""The care-time API (docs/api.md, "The RPM program"): GET/POST
/api/v1/patients/{id}/time-entries, POST /api/v1/time-entries/{id}/approve; every answer is
checked against the OpenAPI document (tests/openapi_responses.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from monitoring.models import AuditEvent
from monitoring.views import REFUSALS
from program.care_time import OWN_ENTRY_REFUSAL
from program.models import TimeEntry
from tests.program.factories import EpisodeFactory, TimeEntryFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
BODY = {
    "started_at": "2026-03-10T09:30:00-05:00",
    "minutes": 12,
    "activity": "phone_call",
    "interactive": True,
    "note": "Discussed the rising weights.",
}


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/time-entries"


def approve_url(entry) -> str:
    return f"/api/v1/time-entries/{entry.pk}/approve"


def audit_rows():
    return list(
        AuditEvent.objects.order_by("pk").values_list(
            "user__username", "patient_id", "action", "model", "object_id", "fields"
        )
    )


# --- Logging --------------------------------------------------------------------------------


def test_a_member_logs_time_by_hand(patient, nurse_client):
    response = nurse_client.post(url(patient), BODY, format="json")

    assert response.status_code == 201, response.content
    entry = TimeEntry.objects.get()
    assert response.json() == {
        "id": entry.pk,
        "patient": patient.pk,
        "user": "nurse",
        "source": "manual",
        "started_at": "2026-03-10T14:30:00+00:00",
        "stopped_at": None,
        "minutes": 12,
        "running": False,
        "activity": "phone_call",
        "interactive": True,
        "note": "Discussed the rising weights.",
        "capped": False,
        "alert": None,
        "approved_by": None,
        "approved_at": None,
    }
    assert audit_rows() == [("nurse", patient.pk, "create", "program.timeentry", str(entry.pk), [])]


def test_interactive_and_note_may_be_left_out(patient, nurse_client):
    body = {"started_at": "2026-03-10T09:30:00-05:00", "minutes": 5, "activity": "data_review"}

    response = nurse_client.post(url(patient), body, format="json")

    assert response.status_code == 201
    assert (response.json()["interactive"], response.json()["note"]) == (False, "")


def test_the_body_is_read_field_by_field(patient, nurse_client):
    response = nurse_client.post(
        url(patient),
        {"started_at": "yesterday", "minutes": "ten", "activity": "lunch"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "started_at": [
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
        ],
        "minutes": ["A valid integer is required."],
        "activity": ['"lunch" is not a valid choice.'],
    }
    assert TimeEntry.objects.count() == 0


def test_the_entrys_rules_answer_per_field(patient, nurse_client):
    response = nurse_client.post(
        url(patient),
        BODY | {"minutes": 500, "activity": "message", "started_at": "2026-03-10T16:00:00Z"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "started_at": ["Is in the future."],
            "minutes": ["Between 1 and 120 minutes."],
            "interactive": ["Only a phone or video call is a real-time interactive communication."],
        },
    }
    assert TimeEntry.objects.count() == 0


def test_time_for_another_teams_patient_is_not_found(other_patient, nurse_client):
    response = nurse_client.post(url(other_patient), BODY, format="json")

    assert response.status_code == 404
    assert TimeEntry.objects.count() == 0
    assert audit_rows() == [("nurse", other_patient.pk, "refused", "program.timeentry", "", [])]


# --- Listing --------------------------------------------------------------------------------


def test_members_list_the_patients_entries_latest_first_by_local_month(
    patient, physician, nurse_client
):
    march = TimeEntryFactory(patient=patient, started_at=datetime(2026, 3, 9, 14, tzinfo=UTC))
    # 03:00 UTC on 1 March is still 28 February in New York.
    february = TimeEntryFactory(patient=patient, started_at=datetime(2026, 3, 1, 3, tzinfo=UTC))
    first_of_march = TimeEntryFactory(
        patient=patient, started_at=datetime(2026, 3, 1, 5, tzinfo=UTC), approved=True
    )

    every = nurse_client.get(url(patient))
    in_march = nurse_client.get(url(patient), {"month": "2026-03"})
    in_february = nurse_client.get(url(patient), {"month": "2026-02"})

    assert [row["id"] for row in every.json()["results"]] == [
        march.pk,
        first_of_march.pk,
        february.pk,
    ]
    assert [row["id"] for row in in_march.json()["results"]] == [march.pk, first_of_march.pk]
    assert [row["id"] for row in in_february.json()["results"]] == [february.pk]
    assert in_march.json()["results"][1]["approved_by"] == first_of_march.approved_by.username
    assert every.json()["count"] == 3


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "March"])
def test_a_wrong_month_is_refused(patient, nurse_client, month):
    response = nurse_client.get(url(patient), {"month": month})

    assert response.status_code == 400
    assert response.json()["errors"] == {"month": ['A month as "YYYY-MM", e.g. "2026-03".']}


def test_another_teams_entries_are_not_found(other_patient, nurse_client):
    TimeEntryFactory(patient=other_patient)

    assert nurse_client.get(url(other_patient)).status_code == 404


# --- Approving ------------------------------------------------------------------------------


def test_a_physician_approves_a_nurses_entry(patient, nurse, physician, staff_client):
    entry = TimeEntryFactory(patient=patient, user=nurse)

    response = staff_client(physician).post(approve_url(entry))

    assert response.status_code == 200
    assert (response.json()["approved_by"], response.json()["approved_at"]) == (
        "physician",
        "2026-03-10T15:00:00+00:00",
    )
    entry.refresh_from_db()
    assert (entry.approved_by_id, entry.approved_at) == (physician.pk, NOW)
    assert audit_rows() == [
        (
            "physician",
            patient.pk,
            "change",
            "program.timeentry",
            str(entry.pk),
            ["approved_at", "approved_by"],
        )
    ]


def test_the_billing_practitioner_approves_their_own_entry(patient, physician, staff_client):
    EpisodeFactory(patient=patient, start=date(2026, 3, 1), billing_practitioner=physician)
    entry = TimeEntryFactory(patient=patient, user=physician)

    response = staff_client(physician).post(approve_url(entry))

    assert response.status_code == 200
    assert response.json()["approved_by"] == "physician"


@pytest.mark.parametrize(
    ("persona", "author", "detail"),
    [
        ("nurse", "coordinator", REFUSALS["program.approve_timeentry"]),
        ("coordinator", "nurse", REFUSALS["program.approve_timeentry"]),
        ("physician", "physician", OWN_ENTRY_REFUSAL),
    ],
)
def test_who_may_not_approve_is_told_why(
    patient, nurse, physician, coordinator, staff_client, persona, author, detail
):
    people = {"nurse": nurse, "physician": physician, "coordinator": coordinator}
    entry = TimeEntryFactory(patient=patient, user=people[author])

    response = staff_client(people[persona]).post(approve_url(entry))

    assert response.status_code == 403
    assert response.json() == {"detail": detail}
    entry.refresh_from_db()
    assert entry.approved_at is None


@pytest.mark.parametrize("state", ["approved", "running"])
def test_an_approved_entry_or_a_running_timer_is_a_conflict(
    patient, nurse, physician, staff_client, state
):
    entry = TimeEntryFactory(patient=patient, user=nurse, **{state: True})
    before = TimeEntry.objects.values().get(pk=entry.pk)

    response = staff_client(physician).post(approve_url(entry))

    assert response.status_code == 409
    assert response.json() == {
        "detail": {
            "approved": "The entry is approved already.",
            "running": "The timer is running: it is approved once stopped.",
        }[state]
    }
    assert TimeEntry.objects.values().get(pk=entry.pk) == before


def test_another_teams_entry_is_not_found(other_patient, physician, staff_client):
    entry = TimeEntryFactory(patient=other_patient, started_at=NOW - timedelta(hours=1))

    response = staff_client(physician).post(approve_url(entry))

    assert response.status_code == 404
    entry.refresh_from_db()
    assert entry.approved_at is None
