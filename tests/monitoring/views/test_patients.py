"""Staff endpoints for patients (monitoring/views/patients.py), and the patient's own
GET /api/v1/me."""

import threading
from datetime import time

import httpx
import pytest

from monitoring.auth import issue_app_token, issue_staff_token
from monitoring.models import Patient
from tests.conftest import client_with
from tests.factories import CareTeamFactory, MembershipFactory, PatientFactory, UserFactory
from tests.monitoring.views.patients_helpers import INVALID, NOW, PATIENTS_URL, enrolment, errors

# --- POST /api/v1/patients: unhappy paths -------------------------------------------------


def test_enrolling_without_fields_names_each_required_field(coordinator_client):
    response = coordinator_client.post(PATIENTS_URL, {}, format="json")

    assert errors(response) == {
        "external_id": ["This field is required."],
        "name": ["This field is required."],
        "timezone": ["This field is required."],
        "care_team": ["This field is required."],
    }
    assert Patient.objects.count() == 0


def test_an_unknown_protocol_is_refused_per_item(coordinator_client, team):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, protocols=["diabetes", "asthma"]), format="json"
    )

    assert errors(response) == {"protocols": {"1": ['"asthma" is not a valid choice.']}}
    assert Patient.objects.count() == 0


def test_a_protocol_listed_twice_is_refused(coordinator_client, team):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, protocols=["copd", "copd"]), format="json"
    )

    assert errors(response) == {"protocols": ["Each protocol may be listed once."]}
    assert Patient.objects.count() == 0


def test_protocols_given_as_a_string_are_refused(coordinator_client, team):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, protocols="heart_failure"), format="json"
    )

    assert errors(response) == {"protocols": ['Expected a list of items but got type "str".']}
    assert Patient.objects.count() == 0


def test_a_time_zone_that_is_not_an_iana_name_is_refused(coordinator_client, team):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, timezone="Mars/Olympus_Mons"), format="json"
    )

    assert errors(response) == {"timezone": ["'Mars/Olympus_Mons' is not an IANA time zone name"]}
    assert Patient.objects.count() == 0


@pytest.mark.parametrize("care_team", ["other", "missing"])
def test_enrolling_in_a_team_that_is_not_the_callers_says_the_same_as_a_missing_team(
    coordinator_client, team, other_team, care_team
):
    team_id = other_team.pk if care_team == "other" else other_team.pk + 1000

    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, care_team=team_id), format="json"
    )

    assert errors(response) == {"care_team": ["Not one of your care teams."]}
    assert Patient.objects.count() == 0


def test_a_care_team_that_is_not_a_number_is_refused(coordinator_client, team):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, care_team="cardio"), format="json"
    )

    assert errors(response) == {"care_team": ["A valid integer is required."]}
    assert Patient.objects.count() == 0


def test_a_duplicate_external_id_is_refused_and_the_first_patient_kept(coordinator_client, team):
    first = PatientFactory(external_id="MRN-100", care_team=team, name="First Patient")

    response = coordinator_client.post(PATIENTS_URL, enrolment(team, name="Second"), format="json")

    assert errors(response) == {
        "external_id": ["A patient with this external id is already enrolled."]
    }
    assert list(Patient.objects.values_list("pk", "name")) == [(first.pk, "First Patient")]
    assert first.protocols.count() == 0


def test_an_external_id_held_in_another_team_enrols_as_if_it_were_free(
    coordinator_client, team, other_team
):
    # Refusing it ("already enrolled") would tell the caller that a patient they may not
    # see exists: the MRN is unique within a care team.
    theirs = PatientFactory(external_id="MRN-100", care_team=other_team, name="Their Patient")

    response = coordinator_client.post(PATIENTS_URL, enrolment(team), format="json")

    assert response.status_code == 201
    assert response.json()["external_id"] == "MRN-100"
    assert set(Patient.objects.values_list("care_team", "external_id", "name")) == {
        (other_team.pk, "MRN-100", "Their Patient"),
        (team.pk, "MRN-100", enrolment(team)["name"]),
    }
    assert Patient.objects.get(pk=theirs.pk).name == "Their Patient"


@pytest.mark.parametrize(
    "quiet_hours",
    [
        {"quiet_hours_start": "22:00"},
        {"quiet_hours_end": "07:00"},
        {"quiet_hours_start": "22:00", "quiet_hours_end": None},
    ],
    ids=["start-only", "end-only", "end-null"],
)
def test_quiet_hours_need_both_ends_or_neither(coordinator_client, team, quiet_hours):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, preferences=quiet_hours), format="json"
    )

    assert errors(response) == {
        "preferences": {"quiet_hours_end": ["Give both ends of the quiet hours, or neither."]}
    }
    assert Patient.objects.count() == 0


@pytest.mark.parametrize(
    ("preferences", "reason"),
    [
        pytest.param(
            {"daily_nudge_cap": 25},
            {"daily_nudge_cap": ["Ensure this value is less than or equal to 24."]},
            id="nudge-cap",
        ),
        pytest.param(
            {"glucose_unit": "mg"},
            {"glucose_unit": ['"mg" is not a valid choice.']},
            id="glucose-unit",
        ),
        pytest.param(
            {"nudge_channel": "pigeon"},
            {"nudge_channel": ['"pigeon" is not a valid choice.']},
            id="channel",
        ),
        pytest.param(
            {"quiet_hours_start": "late", "quiet_hours_end": "07:00"},
            {
                "quiet_hours_start": [
                    "Time has wrong format. Use one of these formats instead: hh:mm[:ss[.uuuuuu]]."
                ]
            },
            id="time-format",
        ),
    ],
)
def test_invalid_preferences_are_refused_per_field(coordinator_client, team, preferences, reason):
    response = coordinator_client.post(
        PATIENTS_URL, enrolment(team, preferences=preferences), format="json"
    )

    assert errors(response) == {"preferences": reason}
    assert Patient.objects.count() == 0


# --- POST /api/v1/patients: success -------------------------------------------------------


def test_enrolling_a_patient_stores_protocols_and_returns_them_sorted(
    coordinator_client, team, time_machine
):
    # given
    time_machine.move_to(NOW, tick=False)
    body = enrolment(
        team,
        preferences={"language": "de", "quiet_hours_start": "22:00", "quiet_hours_end": "07:00"},
    )

    # when
    response = coordinator_client.post(PATIENTS_URL, body, format="json")

    # then
    assert response.status_code == 201
    patient = Patient.objects.get()
    assert response.json() == {
        "id": patient.pk,
        "external_id": "MRN-100",
        "name": "Ada Example",
        "timezone": "Europe/Berlin",
        "care_team": team.pk,
        "protocols": ["heart_failure", "hypertension"],
        "preferences": {
            "glucose_unit": "mg/dL",
            "weight_unit": "kg",
            "language": "de",
            "nudge_channel": "in_app",
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "07:00",
            "daily_nudge_cap": 3,
        },
        "created_at": "2026-03-01T10:00:00Z",
    }
    assert sorted(patient.protocols.values_list("code", flat=True)) == [
        "heart_failure",
        "hypertension",
    ]
    assert (patient.care_team, patient.language) == (team, "de")
    assert (patient.quiet_hours_start, patient.quiet_hours_end) == (time(22), time(7))


def test_enrolling_without_protocols_or_quiet_hours_is_allowed(coordinator_client, team):
    body = enrolment(team, preferences={"quiet_hours_start": None, "quiet_hours_end": None})
    del body["protocols"]

    response = coordinator_client.post(PATIENTS_URL, body, format="json")

    assert response.status_code == 201
    assert response.json()["protocols"] == []
    assert response.json()["preferences"]["quiet_hours_start"] is None
    assert Patient.objects.get().protocols.count() == 0


def test_a_superuser_may_enrol_in_any_team(superuser, staff_client, other_team):
    response = staff_client(superuser).post(PATIENTS_URL, enrolment(other_team), format="json")

    assert response.status_code == 201
    assert Patient.objects.get().care_team == other_team


@pytest.mark.django_db(transaction=True)
def test_racing_enrolments_of_one_external_id_create_exactly_one_patient(live_server):
    # given: committed staff credentials (the server's threads use their own connections).
    # No protocols: an earlier transactional test's flush may have emptied that table.
    team = CareTeamFactory(name="Race clinic")
    coordinator = MembershipFactory(
        team=team, user=UserFactory(username="racer"), role="coordinator"
    ).user
    _, token = issue_staff_token(user=coordinator)
    barrier = threading.Barrier(4)
    statuses = []

    def enrol(name):
        with httpx.Client(base_url=live_server.url, timeout=20) as http:
            barrier.wait()
            response = http.post(
                f"{PATIENTS_URL}",
                json=enrolment(team, name=name, protocols=[]),
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.append((response.status_code, response.json()))

    # when: four enrolments of the same MRN race each other
    threads = [threading.Thread(target=enrol, args=(f"Racer {n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then: one 201, three 400s with the reason, one row
    assert sorted(code for code, _ in statuses) == [201, 400, 400, 400]
    refusals = [body for code, body in statuses if code == 400]
    assert refusals == 3 * [
        {
            "detail": INVALID,
            "errors": {"external_id": ["A patient with this external id is already enrolled."]},
        }
    ]
    assert Patient.objects.filter(external_id="MRN-100").count() == 1


# --- GET /api/v1/patients and /api/v1/patients/{id} ---------------------------------------


def test_the_patient_list_is_paginated_and_holds_only_the_callers_teams(
    nurse_client, team, other_team
):
    # given: three patients in the nurse's team, one elsewhere
    ours = [PatientFactory(care_team=team) for _ in range(3)]
    PatientFactory(care_team=other_team)

    # when
    first = nurse_client.get(PATIENTS_URL, {"page_size": 2})
    second = nurse_client.get(first.json()["next"])

    # then
    assert first.status_code == 200
    assert first.json()["count"] == 3
    assert first.json()["previous"] is None
    assert first.json()["next"] == "http://testserver/api/v1/patients?page=2&page_size=2"
    assert [p["id"] for p in first.json()["results"]] == [ours[0].pk, ours[1].pk]
    assert second.json()["count"] == 3
    assert second.json()["next"] is None
    assert [p["id"] for p in second.json()["results"]] == [ours[2].pk]


def test_a_page_past_the_end_is_a_json_404(nurse_client, patient):
    response = nurse_client.get(PATIENTS_URL, {"page": 9})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def test_a_staff_user_in_no_team_sees_no_patients(staff_client, patient, other_patient):
    loner = UserFactory(username="loner")

    response = staff_client(loner).get(PATIENTS_URL)

    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_patient_detail_shows_the_patient(nurse_client, team, time_machine):
    time_machine.move_to(NOW, tick=False)
    patient = PatientFactory(
        care_team=team, external_id="MRN-7", name="Ada Example", timezone="America/New_York"
    )
    patient.protocols.set(patient.protocols.model.objects.filter(code__in=["diabetes", "copd"]))

    response = nurse_client.get(f"{PATIENTS_URL}/{patient.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": patient.pk,
        "external_id": "MRN-7",
        "name": "Ada Example",
        "timezone": "America/New_York",
        "care_team": team.pk,
        "protocols": ["copd", "diabetes"],
        "preferences": {
            "glucose_unit": "mg/dL",
            "weight_unit": "kg",
            "language": "en",
            "nudge_channel": "in_app",
            "quiet_hours_start": None,
            "quiet_hours_end": None,
            "daily_nudge_cap": 3,
        },
        "created_at": "2026-03-01T10:00:00Z",
    }


def test_patient_detail_of_a_missing_patient_is_a_json_404(nurse_client, patient):
    response = nurse_client.get(f"{PATIENTS_URL}/{patient.pk + 1000}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("path", ["", "/rules"])
def test_a_patient_id_past_64_bits_is_a_json_404(nurse_client, patient, path):
    # The refusal's audit row cannot hold the id (SQLite cannot even bind it): still a 404.
    response = nurse_client.get(f"{PATIENTS_URL}/99999999999999999999999{path}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_patient_id_that_is_not_a_number_is_a_json_404(nurse_client, patient):
    response = nurse_client.get(f"{PATIENTS_URL}/MRN-1/tokens")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_methods_the_patient_detail_does_not_offer_are_a_json_405(nurse_client, patient, method):
    response = getattr(nurse_client, method)(f"{PATIENTS_URL}/{patient.pk}", {}, format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert Patient.objects.filter(pk=patient.pk).exists()


# --- GET /api/v1/me -----------------------------------------------------------------------


def test_me_shows_the_patients_own_profile(team, time_machine):
    # given
    time_machine.move_to(NOW, tick=False)
    patient = PatientFactory(
        care_team=team,
        external_id="MRN-42",
        name="Ada Example",
        timezone="Europe/Berlin",
        language="de",
        weight_unit="lb",
        quiet_hours_start=time(22, 30),
        quiet_hours_end=time(6, 45),
        daily_nudge_cap=2,
    )
    patient.protocols.set(patient.protocols.model.objects.filter(code__in=["hypertension", "copd"]))
    PatientFactory(care_team=team)  # someone else

    # when
    response = client_with(issue_app_token(patient=patient)[1]).get("/api/v1/me")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": patient.pk,
        "external_id": "MRN-42",
        "name": "Ada Example",
        "timezone": "Europe/Berlin",
        "protocols": ["copd", "hypertension"],
        "preferences": {
            "glucose_unit": "mg/dL",
            "weight_unit": "lb",
            "language": "de",
            "nudge_channel": "in_app",
            "quiet_hours_start": "22:30",
            "quiet_hours_end": "06:45",
            "daily_nudge_cap": 2,
        },
        "schedules": [],
        "medications": [],
        "targets": [],
    }


def test_me_with_a_staff_token_is_403(nurse_client, patient):
    response = nurse_client.get("/api/v1/me")

    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs a patient app token."}
