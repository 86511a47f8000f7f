"""GET /api/v1/panel: the contract's fields, the query's 400s, refusals, and the audit rows.

Every response is also checked against the OpenAPI document (tests/openapi_responses.py).
"""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from monitoring.models import AuditEvent
from tests.factories import MembershipFactory, UserFactory
from tests.program.panel_helpers import alert, enrol, log_time, post, review, start_episode

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
URL = "/api/v1/panel"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def nurse_client(nurse, staff_client):
    return staff_client(nurse)


def test_a_row_has_the_contracts_fields(team, nurse, physician, nurse_client):
    # given
    patient = enrol(team, protocols=["heart_failure"], name="Ada Example", external_id="MRN-1")
    start_episode(patient, start=date(2026, 3, 1), practitioner=physician)
    post(patient, datetime(2026, 3, 9, 12, 0, tzinfo=UTC), value=81.4)
    post(patient, datetime(2026, 3, 9, 12, 5, tzinfo=UTC), type="blood_pressure")
    alert(patient, severity="warning")
    log_time(patient, nurse, at=NOW - timedelta(days=2), minutes=12, interactive=True)
    review(patient, nurse, at=datetime(2026, 3, 9, 13, 0, tzinfo=UTC))

    # when
    response = nurse_client.get(URL)

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    assert body["results"] == [
        {
            "patient": patient.pk,
            "name": "Ada Example",
            "external_id": "MRN-1",
            "highest_severity": "warning",
            "open_alerts": 1,
            "last_readings": {
                "weight": {
                    "value": 81.4,
                    "systolic": None,
                    "diastolic": None,
                    "unit": "kg",
                    "measured_at": "2026-03-09T12:00:00+00:00",
                    "age_seconds": 27 * 3600,
                },
                "blood_pressure": {
                    "value": None,
                    "systolic": 128.0,
                    "diastolic": 82.0,
                    "unit": "mm[Hg]",
                    "measured_at": "2026-03-09T12:05:00+00:00",
                    "age_seconds": 27 * 3600 - 300,
                },
            },
            "main_metric": "weight",
            "trend": [81.4],
            "last_data_at": "2026-03-09T12:05:00+00:00",
            "no_data": False,
            "needs_review": True,
            "days_with_data": 1,
            "period_end": "2026-03-30",
            "at_risk": True,
            "reach": "at_risk",
            "keep_sending_nudge": None,
            "minutes_this_month": 12,
            "approved_minutes_this_month": 0,
            "interactive_this_month": True,
            "last_reviewed_at": "2026-03-09T13:00:00+00:00",
            "last_reviewed_by": "nurse",
        }
    ]


@pytest.fixture
def two_teams(team, other_team, nurse):
    return {
        "mine": [enrol(team, name=name) for name in ("Bea", "Al")],
        "theirs": enrol(other_team, name="Other"),
    }


def test_another_teams_patients_are_never_shown(two_teams, nurse_client):
    response = nurse_client.get(URL, {"sort": "name"})

    assert [row["name"] for row in response.json()["results"]] == ["Al", "Bea"]


def test_one_of_the_callers_teams(two_teams, other_team, nurse, nurse_client):
    MembershipFactory(team=other_team, user=nurse)

    everyone = nurse_client.get(URL, {"sort": "-name"}).json()["results"]
    one = nurse_client.get(URL, {"team": other_team.pk}).json()["results"]

    assert [row["name"] for row in everyone] == ["Other", "Bea", "Al"]
    assert [row["name"] for row in one] == ["Other"]


def test_filters_and_sort_from_the_query(team, nurse, nurse_client):
    quiet = enrol(team, name="Quiet")
    post(quiet, NOW - timedelta(days=5))
    enrol(team, name="Never")
    fresh = enrol(team, name="Fresh")
    post(fresh, NOW - timedelta(hours=1))

    response = nurse_client.get(URL, {"no_data": "true", "sort": "-no_data"})

    assert [row["name"] for row in response.json()["results"]] == ["Quiet", "Never"]


def test_pages(team, nurse_client):
    for name in ("A", "B", "C"):
        enrol(team, name=name)

    body = nurse_client.get(URL, {"sort": "name", "page_size": 2, "page": 2}).json()

    assert (body["count"], [row["name"] for row in body["results"]]) == (3, ["C"])
    assert body["previous"].endswith("/api/v1/panel?page_size=2&sort=name")
    assert nurse_client.get(URL, {"page": 3, "page_size": 2}).status_code == 404


# --- 400s, per field --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"team": "x"}, {"team": ["A valid integer is required."]}),
        ({"team": "0"}, {"team": ["Ensure this value is greater than or equal to 1."]}),
        ({"needs_review": "maybe"}, {"needs_review": ["Must be a valid boolean."]}),
        ({"minutes_below": "15"}, {"minutes_below": ['"15" is not a valid choice.']}),
        ({"sort": "age"}, {"sort": ['"age" is not a valid choice.']}),
        (
            {"at_risk": "yes please", "sort": "-"},
            {"at_risk": ["Must be a valid boolean."], "sort": ['"-" is not a valid choice.']},
        ),
    ],
)
def test_a_bad_query_is_a_400_per_field(team, nurse_client, query, errors):
    enrol(team)

    response = nurse_client.get(URL, query)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": errors}
    assert not AuditEvent.objects.exists()


def test_another_teams_id_is_a_400_like_a_team_that_does_not_exist(
    two_teams, other_team, nurse_client
):
    refused = nurse_client.get(URL, {"team": other_team.pk})
    missing = nurse_client.get(URL, {"team": other_team.pk + 1000})

    for response in (refused, missing):
        assert response.status_code == 400
        assert response.json() == {
            "detail": "Invalid input.",
            "errors": {"team": ["Not one of your care teams."]},
        }
    assert not AuditEvent.objects.exists()


# --- Refusals ---------------------------------------------------------------------------


def test_no_credential_is_a_401(team, anonymous_client):
    enrol(team)

    assert anonymous_client.get(URL).status_code == 401
    assert not AuditEvent.objects.exists()


def test_a_patient_app_token_is_a_403(patient_client):
    response = patient_client.get(URL)

    assert response.status_code == 403
    assert list(AuditEvent.objects.values_list("action", "patient_id")) == [("refused", None)]


def test_a_staff_user_in_no_team_sees_an_empty_panel(team, staff_client):
    enrol(team)

    response = staff_client(UserFactory(username="visitor")).get(URL)

    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert not AuditEvent.objects.exists()


# --- Audit ------------------------------------------------------------------------------


def test_a_page_writes_one_view_event_per_patient_shown(team, nurse, nurse_client):
    shown = [enrol(team, name=name) for name in ("A", "B")]
    enrol(team, name="C")  # on the next page: not shown, not recorded

    response = nurse_client.get(URL, {"sort": "name", "page_size": 2})

    assert response.status_code == 200
    events = AuditEvent.objects.order_by("patient_id")
    assert list(events.values_list("user_id", "patient_id", "action", "model", "surface")) == [
        (nurse.pk, patient.pk, "view", "monitoring.patient", "api") for patient in shown
    ]
    assert {event.path for event in events} == {"/api/v1/panel?sort=name&page_size=2"}
