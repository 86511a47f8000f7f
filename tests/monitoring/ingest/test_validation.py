"""Reading ingestion, validation (monitoring/ingest/validation.py): parse_batch, the shape
of one item (validate_item), measured_at and the device serial.

Plausibility limits come from monitoring.units.metric_units() (read from clinical.yaml), so
these tests follow the reference instead of restating it.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from monitoring.ingest import (
    MalformedBatch,
    parse_batch,
)
from tests.factories import ReadingItemFactory
from tests.monitoring.ingest.helpers import NOW, TIMESTAMP_FORMAT, UUID_FORMAT, errors_of, valid

# --- parse_batch: the body as a whole ------------------------------------------------------


def test_parse_batch_takes_the_list_under_readings():
    items = [ReadingItemFactory(), ReadingItemFactory(type="weight")]

    assert parse_batch({"readings": items}) == items


def test_parse_batch_takes_a_single_reading_object_as_a_batch_of_one():
    item = ReadingItemFactory()

    assert parse_batch(item) == [item]


def test_parse_batch_takes_a_bare_list_of_readings():
    items = [ReadingItemFactory()]

    assert parse_batch(items) == items


@pytest.mark.parametrize("body", ["readings", 5, 5.5, None, True])
def test_parse_batch_refuses_a_body_that_is_neither_an_object_nor_a_list(body):
    with pytest.raises(MalformedBatch) as refused:
        parse_batch(body)

    assert str(refused.value) == (
        'The body must be a JSON object: {"readings": [...]} or a single reading.'
    )


@pytest.mark.parametrize("readings", ["x", {}, None, 5, {"id": "x"}])
def test_parse_batch_refuses_readings_that_is_not_a_list(readings):
    with pytest.raises(MalformedBatch) as refused:
        parse_batch({"readings": readings})

    assert str(refused.value) == "'readings' must be a list of reading objects."


@pytest.mark.parametrize("body", [[], {"readings": []}])
def test_parse_batch_refuses_an_empty_batch(body):
    with pytest.raises(MalformedBatch) as refused:
        parse_batch(body)

    assert str(refused.value) == "A batch needs at least 1 reading."


def test_parse_batch_refuses_one_item_more_than_the_batch_limit():
    items = [{}] * (settings.VIGIL_MAX_BATCH + 1)

    with pytest.raises(MalformedBatch) as refused:
        parse_batch({"readings": items})

    assert str(refused.value) == (
        "A batch holds at most 500 readings; this one has 501. Split it into smaller batches."
    )


def test_parse_batch_accepts_exactly_the_batch_limit():
    items = [{}] * settings.VIGIL_MAX_BATCH

    assert len(parse_batch({"readings": items})) == 500


# --- validate_item: the shape of one item --------------------------------------------------


@pytest.mark.parametrize("item", ["glucose", 5, None, True, [], [{"type": "glucose"}]])
def test_an_item_that_is_not_an_object_is_rejected(item):
    assert errors_of(item) == {"non_field_errors": ["Each reading must be a JSON object."]}


def test_an_item_without_an_id_is_rejected():
    item = ReadingItemFactory()
    del item["id"]

    assert errors_of(item) == {"id": ["This field is required: a UUID made by the client."]}


def test_an_item_with_a_null_id_is_rejected_as_missing_it():
    assert errors_of(ReadingItemFactory(id=None)) == {
        "id": ["This field is required: a UUID made by the client."]
    }


@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "", "7b0d5f8e-3c2a-4f61-9d0b", 12345, 1.5, True, [], {}]
)
def test_an_id_that_is_not_a_uuid_is_rejected(bad_id):
    assert errors_of(ReadingItemFactory(id=bad_id)) == {"id": [UUID_FORMAT]}


@pytest.mark.parametrize(
    "spelling",
    [
        "7B0D5F8E-3C2A-4F61-9D0B-2A4E6C8F1B3D",
        "7b0d5f8e3c2a4f619d0b2a4e6c8f1b3d",
        "{7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d}",
    ],
)
def test_an_id_in_another_uuid_spelling_is_the_same_id(spelling):
    reading = valid(ReadingItemFactory(id=spelling))

    assert reading.client_id == uuid.UUID("7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d")


def test_an_item_without_a_type_is_rejected():
    item = ReadingItemFactory()
    del item["type"]

    assert errors_of(item) == {"type": ["This field is required."]}


@pytest.mark.parametrize(
    "metric", ["cholesterol", "Glucose", "", 5, True, ["glucose"], {"name": "glucose"}]
)
def test_an_unknown_type_is_rejected_with_the_known_types(metric):
    item = ReadingItemFactory()
    item["type"] = metric

    assert errors_of(item) == {
        "type": [
            "Must be one of: glucose, blood_pressure, weight, inr, heart_rate, spo2, "
            "temperature, dose."
        ]
    }


def test_a_bad_id_and_an_unknown_type_are_both_reported():
    item = ReadingItemFactory(id="nope")
    item["type"] = "cholesterol"

    assert errors_of(item) == {
        "id": [UUID_FORMAT],
        "type": [
            "Must be one of: glucose, blood_pressure, weight, inr, heart_rate, spo2, "
            "temperature, dose."
        ],
    }


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        ("glucose", "systolic"),
        ("weight", "context"),
        ("blood_pressure", "context"),
        ("dose", "value"),
        ("dose", "unit"),
        ("heart_rate", "medication"),
        ("glucose", "patient"),
    ],
)
def test_a_field_that_does_not_belong_to_the_type_is_rejected(metric, field):
    item = ReadingItemFactory(type=metric)
    item[field] = "fasting"

    assert errors_of(item) == {field: [f"Not a field of a {metric} reading."]}


def test_several_wrong_fields_are_all_reported_at_once():
    item = ReadingItemFactory(id=42, value="high", unit="mg", measured_at="today")

    assert errors_of(item) == {
        "id": [UUID_FORMAT],
        "measured_at": [TIMESTAMP_FORMAT],
        "unit": ["'mg' is not a unit for glucose; one of: mg/dL, mmol/L."],
        "value": ["Must be a number."],
    }


# --- measured_at ---------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["absent", None])
def test_an_item_without_measured_at_is_rejected(missing):
    item = ReadingItemFactory()
    if missing == "absent":
        del item["measured_at"]
    else:
        item["measured_at"] = None

    assert errors_of(item) == {"measured_at": ["This field is required."]}


@pytest.mark.parametrize(
    "measured_at",
    [
        "2026-03-01T07:30:00",  # no offset: which instant?
        "2026-03-01",  # date only
        "2026-03-01T07:30+01:00",  # no seconds
        "2026-03-01T07:30:00+0100",  # offset without colon
        "01/03/2026 07:30",
        "yesterday",
        "",
        1772350200,
        True,
        ["2026-03-01T07:30:00Z"],
    ],
)
def test_measured_at_that_is_not_rfc3339_with_an_offset_is_rejected(measured_at):
    assert errors_of(ReadingItemFactory(measured_at=measured_at)) == {
        "measured_at": [TIMESTAMP_FORMAT]
    }


@pytest.mark.parametrize(
    "measured_at",
    [
        "2026-13-01T07:30:00Z",
        "2026-02-30T07:30:00Z",
        "2026-03-01T24:30:00Z",
    ],
)
def test_measured_at_shaped_right_but_impossible_is_rejected(measured_at):
    assert errors_of(ReadingItemFactory(measured_at=measured_at)) == {
        "measured_at": [f"'{measured_at}' is not a valid date-time."]
    }


@pytest.mark.parametrize(
    ("measured_at", "instant", "offset_minutes"),
    [
        ("2026-03-01T07:30:00+05:30", datetime(2026, 3, 1, 2, 0, tzinfo=UTC), 330),
        ("2026-02-28T18:00:00-08:00", datetime(2026, 3, 1, 2, 0, tzinfo=UTC), -480),
        ("2026-03-01T02:00:00Z", datetime(2026, 3, 1, 2, 0, tzinfo=UTC), 0),
        ("2026-03-01t02:00:00z", datetime(2026, 3, 1, 2, 0, tzinfo=UTC), 0),
        ("2026-03-01 02:00:00+00:00", datetime(2026, 3, 1, 2, 0, tzinfo=UTC), 0),
        (
            "2026-03-01T02:00:00.250+00:00",
            datetime(2026, 3, 1, 2, 0, 0, 250000, tzinfo=UTC),
            0,
        ),
    ],
)
def test_measured_at_with_any_offset_is_that_instant_and_keeps_the_offset(
    measured_at, instant, offset_minutes
):
    reading = valid(ReadingItemFactory(measured_at=measured_at))

    assert reading.measured_at == instant
    assert reading.utc_offset_minutes == offset_minutes


def test_measured_at_exactly_at_the_clock_skew_allowance_is_accepted():
    at_the_limit = (NOW + settings.VIGIL_FUTURE_SKEW).isoformat()

    assert valid(ReadingItemFactory(measured_at=at_the_limit)).measured_at == (
        NOW + settings.VIGIL_FUTURE_SKEW
    )


def test_measured_at_one_second_beyond_the_clock_skew_allowance_is_rejected():
    beyond = (NOW + settings.VIGIL_FUTURE_SKEW + timedelta(seconds=1)).isoformat()

    assert errors_of(ReadingItemFactory(measured_at=beyond)) == {
        "measured_at": ["Is more than 5 minutes in the future; check the clock."]
    }


def test_the_clock_skew_allowance_is_the_five_minutes_of_the_contract():
    assert timedelta(minutes=5) == settings.VIGIL_FUTURE_SKEW


def test_a_future_measured_at_is_compared_as_an_instant_whatever_its_offset():
    # 16:00+05:00 is 11:00 UTC: an hour before NOW although its clock reads later.
    assert valid(ReadingItemFactory(measured_at="2026-03-01T16:00:00+05:00")).measured_at == (
        datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    )


def test_a_measured_at_whose_utc_instant_falls_before_year_one_is_rejected():
    item = ReadingItemFactory(measured_at="0001-01-01T00:00:00+05:00")

    assert errors_of(item) == {
        "measured_at": ["'0001-01-01T00:00:00+05:00' is not a valid date-time."]
    }


@pytest.mark.parametrize(
    "offset", ["+14:01", "-14:01", "+15:59", "+16:00", "-16:00", "+24:00", "+99:00", "+05:75"]
)
def test_measured_at_with_an_offset_no_place_has_is_rejected_with_the_range(offset):
    # +16:00 once made the whole batch a 500: PostgreSQL stores offsets up to ±15:59 only.
    item = ReadingItemFactory(measured_at=f"2026-03-01T07:30:00{offset}")

    assert errors_of(item) == {
        "measured_at": [
            f"The UTC offset {offset} is not a real one: offsets lie between -14:00 and +14:00."
        ]
    }


@pytest.mark.parametrize(
    ("measured_at", "instant"),
    [
        ("2026-03-01T21:30:00+14:00", datetime(2026, 3, 1, 7, 30, tzinfo=UTC)),
        ("2026-02-28T17:30:00-14:00", datetime(2026, 3, 1, 7, 30, tzinfo=UTC)),
    ],
)
def test_measured_at_with_an_offset_of_exactly_fourteen_hours_is_accepted(measured_at, instant):
    assert valid(ReadingItemFactory(measured_at=measured_at)).measured_at == instant


@pytest.mark.parametrize(
    "measured_at",
    [
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z
        "1970-01-01T00:00:00Z",  # a clock reset to the epoch
        "0001-01-01T00:00:00-08:00",  # the reading that once stopped a patient's evaluations
    ],
)
def test_measured_at_before_the_earliest_accepted_instant_is_rejected(measured_at, settings):
    settings.VIGIL_EARLIEST_MEASUREMENT = datetime(2000, 1, 1, tzinfo=UTC)  # the default

    assert errors_of(ReadingItemFactory(measured_at=measured_at)) == {
        "measured_at": ["Is before 2000-01-01; check the clock."]
    }


def test_measured_at_exactly_at_the_earliest_accepted_instant_is_accepted():
    at_the_limit = settings.VIGIL_EARLIEST_MEASUREMENT.isoformat()

    assert valid(ReadingItemFactory(measured_at=at_the_limit)).measured_at == (
        settings.VIGIL_EARLIEST_MEASUREMENT
    )


def test_the_earliest_accepted_instant_comes_from_settings(settings):
    settings.VIGIL_EARLIEST_MEASUREMENT = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)

    assert errors_of(ReadingItemFactory(measured_at="2020-06-01T11:59:59Z")) == {
        "measured_at": ["Is before 2020-06-01T12:00:00+00:00; check the clock."]
    }
    assert valid(ReadingItemFactory(measured_at="2020-06-01T12:00:00Z")).measured_at == (
        datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
    )


# --- device serial -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        (5, "Must be a string."),
        (["SC-1"], "Must be a string."),
        ("S" * 121, "Must be at most 120 characters."),
        ("SC\x00-1", "Must not contain the NUL character."),
    ],
)
def test_a_device_serial_that_cannot_be_stored_is_rejected(device, reason):
    assert errors_of(ReadingItemFactory(device=device)) == {"device": [reason]}


def test_a_nul_character_in_a_medication_id_is_rejected():
    assert errors_of(ReadingItemFactory(type="dose", medication="warfarin\x00")) == {
        "medication": ["Must not contain the NUL character."]
    }
