"""Staff API for measurement schedules and medication plans, and the patient's GET /api/v1/me.

GET/POST /api/v1/patients/{id}/schedules, PATCH/DELETE .../schedules/{schedule_id};
GET/POST /api/v1/patients/{id}/medications, PATCH/DELETE .../medications/{plan_id}.
Any staff member of the patient's team; another team's patient (or another patient's
schedule) is a 404; a patient token is a 403; a wrong field is a 400 naming it. Times are
local "HH:MM" in the patient's zone; `next_slot_at` is when the next slot falls due, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.models import MeasurementSchedule, MedicationPlan, Reading, Slot
from monitoring.nudges import run_reminder_sweep
from monitoring.schedules import (
    add_measurement_schedule,
    add_medication_plan,
    apply_protocol_schedules,
)
from tests.factories import ReadingFactory

pytestmark = pytest.mark.django_db

# Monday 2 March 2026, 08:00 in New York (the `patient` fixture's zone, EST = UTC-5).
NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
NOT_FOUND = {"detail": "Not found."}
NEEDS_STAFF = {"detail": "This endpoint needs a staff token."}
NOT_A_TIME = 'Not a 24-hour local time "HH:MM", e.g. "07:00".'
AT_LEAST_0 = "Ensure this value is greater than or equal to 0."
AT_LEAST_1 = "Ensure this value is greater than or equal to 1."
NAME_TOO_LONG = "Ensure this field has no more than 200 characters."


@pytest.fixture(autouse=True)
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def schedules_url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/schedules"


def schedule_url(patient, schedule) -> str:
    return f"/api/v1/patients/{patient.pk}/schedules/{schedule.pk}"


def medications_url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/medications"


def medication_url(patient, plan) -> str:
    return f"/api/v1/patients/{patient.pk}/medications/{plan.pk}"


def errors(response) -> dict:
    assert response.status_code == 400, response.content
    assert response.json()["detail"] == "Invalid input."
    return response.json()["errors"]


def new_schedule(**overrides) -> dict:
    return {
        "key": "inr_clinic",
        "metric": "inr",
        "times": ["08:30"],
        "days_of_week": [0, 3],
        "window_minutes": 720,
    } | overrides


def new_plan(**overrides) -> dict:
    return {
        "medication": "warfarin-5mg",
        "name": "Warfarin 5 mg",
        "dose_times": ["20:00", "08:00"],
        "window_minutes": 120,
        "critical": True,
    } | overrides


@pytest.fixture
def physician_client(physician, staff_client):
    return staff_client(physician)


@pytest.fixture
def weighing(patient):
    return add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00"], window_minutes=180
    )


@pytest.fixture
def warfarin(patient):
    return add_medication_plan(
        patient=patient,
        medication="warfarin-5mg",
        name="Warfarin 5 mg",
        dose_times=["18:00"],
        window_minutes=120,
        critical=True,
    )


# --- Measurement schedules ------------------------------------------------------------------


def test_staff_list_the_patients_schedules_with_the_protocol_each_came_from(nurse_client, patient):
    apply_protocol_schedules(patient=patient, codes=["heart_failure", "hypertension"])

    response = nurse_client.get(schedules_url(patient))

    assert response.status_code == 200
    assert [
        {k: v for k, v in item.items() if k not in ("id", "created_at", "updated_at")}
        for item in response.json()
    ] == [
        {
            "key": "blood_pressure_morning_evening",
            "protocol": "hypertension",
            "metric": "blood_pressure",
            "times": ["07:00", "19:00"],
            "days_of_week": [],
            "window_minutes": 120,
            "active": True,
            "next_slot_at": "2026-03-03T00:00:00+00:00",  # 19:00 EST today
        },
        {
            "key": "weight_morning",
            "protocol": "heart_failure",
            "metric": "weight",
            "times": ["07:00"],
            "days_of_week": [],
            "window_minutes": 180,
            "active": True,
            "next_slot_at": "2026-03-03T12:00:00+00:00",  # 07:00 EST tomorrow
        },
    ]


def test_adding_a_schedule_answers_it_with_its_first_slot_in_the_patients_zone(
    physician_client, patient
):
    response = physician_client.post(schedules_url(patient), new_schedule(), format="json")

    assert response.status_code == 201
    schedule = MeasurementSchedule.objects.get(patient=patient)
    assert response.json() == {
        "id": schedule.pk,
        "key": "inr_clinic",
        "protocol": None,
        "metric": "inr",
        "times": ["08:30"],
        "days_of_week": [0, 3],
        "window_minutes": 720,
        "active": True,
        # Monday 08:30 EST has not come yet at 08:00
        "next_slot_at": "2026-03-02T13:30:00+00:00",
        "created_at": "2026-03-02T13:00:00+00:00",
        "updated_at": "2026-03-02T13:00:00+00:00",
    }


def test_times_and_days_are_stored_sorted(physician_client, patient):
    body = new_schedule(times=["19:00", "07:00"], days_of_week=[6, 0])

    response = physician_client.post(schedules_url(patient), body, format="json")

    assert (response.json()["times"], response.json()["days_of_week"]) == (
        ["07:00", "19:00"],
        [0, 6],
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            new_schedule(times=["7:00", "07:00"]),
            {"times": {"0": ['Not a 24-hour local time "HH:MM", e.g. "07:00".']}},
        ),
        (
            new_schedule(times=["24:00"]),
            {"times": {"0": ['Not a 24-hour local time "HH:MM", e.g. "07:00".']}},
        ),
        (
            new_schedule(times=[]),
            {"times": ['Give a list of one or more local times "HH:MM", e.g. ["07:00"].']},
        ),
        (new_schedule(times="07:00"), {"times": ['Expected a list of items but got type "str".']}),
        (new_schedule(times=["07:00", "07:00"]), {"times": ["Each time may be listed once."]}),
        (
            new_schedule(days_of_week=[7]),
            {"days_of_week": {"0": ["Ensure this value is less than or equal to 6."]}},
        ),
        (
            new_schedule(days_of_week=[1, 1]),
            {"days_of_week": ["Each weekday may be listed once."]},
        ),
        (
            new_schedule(window_minutes=0),
            {"window_minutes": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            new_schedule(window_minutes=10081),
            {"window_minutes": ["Ensure this value is less than or equal to 10080."]},
        ),
        (
            new_schedule(metric="dose"),
            {"metric": ['"dose" is not a measured metric; doses are medication plans.']},
        ),
        (
            new_schedule(metric="mood"),
            {"metric": ['"mood" is not a measured metric; doses are medication plans.']},
        ),
        (
            new_schedule(key="INR clinic!"),
            {
                "key": [
                    'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'
                ]
            },
        ),
        (
            {},
            {
                "key": ["This field is required."],
                "metric": ["This field is required."],
                "times": ["This field is required."],
                "window_minutes": ["This field is required."],
            },
        ),
    ],
    ids=[
        "time-without-leading-zero",
        "time-24:00",
        "no-times",
        "times-not-a-list",
        "time-twice",
        "day-7",
        "day-twice",
        "window-0",
        "window-over-a-week",
        "metric-dose",
        "metric-unknown",
        "key-not-a-slug",
        "nothing",
    ],
)
def test_a_wrong_field_is_a_400_naming_it_and_nothing_is_added(
    physician_client, patient, body, expected
):
    response = physician_client.post(schedules_url(patient), body, format="json")

    assert errors(response) == expected
    assert MeasurementSchedule.objects.count() == 0


def test_a_key_the_patient_already_has_is_a_400(physician_client, patient, weighing):
    response = physician_client.post(
        schedules_url(patient), new_schedule(key="weight"), format="json"
    )

    assert errors(response) == {"key": ["The patient already has a schedule with this key."]}
    assert list(MeasurementSchedule.objects.values_list("key", "metric")) == [("weight", "weight")]


def test_changing_the_times_moves_the_next_slot(physician_client, patient, weighing):
    response = physician_client.patch(
        schedule_url(patient, weighing), {"times": ["09:15"], "days_of_week": [0]}, format="json"
    )

    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("times", "days_of_week", "next_slot_at")} == {
        "times": ["09:15"],
        "days_of_week": [0],
        "next_slot_at": "2026-03-02T14:15:00+00:00",  # today (Monday), 09:15 EST
    }
    weighing.refresh_from_db()
    assert (weighing.times, weighing.next_slot_at) == (
        ["09:15"],
        datetime(2026, 3, 2, 14, 15, tzinfo=UTC),
    )


def test_pausing_a_schedule_clears_its_next_slot(physician_client, patient, weighing):
    response = physician_client.patch(
        schedule_url(patient, weighing), {"active": False}, format="json"
    )

    assert (response.json()["active"], response.json()["next_slot_at"]) == (False, None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"key": "scale"}, {"key": ["Cannot be changed: add a new one and delete this one."]}),
        (
            {"metric": "glucose", "times": ["06:00"]},
            {"metric": ["Cannot be changed: add a new one and delete this one."]},
        ),
        (
            {},
            {
                "non_field_errors": [
                    "Change at least one of times, days_of_week, window_minutes, active."
                ]
            },
        ),
        ({"times": ["6am"]}, {"times": {"0": ['Not a 24-hour local time "HH:MM", e.g. "07:00".']}}),
        ({"window_minutes": -5}, {"window_minutes": [AT_LEAST_1]}),
    ],
    ids=["key", "metric", "nothing", "time", "window"],
)  # fmt: skip
def test_a_wrong_change_is_a_400_and_changes_nothing(
    physician_client, patient, weighing, body, expected
):
    before = MeasurementSchedule.objects.values().get()

    response = physician_client.patch(schedule_url(patient, weighing), body, format="json")

    assert errors(response) == expected
    assert MeasurementSchedule.objects.values().get() == before


def test_deleting_a_schedule_removes_it_and_its_slots_and_keeps_the_readings(
    physician_client, patient, weighing, clock
):
    # given: a slot opened and a weighing taken
    run_reminder_sweep(now=datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    ReadingFactory(patient=patient)

    response = physician_client.delete(schedule_url(patient, weighing))

    assert response.status_code == 204
    assert (MeasurementSchedule.objects.count(), Slot.objects.count()) == (0, 0)
    assert Reading.objects.filter(patient=patient).count() == 1


# --- Medication plans -----------------------------------------------------------------------


def test_adding_a_medication_plan_answers_it_with_its_first_dose_slot(physician_client, patient):
    response = physician_client.post(medications_url(patient), new_plan(), format="json")

    assert response.status_code == 201
    plan = MedicationPlan.objects.get(patient=patient)
    assert response.json() == {
        "id": plan.pk,
        "medication": "warfarin-5mg",
        "name": "Warfarin 5 mg",
        "dose_times": ["08:00", "20:00"],
        "days_of_week": [],
        "window_minutes": 120,
        "critical": True,
        "active": True,
        "next_slot_at": "2026-03-02T13:00:00+00:00",  # 08:00 EST: now
        "created_at": "2026-03-02T13:00:00+00:00",
        "updated_at": "2026-03-02T13:00:00+00:00",
    }


def test_staff_list_the_patients_medication_plans(nurse_client, patient, warfarin):
    response = nurse_client.get(medications_url(patient))

    assert response.status_code == 200
    assert [(p["id"], p["medication"], p["dose_times"]) for p in response.json()] == [
        (warfarin.pk, "warfarin-5mg", ["18:00"])
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (new_plan(dose_times=["8:00"]), {"dose_times": {"0": [NOT_A_TIME]}}),
        (new_plan(days_of_week=[-1]), {"days_of_week": {"0": [AT_LEAST_0]}}),
        (new_plan(window_minutes="long"), {"window_minutes": ["A valid integer is required."]}),
        (new_plan(medication=""), {"medication": ["This field may not be blank."]}),
        (new_plan(name="x" * 201), {"name": [NAME_TOO_LONG]}),
        (new_plan(critical="maybe"), {"critical": ["Must be a valid boolean."]}),
    ],
    ids=["dose-time", "day", "window", "medication", "name", "critical"],
)  # fmt: skip
def test_a_wrong_plan_field_is_a_400_naming_it_and_nothing_is_added(
    physician_client, patient, body, expected
):
    response = physician_client.post(medications_url(patient), body, format="json")

    assert errors(response) == expected
    assert MedicationPlan.objects.count() == 0


def test_a_second_plan_for_the_same_medication_is_a_400(physician_client, patient, warfarin):
    response = physician_client.post(medications_url(patient), new_plan(), format="json")

    assert errors(response) == {
        "medication": ["The patient already has a plan for this medication."]
    }
    assert MedicationPlan.objects.count() == 1


def test_changing_a_plan_keeps_its_medication_id(physician_client, patient, warfarin):
    response = physician_client.patch(
        medication_url(patient, warfarin),
        {"dose_times": ["07:30"], "critical": False, "name": "Warfarin 3 mg"},
        format="json",
    )
    refused = physician_client.patch(
        medication_url(patient, warfarin), {"medication": "apixaban"}, format="json"
    )

    assert response.status_code == 200
    assert {
        k: response.json()[k]
        for k in ("medication", "name", "dose_times", "critical", "next_slot_at")
    } == {
        "medication": "warfarin-5mg",
        "name": "Warfarin 3 mg",
        "dose_times": ["07:30"],
        "critical": False,
        "next_slot_at": "2026-03-03T12:30:00+00:00",
    }
    assert errors(refused) == {
        "medication": ["Cannot be changed: add a new one and delete this one."]
    }
    assert MedicationPlan.objects.get().medication == "warfarin-5mg"


def test_deleting_a_plan_removes_it(physician_client, patient, warfarin):
    response = physician_client.delete(medication_url(patient, warfarin))

    assert response.status_code == 204
    assert MedicationPlan.objects.count() == 0


# --- Who may ---------------------------------------------------------------------------------


def calls(patient, schedule, plan) -> list[tuple[str, str, dict | None]]:
    return [
        ("get", schedules_url(patient), None),
        ("post", schedules_url(patient), new_schedule()),
        ("patch", schedule_url(patient, schedule), {"times": ["06:00"]}),
        ("delete", schedule_url(patient, schedule), None),
        ("get", medications_url(patient), None),
        ("post", medications_url(patient), new_plan(medication="apixaban")),
        ("patch", medication_url(patient, plan), {"dose_times": ["06:00"]}),
        ("delete", medication_url(patient, plan), None),
    ]


def snapshot() -> tuple[list, list]:
    return (
        list(MeasurementSchedule.objects.order_by("id").values()),
        list(MedicationPlan.objects.order_by("id").values()),
    )


def test_another_teams_patient_is_a_404_and_nothing_changes(
    outsider_client, patient, weighing, warfarin
):
    before = snapshot()

    for method, url, body in calls(patient, weighing, warfarin):
        response = getattr(outsider_client, method)(url, body, format="json")
        assert (method, url, response.status_code, response.json()) == (
            method,
            url,
            404,
            NOT_FOUND,
        )

    assert snapshot() == before


def test_another_patients_schedule_through_this_patients_url_is_a_404(
    physician_client, patient, team
):
    from tests.factories import PatientFactory

    neighbour = PatientFactory(care_team=team)
    schedule = add_measurement_schedule(
        patient=neighbour, key="weight", metric="weight", times=["07:00"], window_minutes=60
    )
    plan = add_medication_plan(
        patient=neighbour, medication="m", name="M", dose_times=["07:00"], window_minutes=60
    )
    before = snapshot()

    for method, url, body in calls(patient, schedule, plan):
        if "/schedules/" in url or "/medications/" in url:
            response = getattr(physician_client, method)(url, body, format="json")
            assert (url, response.status_code, response.json()) == (url, 404, NOT_FOUND)

    assert snapshot() == before


SCHEDULE_ROLES = "Only the patient's physicians and coordinators may {} measurement schedules."
PLAN_ROLES = "Only the patient's physicians may {} medication plans."
WRITES_REFUSED = {
    ("post", "schedules"): SCHEDULE_ROLES.format("add"),
    ("patch", "schedules"): SCHEDULE_ROLES.format("change"),
    ("delete", "schedules"): SCHEDULE_ROLES.format("delete"),
    ("post", "medications"): PLAN_ROLES.format("add"),
    ("patch", "medications"): PLAN_ROLES.format("change"),
    ("delete", "medications"): PLAN_ROLES.format("delete"),
}


def kind_of(url: str) -> str:
    return "schedules" if "/schedules" in url else "medications"


def test_a_nurse_reads_schedules_and_plans_but_changes_none(
    nurse_client, patient, weighing, warfarin
):
    before = snapshot()

    for method, url, body in calls(patient, weighing, warfarin):
        response = getattr(nurse_client, method)(url, body, format="json")
        if method == "get":
            assert (url, response.status_code, len(response.json())) == (url, 200, 1)
        else:
            refusal = {"detail": WRITES_REFUSED[(method, kind_of(url))]}
            assert (method, url, response.status_code, response.json()) == (
                method,
                url,
                403,
                refusal,
            )

    assert snapshot() == before


def test_a_coordinator_changes_measurement_schedules_but_not_medication_plans(
    coordinator, staff_client, patient, weighing, warfarin
):
    client = staff_client(coordinator)

    added = client.post(schedules_url(patient), new_schedule(), format="json")
    changed = client.patch(schedule_url(patient, weighing), {"times": ["06:00"]}, format="json")
    refused = client.post(medications_url(patient), new_plan(medication="apixaban"), format="json")
    not_changed = client.patch(
        medication_url(patient, warfarin), {"dose_times": ["06:00"]}, format="json"
    )

    assert (added.status_code, changed.status_code) == (201, 200)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "Only the patient's physicians may add medication plans."},
    )
    assert not_changed.status_code == 403
    assert list(MedicationPlan.objects.values_list("medication", "dose_times")) == [
        ("warfarin-5mg", ["18:00"])
    ]


def test_a_patient_token_is_a_403_and_nothing_changes(patient_client, patient, weighing, warfarin):
    before = snapshot()

    for method, url, body in calls(patient, weighing, warfarin):
        response = getattr(patient_client, method)(url, body, format="json")
        assert (method, url, response.status_code, response.json()) == (
            method,
            url,
            403,
            NEEDS_STAFF,
        )

    assert snapshot() == before


def test_without_a_credential_it_is_a_401(anonymous_client, patient, weighing, warfarin):
    for method, url, body in calls(patient, weighing, warfarin):
        assert getattr(anonymous_client, method)(url, body, format="json").status_code == 401


# --- GET /api/v1/me -------------------------------------------------------------------------


def test_me_shows_the_patients_active_schedules_and_medications(
    patient_client, patient, weighing, warfarin
):
    paused = add_measurement_schedule(
        patient=patient, key="bp", metric="blood_pressure", times=["19:00"], window_minutes=60,
        active=False,
    )  # fmt: skip
    add_medication_plan(
        patient=patient, medication="stopped", name="Stopped", dose_times=["09:00"],
        window_minutes=60, active=False,
    )  # fmt: skip

    response = patient_client.get("/api/v1/me")

    assert response.status_code == 200
    assert paused.pk not in [s["id"] for s in response.json()["schedules"]]
    assert (response.json()["schedules"], response.json()["medications"]) == (
        [
            {
                "id": weighing.pk,
                "metric": "weight",
                "times": ["07:00"],
                "days_of_week": [],
                "window_minutes": 180,
            }
        ],
        [
            {
                "id": warfarin.pk,
                "medication": "warfarin-5mg",
                "name": "Warfarin 5 mg",
                "dose_times": ["18:00"],
                "days_of_week": [],
                "window_minutes": 120,
                "critical": True,
            }
        ],
    )


def test_me_shows_only_the_callers_own_schedules(other_patient_client, patient, weighing, warfarin):
    response = other_patient_client.get("/api/v1/me")

    assert (response.json()["schedules"], response.json()["medications"]) == ([], [])


def test_me_takes_as_many_queries_for_ten_schedules_and_plans_as_for_one(
    patient_client, patient, django_assert_max_num_queries
):
    def add(number: int) -> None:
        add_measurement_schedule(
            patient=patient, key=f"s{number}", metric="weight", times=["07:00"], window_minutes=60
        )
        add_medication_plan(
            patient=patient, medication=f"m{number}", name="M", dose_times=["07:00"],
            window_minutes=60,
        )  # fmt: skip

    add(0)
    with CaptureQueriesContext(connection) as one:
        patient_client.get("/api/v1/me")
    for number in range(1, 10):
        add(number)

    with django_assert_max_num_queries(len(one)):
        response = patient_client.get("/api/v1/me")

    assert (len(response.json()["schedules"]), len(response.json()["medications"])) == (10, 10)
