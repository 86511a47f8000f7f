"""The reading lists (monitoring/views/readings.py), over HTTP, against the docs/api.md
contract: shape, filters, pagination, the staff list."""

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import Reading
from tests.factories import ReadingFactory, ReadingItemFactory
from tests.monitoring.views.readings_helpers import (
    READINGS,
    RECEIVED,
    _frozen_clock,  # noqa: F401
    patient_readings,
    post,
)

pytestmark = pytest.mark.django_db


# --- GET: shape ----------------------------------------------------------------------------


def test_the_list_shows_each_reading_canonical_and_as_sent_newest_first(patient, patient_client):
    # given
    glucose = ReadingItemFactory(
        value=5.5, unit="mmol/L", context="fasting", device="GM-7",
        measured_at="2026-03-01T07:30:00+01:00",
    )  # fmt: skip
    bp = ReadingItemFactory(
        type="blood_pressure", systolic=142, diastolic=91, pulse=72,
        measured_at="2026-03-01T07:35:00+01:00",
    )  # fmt: skip
    dose = ReadingItemFactory(type="dose", measured_at="2026-03-01T08:04:00+01:00")
    weight = ReadingItemFactory(
        type="weight", value=176.4, unit="lb", measured_at="2026-03-01T06:58:00-05:00"
    )
    post(patient_client, {"readings": [glucose, bp, dose, weight]})
    heart_rate_id = str(Reading.objects.get(metric="heart_rate").client_id)
    common = {"received_at": RECEIVED, "source": "app", "entry": "manual", "device": None}

    # when
    response = patient_client.get(READINGS)

    # then
    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {
                "id": weight["id"], "type": "weight", "measured_at": "2026-03-01T06:58:00-05:00",
                **common, "value": 80.013694, "unit": "kg",
                "sent": {"value": 176.4, "unit": "[lb_av]"},
            },
            {
                "id": dose["id"], "type": "dose", "measured_at": "2026-03-01T08:04:00+01:00",
                **common, "medication": "warfarin-5mg", "status": "taken",
                "scheduled_for": "2026-03-01T07:00:00+00:00",
            },
            {
                "id": heart_rate_id, "type": "heart_rate",
                "measured_at": "2026-03-01T07:35:00+01:00", **common, "value": 72.0,
                "unit": "/min", "sent": {"value": 72.0, "unit": "/min"}, "part_of": bp["id"],
            },
            {
                "id": bp["id"], "type": "blood_pressure",
                "measured_at": "2026-03-01T07:35:00+01:00", **common, "systolic": 142.0,
                "diastolic": 91.0, "unit": "mm[Hg]",
            },
            {
                "id": glucose["id"], "type": "glucose",
                "measured_at": "2026-03-01T07:30:00+01:00", **common, "device": "GM-7",
                "value": 99, "unit": "mg/dL", "sent": {"value": 5.5, "unit": "mmol/L"},
                "context": "fasting",
            },
        ],
    }  # fmt: skip


TWO_UTC = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("measured_at", "instant", "echoed"),
    [
        ("2026-03-01T07:30:00+05:30", TWO_UTC, "2026-03-01T07:30:00+05:30"),
        ("2026-02-28T18:00:00-08:00", TWO_UTC, "2026-02-28T18:00:00-08:00"),
        ("2026-03-01T02:00:00Z", TWO_UTC, "2026-03-01T02:00:00+00:00"),
        (
            "2026-03-01T03:00:00.5+01:00",
            TWO_UTC + timedelta(milliseconds=500),
            "2026-03-01T03:00:00.500000+01:00",
        ),
    ],
)
def test_measured_at_is_stored_as_the_utc_instant_and_listed_in_the_offset_sent(
    patient_client, measured_at, instant, echoed
):
    post(patient_client, ReadingItemFactory(measured_at=measured_at))

    assert Reading.objects.get().measured_at == instant
    assert patient_client.get(READINGS).json()["results"][0]["measured_at"] == echoed


def test_a_patient_lists_only_their_own_readings(patient, other_patient, patient_client):
    mine = ReadingFactory(patient=patient)
    ReadingFactory(patient=other_patient)

    results = patient_client.get(READINGS).json()["results"]

    assert [result["id"] for result in results] == [str(mine.client_id)]


# --- GET: filters --------------------------------------------------------------------------


@pytest.fixture
def day_of_readings(patient):
    """Readings at 01:00, 02:00 … 06:00 UTC on 2026-03-01, alternating glucose and weight."""
    return [
        ReadingFactory(
            patient=patient,
            metric="glucose" if hour % 2 else "weight",
            measured_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
        )
        for hour in range(1, 7)
    ]


def listed_hours(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [
        datetime.fromisoformat(r["measured_at"]).astimezone(UTC).hour
        for r in response.json()["results"]
    ]


def test_the_list_is_newest_first(patient_client, day_of_readings):
    assert listed_hours(patient_client.get(READINGS)) == [6, 5, 4, 3, 2, 1]


def test_since_and_until_bound_measured_at_inclusively(patient_client, day_of_readings):
    response = patient_client.get(
        READINGS, {"since": "2026-03-01T02:00:00Z", "until": "2026-03-01T04:00:00Z"}
    )

    assert listed_hours(response) == [4, 3, 2]


def test_since_and_until_take_any_utc_offset(patient_client, day_of_readings):
    # 07:30+05:30 is 02:00 UTC; 19:00-08:00 the day before is 03:00 UTC.
    response = patient_client.get(
        READINGS, {"since": "2026-03-01T07:30:00+05:30", "until": "2026-02-28T19:00:00-08:00"}
    )

    assert listed_hours(response) == [3, 2]


def test_the_type_filter_lists_one_metric(patient_client, day_of_readings):
    response = patient_client.get(READINGS, {"type": "weight"})

    assert listed_hours(response) == [6, 4, 2]
    assert {result["type"] for result in response.json()["results"]} == {"weight"}


def test_filters_combine(patient_client, day_of_readings):
    response = patient_client.get(READINGS, {"type": "glucose", "since": "2026-03-01T02:00:00Z"})

    assert listed_hours(response) == [5, 3]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"type": "cholesterol"}, {"type": ['"cholesterol" is not a valid choice.']}),
        (
            {"since": "yesterday"},
            {
                "since": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            {"until": "2026-03-01T25:00:00Z"},
            {
                "until": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
            {"until": ["Must not be before 'since'."]},
        ),
    ],
)
def test_an_invalid_filter_is_400_with_the_reason(patient_client, day_of_readings, query, errors):
    response = patient_client.get(READINGS, query)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": errors}


# --- GET: pagination -----------------------------------------------------------------------


def test_pages_follow_next_links_without_overlap_or_gaps(patient_client, day_of_readings):
    # given
    pages = []
    url = f"{READINGS}?page_size=4"

    # when
    while url:
        response = patient_client.get(url)
        pages.append(listed_hours(response))
        url = response.json()["next"]

    # then
    assert pages == [[6, 5, 4, 3], [2, 1]]


def test_a_reading_stored_while_paging_does_not_shift_the_next_page(
    patient, patient_client, day_of_readings
):
    first = patient_client.get(READINGS, {"page_size": 3})
    ReadingFactory(patient=patient, measured_at=datetime(2026, 3, 1, 7, tzinfo=UTC))

    second = patient_client.get(first.json()["next"])

    assert listed_hours(first) == [6, 5, 4]
    assert listed_hours(second) == [3, 2, 1]


def test_readings_at_the_same_instant_page_without_overlap(patient, patient_client):
    same_instant = datetime(2026, 3, 1, 9, tzinfo=UTC)
    stored = {
        str(ReadingFactory(patient=patient, measured_at=same_instant).client_id) for _ in range(5)
    }

    seen, url = [], f"{READINGS}?page_size=2"
    while url:
        response = patient_client.get(url)
        seen += [result["id"] for result in response.json()["results"]]
        url = response.json()["next"]

    assert sorted(seen) == sorted(stored)


# --- GET: the staff list -------------------------------------------------------------------


def test_a_care_team_member_sees_the_same_list_as_the_patient(
    patient, patient_client, nurse_client
):
    post(patient_client, {"readings": [ReadingItemFactory(), ReadingItemFactory(type="dose")]})

    staff = nurse_client.get(patient_readings(patient.pk), {"type": "dose"})

    assert staff.status_code == 200
    assert staff.json() == patient_client.get(READINGS, {"type": "dose"}).json()
    assert len(staff.json()["results"]) == 1


def test_the_staff_list_rejects_an_invalid_filter(patient, nurse_client):
    response = nurse_client.get(patient_readings(patient.pk), {"type": "bp"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"type": ['"bp" is not a valid choice.']},
    }


def test_a_staff_member_of_another_team_gets_404(patient, outsider_client):
    ReadingFactory(patient=patient)

    response = outsider_client.get(patient_readings(patient.pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_patient_app_token_may_not_use_the_staff_list(patient, patient_client):
    response = patient_client.get(patient_readings(patient.pk))

    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs a staff token."}
