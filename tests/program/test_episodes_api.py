"""The episodes API (docs/api.md, "The RPM program"): GET/POST /api/v1/patients/{id}/episodes,
PATCH /api/v1/patients/{id}/episodes/{episode_id}; coordinators start and end, every member
lists; every answer is checked against the OpenAPI document (tests/openapi_responses.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from monitoring.auth import register_device
from monitoring.models import AuditEvent
from monitoring.views import REFUSALS
from program.models import Episode
from tests.program.factories import EpisodeFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
BODY = {
    "start": "2026-03-02",
    "consent_at": "2026-03-02T09:15:00-05:00",
    "consent_method": "written",
    "billing_practitioner": "physician",
    "conditions": ["I10", "e11.9"],
}


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def url(patient, episode=None) -> str:
    base = f"/api/v1/patients/{patient.pk}/episodes"
    return base if episode is None else f"{base}/{episode.pk}"


def audit_rows():
    return list(
        AuditEvent.objects.order_by("pk").values_list(
            "user__username", "patient_id", "action", "model", "object_id", "fields"
        )
    )


# --- Starting -------------------------------------------------------------------------------


def test_a_coordinator_starts_an_episode(patient, physician, coordinator_client):
    device, _ = register_device(patient=patient, kind="bp_monitor", serial="BP-1")

    response = coordinator_client.post(url(patient), BODY | {"devices": [device.pk]}, format="json")

    assert response.status_code == 201, response.content
    episode = Episode.objects.get()
    assert response.json() == {
        "id": episode.pk,
        "patient": patient.pk,
        "start": "2026-03-02",
        "end": None,
        "consent_at": "2026-03-02T14:15:00+00:00",
        "consent_method": "written",
        "billing_practitioner": "physician",
        "conditions": ["I10", "E11.9"],
        "devices": [device.pk],
        "created_by": "coordinator",
        "created_at": "2026-03-10T15:00:00+00:00",
        "ended_by": None,
    }
    assert audit_rows() == [
        ("coordinator", patient.pk, "create", "program.episode", str(episode.pk), [])
    ]


def test_the_body_is_read_field_by_field(patient, physician, coordinator_client):
    response = coordinator_client.post(
        url(patient),
        {"start": "March 2", "consent_method": "implied", "conditions": [], "devices": ["x"]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "start": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."],
            "consent_at": ["This field is required."],
            "consent_method": ['"implied" is not a valid choice.'],
            "billing_practitioner": ["This field is required."],
            "conditions": ["This list may not be empty."],
            "devices": {"0": ["A valid integer is required."]},
        },
    }
    assert Episode.objects.count() == 0


def test_the_episodes_rules_answer_per_field(patient, nurse, coordinator_client):
    response = coordinator_client.post(
        url(patient),
        BODY | {"billing_practitioner": "nurse", "conditions": ["I10", "1I0"]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "billing_practitioner": [
                "'nurse' is not an active physician of the patient's care team."
            ],
            "conditions": {
                "1": [
                    "Not an ICD-10-CM code: a letter, a digit and a digit or letter, then "
                    'optionally a dot and up to four more, e.g. "I10" or "E11.9".'
                ]
            },
        },
    }
    assert Episode.objects.count() == 0


def test_a_second_open_episode_is_a_conflict(patient, physician, coordinator_client):
    first = EpisodeFactory(patient=patient, start=date(2026, 2, 1), billing_practitioner=physician)

    response = coordinator_client.post(url(patient), BODY, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"The patient has an open episode (episode {first.pk}, started 2026-02-01): "
        "end it first."
    }
    assert list(Episode.objects.values_list("pk", flat=True)) == [first.pk]


def test_an_overlapping_episode_is_a_conflict(patient, physician, coordinator_client):
    ended = EpisodeFactory(
        patient=patient,
        start=date(2026, 2, 1),
        end=date(2026, 3, 2),
        billing_practitioner=physician,
    )

    response = coordinator_client.post(url(patient), BODY, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"The episode would overlap episode {ended.pk} (2026-02-01 to 2026-03-02): "
        "start it after 2026-03-02."
    }
    assert Episode.objects.count() == 1


@pytest.mark.parametrize("persona", ["nurse", "physician"])
def test_only_coordinators_start_episodes(patient, physician, nurse, staff_client, persona):
    user = {"nurse": nurse, "physician": physician}[persona]

    response = staff_client(user).post(url(patient), BODY, format="json")

    assert response.status_code == 403
    assert response.json() == {"detail": REFUSALS["program.change_episode"]}
    assert Episode.objects.count() == 0


def test_another_teams_patient_is_not_found(other_patient, coordinator_client, coordinator):
    response = coordinator_client.post(url(other_patient), BODY, format="json")

    assert response.status_code == 404
    assert Episode.objects.count() == 0
    assert audit_rows() == [("coordinator", other_patient.pk, "refused", "program.episode", "", [])]


# --- Listing --------------------------------------------------------------------------------


def test_every_member_lists_the_patients_episodes_latest_first(patient, physician, nurse_client):
    old = EpisodeFactory(
        patient=patient,
        start=date(2025, 10, 1),
        end=date(2025, 12, 31),
        billing_practitioner=physician,
    )
    running = EpisodeFactory(
        patient=patient, start=date(2026, 1, 5), billing_practitioner=physician
    )

    response = nurse_client.get(url(patient))

    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [running.pk, old.pk]
    assert response.json()[1]["end"] == "2025-12-31"
    assert audit_rows() == [("nurse", patient.pk, "view", "program.episode", "", [])]


def test_another_teams_episodes_are_not_found(other_patient, nurse_client):
    EpisodeFactory(patient=other_patient)

    assert nurse_client.get(url(other_patient)).status_code == 404


# --- Ending ---------------------------------------------------------------------------------


def test_a_coordinator_ends_an_episode(patient, physician, coordinator_client):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 1, 5), billing_practitioner=physician
    )

    response = coordinator_client.patch(url(patient, episode), {"end": "2026-03-09"}, format="json")

    assert response.status_code == 200
    assert (response.json()["end"], response.json()["ended_by"]) == ("2026-03-09", "coordinator")
    episode.refresh_from_db()
    assert episode.end == date(2026, 3, 9)
    assert audit_rows() == [
        ("coordinator", patient.pk, "change", "program.episode", str(episode.pk), ["end"])
    ]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"end": ["This field is required."]}),
        ({"end": "2026-01-04"}, {"end": ["Is before the episode's start (2026-01-05)."]}),
        (
            {"end": "2026-03-11"},
            {
                "end": [
                    "Is after today (2026-03-10, the patient's time zone): end an episode on "
                    "the day monitoring stopped, not ahead of it."
                ]
            },
        ),
    ],
)
def test_a_wrong_end_is_refused_per_field(patient, physician, coordinator_client, body, errors):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 1, 5), billing_practitioner=physician
    )

    response = coordinator_client.patch(url(patient, episode), body, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": errors}
    episode.refresh_from_db()
    assert episode.end is None


def test_an_ended_episode_is_not_ended_again(patient, physician, coordinator_client):
    episode = EpisodeFactory(
        patient=patient,
        start=date(2026, 1, 5),
        end=date(2026, 2, 1),
        billing_practitioner=physician,
    )

    response = coordinator_client.patch(url(patient, episode), {"end": "2026-03-01"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": "The episode ended already, on 2026-02-01."}
    episode.refresh_from_db()
    assert episode.end == date(2026, 2, 1)


def test_only_coordinators_end_episodes(patient, physician, nurse_client):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 1, 5), billing_practitioner=physician
    )

    response = nurse_client.patch(url(patient, episode), {"end": "2026-03-09"}, format="json")

    assert response.status_code == 403
    episode.refresh_from_db()
    assert episode.end is None


def test_an_episode_of_another_patient_is_not_found(patient, team, physician, coordinator_client):
    elsewhere = EpisodeFactory(start=date(2026, 1, 5))

    response = coordinator_client.patch(
        f"/api/v1/patients/{patient.pk}/episodes/{elsewhere.pk}",
        {"end": "2026-03-09"},
        format="json",
    )

    assert response.status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.end is None
