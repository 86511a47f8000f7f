"""Reading ingestion in the domain: parse_batch, validate_item and record_readings.

Plausibility limits come from monitoring.units.metric_units() (read from clinical.yaml), so
these tests follow the reference instead of restating it.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from monitoring.auth import register_device, revoke_device
from monitoring.ingest import (
    COLUMNS,
    IngestResult,
    MalformedBatch,
    ValidReading,
    parse_batch,
    record_readings,
    validate_item,
)
from monitoring.models import Reading, ReadingSource
from monitoring.units import format_number, metric_units
from tests.factories import PatientFactory, ReadingItemFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMESTAMP_FORMAT = (
    "Must be an RFC 3339 date-time with a UTC offset, e.g. 2026-03-01T07:30:00+01:00."
)
UUID_FORMAT = "Must be a UUID, e.g. 7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d."
SINGLE_VALUE_METRICS = ["glucose", "weight", "inr", "heart_rate", "spo2", "temperature"]
CONFLICT_ERRORS = {"id": ["A reading with this id is already stored with other content."]}


def errors_of(item) -> dict:
    outcome = validate_item(item, now=NOW)
    assert isinstance(outcome, dict), f"expected per-field errors, got {outcome!r}"
    return outcome


def valid(item) -> ValidReading:
    outcome = validate_item(item, now=NOW)
    assert isinstance(outcome, ValidReading), f"expected a valid reading, got {outcome!r}"
    return outcome


def record(patient, items, *, received_at=NOW, **kwargs) -> IngestResult:
    return record_readings(patient=patient, items=items, received_at=received_at, **kwargs)


def statuses(result: IngestResult) -> list[str]:
    return [item.status for item in result.results]


def minutes(duration: timedelta) -> int:
    return int(duration / timedelta(minutes=1))


def outside(label: str, value: float, unit: str, limits) -> str:
    shown = f"{format_number(value)} {'' if unit == '{INR}' else unit}".rstrip()
    return f"{label} {shown} is outside the plausible range {limits.describe()}"


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


# --- value ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["5.5", "112", True, False, [112], {"mg/dL": 112}])
def test_a_value_that_is_not_a_number_is_rejected(value):
    assert errors_of(ReadingItemFactory(value=value)) == {"value": ["Must be a number."]}


@pytest.mark.parametrize("missing", ["absent", None])
def test_a_missing_or_null_value_is_rejected(missing):
    item = ReadingItemFactory(type="weight")
    if missing == "absent":
        del item["value"]
    else:
        item["value"] = None

    assert errors_of(item) == {"value": ["This field is required."]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_not_finite_is_rejected(value):
    assert errors_of(ReadingItemFactory(value=value)) == {"value": ["Must be a finite number."]}


def test_an_integer_too_large_for_a_float_is_rejected_not_a_crash():
    assert errors_of(ReadingItemFactory(value=10**400)) == {"value": ["Must be a finite number."]}


def test_an_integer_value_is_stored_as_a_number():
    reading = valid(ReadingItemFactory(value=112))

    assert reading.value == 112.0
    assert reading.sent_value == 112.0


# --- unit ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "unit", "accepted"),
    [
        ("glucose", "mg/dl", "mg/dL, mmol/L"),
        ("weight", "stone", "[lb_av], g, kg, lb"),
        ("temperature", "K", "Cel, [degF], °C, °F"),
        ("heart_rate", "Hz", "/min, bpm, {beats}/min"),
        ("spo2", "ratio", "%"),
        ("inr", "mg/dL", "1, INR, ratio, {INR}"),
        ("blood_pressure", "kPa", "mmHg, mm[Hg]"),
    ],
)
def test_an_unknown_unit_is_rejected_with_the_accepted_ones(metric, unit, accepted):
    assert errors_of(ReadingItemFactory(type=metric, unit=unit)) == {
        "unit": [f"'{unit}' is not a unit for {metric}; one of: {accepted}."]
    }


@pytest.mark.parametrize("unit", [5, True, ["mg/dL"], {"code": "mg/dL"}])
def test_a_unit_that_is_not_a_string_is_rejected(unit):
    assert errors_of(ReadingItemFactory(unit=unit)) == {"unit": ["Must be a string."]}


@pytest.mark.parametrize(
    ("metric", "accepted"),
    [
        ("glucose", "mg/dL, mmol/L"),
        ("weight", "[lb_av], g, kg, lb"),
        ("temperature", "Cel, [degF], °C, °F"),
    ],
)
@pytest.mark.parametrize("missing", ["absent", None, ""])
def test_glucose_weight_and_temperature_must_say_their_unit(metric, accepted, missing):
    item = ReadingItemFactory(type=metric)
    if missing == "absent":
        del item["unit"]
    else:
        item["unit"] = missing

    assert errors_of(item) == {
        "unit": [f"This field is required for {metric}; one of: {accepted}."]
    }


@pytest.mark.parametrize("metric", ["inr", "heart_rate", "spo2", "blood_pressure"])
def test_a_single_unit_metric_may_omit_its_unit(metric):
    item = ReadingItemFactory(type=metric)
    assert "unit" not in item

    reading = valid(item)

    canonical = metric_units()[metric].canonical_unit
    assert (reading.unit, reading.sent_unit) == (canonical, canonical)


@pytest.mark.parametrize(
    ("metric", "value", "unit", "stored", "stored_unit", "sent_unit"),
    [
        ("glucose", 112, "mg/dL", 112.0, "mg/dL", "mg/dL"),
        ("weight", 81.5, "kg", 81.5, "kg", "kg"),
        ("weight", 176.4, "lb", round(176.4 * 0.45359237, 6), "kg", "[lb_av]"),
        ("weight", 176.4, "[lb_av]", round(176.4 * 0.45359237, 6), "kg", "[lb_av]"),
        ("temperature", 36.8, "°C", 36.8, "Cel", "Cel"),
        ("temperature", 100.4, "°F", 38.0, "Cel", "[degF]"),
        ("temperature", 100.4, "[degF]", 38.0, "Cel", "[degF]"),
        ("heart_rate", 64, "bpm", 64.0, "/min", "bpm"),
        ("heart_rate", 64, "{beats}/min", 64.0, "/min", "{beats}/min"),
        ("heart_rate", 64, "/min", 64.0, "/min", "/min"),
        ("inr", 2.4, "{INR}", 2.4, "{INR}", "{INR}"),
        ("inr", 2.4, "1", 2.4, "{INR}", "1"),
        ("inr", 2.4, "INR", 2.4, "{INR}", "INR"),
        ("spo2", 97, "%", 97.0, "%", "%"),
    ],
)
def test_a_unit_spelling_the_contract_accepts_converts_to_the_canonical_unit(
    metric, value, unit, stored, stored_unit, sent_unit
):
    reading = valid(ReadingItemFactory(type=metric, value=value, unit=unit))

    assert (reading.value, reading.unit) == (stored, stored_unit)
    assert (reading.sent_value, reading.sent_unit) == (value, sent_unit)


def test_glucose_in_mmol_per_l_is_stored_in_mg_per_dl_and_keeps_what_was_sent():
    factor = metric_units()["glucose"].units["mmol/L"].factor

    reading = valid(ReadingItemFactory(value=5.5, unit="mmol/L"))

    assert reading.value == round(5.5 * factor) == 99
    assert (reading.unit, reading.sent_value, reading.sent_unit) == ("mg/dL", 5.5, "mmol/L")


def test_blood_pressure_in_mmhg_spelling_is_stored_in_mm_hg():
    reading = valid(ReadingItemFactory(type="blood_pressure", unit="mmHg"))

    assert (reading.systolic, reading.diastolic) == (128.0, 82.0)
    assert (reading.unit, reading.sent_unit) == ("mm[Hg]", "mm[Hg]")


# --- plausibility limits -------------------------------------------------------------------


@pytest.mark.parametrize("metric", SINGLE_VALUE_METRICS)
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_a_value_exactly_at_a_plausibility_limit_is_accepted(metric, side):
    spec = metric_units()[metric]
    limit = getattr(spec.plausible, side)

    reading = valid(ReadingItemFactory(type=metric, value=limit, unit=spec.canonical_unit))

    assert reading.value == limit


@pytest.mark.parametrize("metric", SINGLE_VALUE_METRICS)
@pytest.mark.parametrize("beyond", ["below", "above"])
def test_a_value_just_beyond_a_plausibility_limit_is_rejected(metric, beyond):
    spec = metric_units()[metric]
    limits = spec.plausible
    value = limits.lower - 0.01 if beyond == "below" else limits.upper + 0.1
    label = metric.replace("_", " ")

    item = ReadingItemFactory(type=metric, value=value, unit=spec.canonical_unit)

    assert errors_of(item) == {"value": [outside(label, value, spec.canonical_unit, limits)]}


def test_glucose_just_below_the_plausible_range_is_rejected_as_the_reference_says():
    # clinical.yaml blood_glucose.plausible_range.accept: 10–1000 mg/dL, both inclusive.
    assert errors_of(ReadingItemFactory(value=9.99)) == {
        "value": ["glucose 9.99 mg/dL is outside the plausible range 10–1000 mg/dL"]
    }
    assert valid(ReadingItemFactory(value=10)).value == 10
    assert valid(ReadingItemFactory(value=1000)).value == 1000


def test_spo2_above_100_percent_is_rejected_as_the_reference_says():
    assert valid(ReadingItemFactory(type="spo2", value=100)).value == 100
    assert errors_of(ReadingItemFactory(type="spo2", value=100.1)) == {
        "value": ["spo2 100.1 % is outside the plausible range 50–100 %"]
    }


def test_plausibility_is_judged_after_conversion_and_the_reason_shows_both_units():
    limits = metric_units()["glucose"].plausible
    factor = metric_units()["glucose"].units["mmol/L"].factor
    too_low = round(limits.lower / factor - 0.05, 2)  # just under the limit, in mmol/L

    assert errors_of(ReadingItemFactory(value=too_low, unit="mmol/L")) == {
        "value": [
            f"glucose {format_number(too_low)} mmol/L "
            f"({format_number(round(too_low * factor))} mg/dL) is outside the plausible "
            f"range {limits.describe()}"
        ]
    }


@pytest.mark.parametrize("spelling", ["{INR}", "1", "INR", "ratio"])
def test_an_implausible_inr_is_reported_as_a_bare_ratio_however_its_unit_was_spelled(spelling):
    # clinical.yaml inr.plausible_range: 0.5–20, a dimensionless ratio.
    assert errors_of(ReadingItemFactory(type="inr", value=25, unit=spelling)) == {
        "value": ["inr 25 is outside the plausible range 0.5–20"]
    }


def test_a_weight_in_pounds_beyond_the_limit_is_rejected_after_conversion():
    limits = metric_units()["weight"].plausible
    factor = metric_units()["weight"].units["[lb_av]"].factor
    pounds = round(limits.upper / factor + 1)

    assert list(errors_of(ReadingItemFactory(type="weight", value=pounds, unit="lb"))) == ["value"]
    assert valid(ReadingItemFactory(type="weight", value=pounds - 2, unit="lb")).value == (
        round((pounds - 2) * factor, 6)
    )


def test_a_temperature_in_fahrenheit_at_the_upper_limit_is_accepted():
    limits = metric_units()["temperature"].plausible
    fahrenheit = limits.upper * 9 / 5 + 32

    assert valid(ReadingItemFactory(type="temperature", value=fahrenheit, unit="°F")).value == (
        limits.upper
    )


# --- blood pressure ------------------------------------------------------------------------


def bp_limits():
    return metric_units()["blood_pressure"].components


def test_blood_pressure_at_the_edges_of_both_ranges_is_accepted():
    limits = bp_limits()

    low = valid(
        ReadingItemFactory(
            type="blood_pressure",
            systolic=limits["systolic"].lower,
            diastolic=limits["diastolic"].lower,
        )
    )
    high = valid(
        ReadingItemFactory(
            type="blood_pressure",
            systolic=limits["systolic"].upper,
            diastolic=limits["diastolic"].upper,
        )
    )

    assert (low.systolic, low.diastolic) == (limits["systolic"].lower, limits["diastolic"].lower)
    assert (high.systolic, high.diastolic) == (
        limits["systolic"].upper,
        limits["diastolic"].upper,
    )


@pytest.mark.parametrize(
    ("part", "beyond"),
    [("systolic", "below"), ("systolic", "above"), ("diastolic", "below"), ("diastolic", "above")],
)
def test_a_blood_pressure_component_just_beyond_its_range_is_rejected(part, beyond):
    limits = bp_limits()
    value = limits[part].lower - 0.01 if beyond == "below" else limits[part].upper + 0.1
    # The other component sits inside its range and on the right side of this one.
    other = {
        ("systolic", "below"): ("diastolic", limits["diastolic"].lower),
        ("systolic", "above"): ("diastolic", limits["diastolic"].lower),
        ("diastolic", "below"): ("systolic", limits["systolic"].lower),
        ("diastolic", "above"): ("systolic", limits["systolic"].upper),
    }[(part, beyond)]

    item = ReadingItemFactory(type="blood_pressure", **{part: value, other[0]: other[1]})

    assert errors_of(item) == {part: [outside(part, value, "mm[Hg]", limits[part])]}


@pytest.mark.parametrize(("systolic", "diastolic"), [(90, 90), (80, 95)])
def test_blood_pressure_with_systolic_not_above_diastolic_is_rejected(systolic, diastolic):
    item = ReadingItemFactory(type="blood_pressure", systolic=systolic, diastolic=diastolic)

    assert errors_of(item) == {
        "diastolic": [f"diastolic {diastolic} must be lower than systolic {systolic}"]
    }


def test_blood_pressure_needs_both_components():
    item = ReadingItemFactory(type="blood_pressure")
    del item["systolic"]
    item["diastolic"] = None

    assert errors_of(item) == {
        "diastolic": ["This field is required."],
        "systolic": ["This field is required."],
    }


def test_blood_pressure_components_must_be_numbers():
    item = ReadingItemFactory(type="blood_pressure", systolic="128", diastolic=True, pulse="72")

    assert errors_of(item) == {
        "diastolic": ["Must be a number."],
        "pulse": ["Must be a number."],
        "systolic": ["Must be a number."],
    }


@pytest.mark.parametrize("side", ["lower", "upper"])
def test_a_pulse_at_the_heart_rate_limits_is_accepted(side):
    pulse = getattr(metric_units()["heart_rate"].plausible, side)

    assert valid(ReadingItemFactory(type="blood_pressure", pulse=pulse)).pulse == pulse


@pytest.mark.parametrize("beyond", ["below", "above"])
def test_a_pulse_beyond_the_heart_rate_limits_is_rejected_as_the_pulse(beyond):
    limits = metric_units()["heart_rate"].plausible
    pulse = limits.lower - 0.01 if beyond == "below" else limits.upper + 0.1

    assert errors_of(ReadingItemFactory(type="blood_pressure", pulse=pulse)) == {
        "pulse": [outside("pulse", pulse, "/min", limits)]
    }


def test_a_value_sent_with_a_blood_pressure_is_reported_against_value_not_pulse():
    item = ReadingItemFactory(type="blood_pressure", pulse=72, value=128)

    assert errors_of(item) == {"value": ["Not a field of a blood_pressure reading."]}


# --- glucose context -----------------------------------------------------------------------


@pytest.mark.parametrize("context", ["fasting", "before_meal", "after_meal", "bedtime", "random"])
def test_each_glucose_context_of_the_contract_is_accepted(context):
    assert valid(ReadingItemFactory(context=context)).context == context


@pytest.mark.parametrize("context", ["post_meal", "FASTING", "", 1, ["fasting"]])
def test_a_glucose_context_outside_the_list_is_rejected(context):
    assert errors_of(ReadingItemFactory(context=context)) == {
        "context": ["Must be one of: fasting, before_meal, after_meal, bedtime, random."]
    }


def test_a_null_glucose_context_means_none():
    assert valid(ReadingItemFactory(context=None)).context == ""


# --- dose ----------------------------------------------------------------------------------


def test_a_dose_is_valid_with_medication_status_and_scheduled_time():
    reading = valid(ReadingItemFactory(type="dose", status="skipped"))

    assert (reading.medication, reading.dose_status) == ("warfarin-5mg", "skipped")
    assert reading.scheduled_for == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert (reading.value, reading.unit) == (None, "")


@pytest.mark.parametrize("medication", ["absent", None, ""])
def test_a_dose_without_medication_is_rejected(medication):
    item = ReadingItemFactory(type="dose")
    if medication == "absent":
        del item["medication"]
    else:
        item["medication"] = medication

    assert errors_of(item) == {
        "medication": ["This field is required: the medication id from the plan."]
    }


def test_a_dose_medication_must_be_a_short_string():
    assert errors_of(ReadingItemFactory(type="dose", medication=5)) == {
        "medication": ["Must be a string."]
    }
    assert errors_of(ReadingItemFactory(type="dose", medication="m" * 65)) == {
        "medication": ["Must be at most 64 characters."]
    }
    assert valid(ReadingItemFactory(type="dose", medication="m" * 64)).medication == "m" * 64


@pytest.mark.parametrize("status", ["absent", None, "missed", "TAKEN", "", 1, ["taken"]])
def test_a_dose_status_other_than_taken_or_skipped_is_rejected(status):
    item = ReadingItemFactory(type="dose")
    if status == "absent":
        del item["status"]
    else:
        item["status"] = status

    assert errors_of(item) == {"status": ["Must be one of: taken, skipped."]}


@pytest.mark.parametrize("scheduled_for", ["2026-03-01T08:00:00", "08:00", "tomorrow", 5])
def test_a_dose_scheduled_time_that_is_not_rfc3339_is_rejected(scheduled_for):
    assert errors_of(ReadingItemFactory(type="dose", scheduled_for=scheduled_for)) == {
        "scheduled_for": [TIMESTAMP_FORMAT]
    }


@pytest.mark.parametrize(
    ("scheduled_for", "error"),
    [
        (
            "2026-03-01T08:00:00+16:00",
            "The UTC offset +16:00 is not a real one: offsets lie between -14:00 and +14:00.",
        ),
        ("1999-12-31T23:59:59Z", "Is before 2000-01-01; check the clock."),
        ("0001-01-01T00:00:00Z", "Is before 2000-01-01; check the clock."),
        ("9999-12-31T23:59:59-08:00", "'9999-12-31T23:59:59-08:00' is not a valid date-time."),
    ],
)
def test_a_dose_scheduled_time_out_of_range_is_rejected_with_the_reason(
    scheduled_for, error, settings
):
    settings.VIGIL_EARLIEST_MEASUREMENT = datetime(2000, 1, 1, tzinfo=UTC)  # the default

    assert errors_of(ReadingItemFactory(type="dose", scheduled_for=scheduled_for)) == {
        "scheduled_for": [error]
    }


def test_a_dose_may_name_a_time_up_to_the_slot_lead_and_clock_skew_ahead():
    # A dose taken early answers its slot (VIGIL_SLOT_LEAD): its scheduled time is ahead.
    ahead = settings.VIGIL_SLOT_LEAD + settings.VIGIL_FUTURE_SKEW
    at_the_limit = ReadingItemFactory(type="dose", scheduled_for=(NOW + ahead).isoformat())
    beyond = ReadingItemFactory(
        type="dose", scheduled_for=(NOW + ahead + timedelta(seconds=1)).isoformat()
    )

    assert valid(at_the_limit).scheduled_for == NOW + ahead
    assert errors_of(beyond) == {
        "scheduled_for": [
            f"Is more than {minutes(ahead)} minutes in the future: a dose is logged at most "
            f"{minutes(settings.VIGIL_SLOT_LEAD)} minutes before it is due; check the clock."
        ]
    }


@pytest.mark.parametrize("scheduled_for", ["absent", None])
def test_a_dose_without_its_scheduled_time_is_rejected(scheduled_for):
    # API.md: medication, status and scheduled_for are required for a dose.
    item = ReadingItemFactory(type="dose")
    if scheduled_for == "absent":
        del item["scheduled_for"]
    else:
        item["scheduled_for"] = scheduled_for

    assert errors_of(item) == {"scheduled_for": ["This field is required."]}


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


# --- record_readings: storing a batch ------------------------------------------------------


@pytest.mark.django_db
def test_valid_siblings_of_rejected_items_are_stored(patient):
    # given
    good_glucose = ReadingItemFactory(value=5.5, unit="mmol/L")
    bad_value = ReadingItemFactory(value="5.5")
    good_weight = ReadingItemFactory(type="weight", value=176.4, unit="lb")
    not_an_object = "glucose 5.5"

    # when
    result = record(patient, [good_glucose, bad_value, good_weight, not_an_object])

    # then
    assert result.as_dict() == {
        "created": 2,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 2,
        "results": [
            {"id": good_glucose["id"], "status": "created"},
            {
                "id": bad_value["id"],
                "status": "rejected",
                "errors": {"value": ["Must be a number."]},
            },
            {"id": good_weight["id"], "status": "created"},
            {
                "id": None,
                "status": "rejected",
                "errors": {"non_field_errors": ["Each reading must be a JSON object."]},
            },
        ],
    }
    assert sorted(Reading.objects.values_list("client_id", flat=True)) == sorted(
        [uuid.UUID(good_glucose["id"]), uuid.UUID(good_weight["id"])]
    )


@pytest.mark.django_db
def test_a_rejected_item_echoes_its_id_as_sent_when_it_is_not_a_uuid(patient):
    result = record(patient, [ReadingItemFactory(id="my-reading-1", value="x"), {"id": 7}])

    assert [item.id for item in result.results] == ["my-reading-1", None]
    assert Reading.objects.count() == 0


@pytest.mark.django_db
def test_a_stored_reading_holds_every_field_of_the_item(patient):
    # given
    item = ReadingItemFactory(
        value=5.5,
        unit="mmol/L",
        context="fasting",
        device="GM-7",
        measured_at="2026-03-01T07:30:00+05:30",
    )

    # when
    record(patient, [item])

    # then
    stored = Reading.objects.get()
    assert {
        "patient": stored.patient_id,
        "client_id": str(stored.client_id),
        "metric": stored.metric,
        "value": stored.value,
        "unit": stored.unit,
        "sent_value": stored.sent_value,
        "sent_unit": stored.sent_unit,
        "systolic": stored.systolic,
        "context": stored.context,
        "measured_at": stored.measured_at,
        "utc_offset_minutes": stored.utc_offset_minutes,
        "received_at": stored.received_at,
        "source": stored.source,
        "device": stored.device_id,
        "device_serial": stored.device_serial,
        "part_of": stored.part_of,
        "evaluated_at": stored.evaluated_at,
    } == {
        "patient": patient.pk,
        "client_id": item["id"],
        "metric": "glucose",
        "value": 99,
        "unit": "mg/dL",
        "sent_value": 5.5,
        "sent_unit": "mmol/L",
        "systolic": None,
        "context": "fasting",
        "measured_at": datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
        "utc_offset_minutes": 330,
        "received_at": NOW,
        "source": ReadingSource.APP,
        "device": None,
        "device_serial": "GM-7",
        "part_of": None,
        "evaluated_at": None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metric", "value", "unit", "stored_value", "stored_unit", "sent_unit"),
    [
        ("weight", 176.4, "lb", round(176.4 * 0.45359237, 6), "kg", "[lb_av]"),
        ("temperature", 100.4, "°F", 38.0, "Cel", "[degF]"),
        ("temperature", 37.2, "°C", 37.2, "Cel", "Cel"),
        ("inr", 2.4, "{INR}", 2.4, "{INR}", "{INR}"),
    ],
)
def test_a_converted_reading_is_stored_canonical_with_the_value_as_sent(
    patient, metric, value, unit, stored_value, stored_unit, sent_unit
):
    record(patient, [ReadingItemFactory(type=metric, value=value, unit=unit)])

    assert list(Reading.objects.values_list("value", "unit", "sent_value", "sent_unit")) == [
        (stored_value, stored_unit, value, sent_unit)
    ]


@pytest.mark.django_db
def test_a_dose_is_stored_with_its_medication_status_and_scheduled_time(patient):
    item = ReadingItemFactory(type="dose", status="taken")

    record(patient, [item])

    stored = Reading.objects.get()
    assert (stored.metric, stored.medication, stored.dose_status) == (
        "dose",
        "warfarin-5mg",
        "taken",
    )
    assert stored.scheduled_for == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert (stored.value, stored.sent_value, stored.unit) == (None, None, "")


@pytest.mark.django_db
def test_a_blood_pressure_with_pulse_also_stores_a_heart_rate_reading(patient):
    # given
    item = ReadingItemFactory(type="blood_pressure", systolic=142, diastolic=91, pulse=72)

    # when
    result = record(patient, [item])

    # then
    assert result.as_dict()["results"] == [{"id": item["id"], "status": "created"}]
    bp = Reading.objects.get(metric="blood_pressure")
    assert (bp.systolic, bp.diastolic, bp.value, bp.unit) == (142.0, 91.0, None, "mm[Hg]")
    heart_rate = Reading.objects.get(metric="heart_rate")
    assert (heart_rate.value, heart_rate.unit, heart_rate.sent_value, heart_rate.sent_unit) == (
        72.0,
        "/min",
        72.0,
        "/min",
    )
    assert heart_rate.part_of == uuid.UUID(item["id"])
    assert heart_rate.client_id != bp.client_id
    assert heart_rate.measured_at == bp.measured_at
    assert Reading.objects.count() == 2


@pytest.mark.django_db
def test_a_pulse_row_is_the_blood_pressures_time_device_and_fingerprint_and_nothing_else(patient):
    # given
    device, _ = register_device(patient=patient, kind="bp_monitor", model="C", serial="CUFF-1")
    item = ReadingItemFactory(
        type="blood_pressure", systolic=142, diastolic=91, pulse=72, device="CUFF-1"
    )

    # when
    record(patient, [item])

    # then
    bp = Reading.objects.get(metric="blood_pressure")
    heart_rate = Reading.objects.get(metric="heart_rate")
    shared = ("patient_id", "measured_at", "utc_offset_minutes", "received_at", "source",
              "device_id", "device_serial", "fingerprint")  # fmt: skip
    assert [getattr(heart_rate, name) for name in shared] == [getattr(bp, name) for name in shared]
    assert heart_rate.device_id == device.pk
    assert (heart_rate.systolic, heart_rate.diastolic, heart_rate.part_of) == (
        None,
        None,
        bp.client_id,
    )
    assert (heart_rate.context, heart_rate.medication, heart_rate.dose_status) == ("", "", "")
    assert heart_rate.scheduled_for is None and bp.part_of is None


def test_the_insert_writes_every_reading_column_but_the_key_and_the_evaluation_bookkeeping():
    columns = {field.column for field in Reading._meta.concrete_fields}
    bookkeeping = {"id", "evaluated_at", "evaluation_failed_at", "evaluation_error"}

    assert sorted(COLUMNS) == sorted(columns - bookkeeping)


@pytest.mark.django_db
def test_resending_a_blood_pressure_with_pulse_creates_nothing_new(patient):
    item = ReadingItemFactory(type="blood_pressure", pulse=72)
    record(patient, [item])

    result = record(patient, [item])

    assert statuses(result) == ["duplicate"]
    assert Reading.objects.count() == 2


@pytest.mark.django_db
def test_a_blood_pressure_without_pulse_stores_one_reading(patient):
    record(patient, [ReadingItemFactory(type="blood_pressure")])

    assert list(Reading.objects.values_list("metric", flat=True)) == ["blood_pressure"]


@pytest.mark.django_db
def test_a_conflicting_blood_pressure_with_a_pulse_stores_no_heart_rate(patient):
    # given: the reading is stored without a pulse
    item = ReadingItemFactory(type="blood_pressure")
    record(patient, [item])

    # when: the same id comes back with a pulse
    result = record(patient, [{**item, "pulse": 72}])

    # then: a conflict, and nothing of the conflicting content is stored
    assert statuses(result) == ["conflict"]
    assert list(Reading.objects.values_list("metric", flat=True)) == ["blood_pressure"]


@pytest.mark.django_db
def test_a_resent_item_is_a_duplicate_and_stored_once(patient):
    item = ReadingItemFactory()
    record(patient, [item])

    result = record(patient, [item])

    assert result.as_dict() == {
        "created": 0,
        "duplicates": 1,
        "conflicts": 0,
        "rejected": 0,
        "results": [{"id": item["id"], "status": "duplicate"}],
    }
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_a_resent_item_with_its_instant_in_another_offset_is_a_duplicate(patient):
    item = ReadingItemFactory(measured_at="2026-03-01T07:30:00+01:00")
    record(patient, [item])

    result = record(patient, [{**item, "measured_at": "2026-03-01T06:30:00Z"}])

    assert statuses(result) == ["duplicate"]
    assert Reading.objects.get().utc_offset_minutes == 60


@pytest.mark.django_db
def test_a_resent_item_with_another_spelling_of_its_id_and_unit_is_a_duplicate(patient):
    item = ReadingItemFactory(type="weight", value=176.4, unit="lb")
    record(patient, [item])

    result = record(patient, [{**item, "id": item["id"].upper(), "unit": "[lb_av]"}])

    assert statuses(result) == ["duplicate"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"value": 113},
        {"unit": "mmol/L", "value": 6.2},
        {"measured_at": "2026-03-01T07:31:00+01:00"},
        {"context": "fasting"},
        {"device": "GM-7"},
        {"type": "weight", "value": 81.5, "unit": "kg"},
    ],
)
def test_the_same_id_with_other_content_is_a_conflict_and_the_stored_reading_is_kept(
    patient, change
):
    # given
    item = ReadingItemFactory()
    record(patient, [item])
    before = Reading.objects.values().get()

    # when
    result = record(patient, [{**item, **change}], received_at=NOW + timedelta(hours=1))

    # then
    assert result.as_dict() == {
        "created": 0,
        "duplicates": 0,
        "conflicts": 1,
        "rejected": 0,
        "results": [{"id": item["id"], "status": "conflict", "errors": CONFLICT_ERRORS}],
    }
    assert Reading.objects.values().get() == before


@pytest.mark.django_db
def test_the_same_id_twice_in_one_batch_with_the_same_content_is_created_then_duplicate(patient):
    item = ReadingItemFactory()

    result = record(patient, [item, dict(item)])

    assert statuses(result) == ["created", "duplicate"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_the_same_id_twice_in_one_batch_with_other_content_is_created_then_conflict(patient):
    item = ReadingItemFactory(value=112)

    result = record(patient, [item, {**item, "value": 140}])

    assert [entry.as_dict() for entry in result.results] == [
        {"id": item["id"], "status": "created"},
        {"id": item["id"], "status": "conflict", "errors": CONFLICT_ERRORS},
    ]
    assert list(Reading.objects.values_list("value", flat=True)) == [112.0]


@pytest.mark.django_db
def test_an_already_stored_id_twice_in_one_batch_is_a_duplicate_both_times(patient):
    item = ReadingItemFactory()
    record(patient, [item])

    result = record(patient, [item, dict(item), {**item, "value": 140}])

    assert statuses(result) == ["duplicate", "duplicate", "conflict"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_a_rejected_first_copy_does_not_stop_a_valid_second_copy(patient):
    item = ReadingItemFactory()

    result = record(patient, [{**item, "value": "oops"}, item])

    assert statuses(result) == ["rejected", "created"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_results_keep_the_order_of_the_request_and_counts_add_up(patient):
    # given: ids whose sort order differs from the request order (rows are inserted sorted)
    stored = ReadingItemFactory(id="ffffffff-0000-4000-8000-000000000000")
    record(patient, [stored])
    items = [
        ReadingItemFactory(id="cccccccc-0000-4000-8000-000000000000"),
        stored,
        ReadingItemFactory(id="aaaaaaaa-0000-4000-8000-000000000000", value=0),
        {**stored, "value": 99},
        ReadingItemFactory(id="bbbbbbbb-0000-4000-8000-000000000000", type="weight"),
    ]

    # when
    result = record(patient, items)

    # then
    data = result.as_dict()
    assert [(entry["id"], entry["status"]) for entry in data["results"]] == [
        ("cccccccc-0000-4000-8000-000000000000", "created"),
        ("ffffffff-0000-4000-8000-000000000000", "duplicate"),
        ("aaaaaaaa-0000-4000-8000-000000000000", "rejected"),
        ("ffffffff-0000-4000-8000-000000000000", "conflict"),
        ("bbbbbbbb-0000-4000-8000-000000000000", "created"),
    ]
    assert (data["created"], data["duplicates"], data["conflicts"], data["rejected"]) == (
        2,
        1,
        1,
        1,
    )
    assert Reading.objects.count() == 3


@pytest.mark.django_db
def test_a_batch_with_nothing_valid_stores_nothing(patient):
    result = record(patient, [ReadingItemFactory(value=None), 5, {}])

    assert statuses(result) == ["rejected", "rejected", "rejected"]
    assert Reading.objects.count() == 0


@pytest.mark.django_db
def test_the_idempotency_key_is_unique_per_patient_not_globally(patient, other_patient):
    item = ReadingItemFactory()

    mine = record(patient, [item])
    theirs = record(other_patient, [item])

    assert statuses(mine) == statuses(theirs) == ["created"]
    assert Reading.objects.filter(client_id=item["id"]).count() == 2


# --- devices -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_device_serial_the_patient_owns_links_the_reading_to_that_device(patient):
    device, _ = register_device(patient=patient, kind="glucose_meter", model="M", serial="GM-7")

    record(patient, [ReadingItemFactory(device="GM-7")])

    assert Reading.objects.values_list("device_id", "device_serial", "source").get() == (
        device.pk,
        "GM-7",
        ReadingSource.APP,
    )


@pytest.mark.django_db
def test_a_device_serial_of_another_patient_or_a_revoked_device_links_nothing(patient):
    register_device(patient=PatientFactory(), kind="glucose_meter", model="M", serial="GM-7")
    revoked, _ = register_device(patient=patient, kind="scale", model="S", serial="SC-9")
    revoke_device(device=revoked)

    record(patient, [ReadingItemFactory(device="GM-7"), ReadingItemFactory(device="SC-9")])

    assert sorted(Reading.objects.values_list("device_id", "device_serial")) == [
        (None, "GM-7"),
        (None, "SC-9"),
    ]


@pytest.mark.django_db
def test_a_reading_posted_with_a_device_key_belongs_to_that_device(patient):
    device, _ = register_device(patient=patient, kind="scale", model="Body+", serial="SC-1")

    record(patient, [ReadingItemFactory(type="weight", device="OTHER")], device=device)

    assert Reading.objects.values_list("device_id", "device_serial", "source").get() == (
        device.pk,
        "OTHER",
        ReadingSource.DEVICE,
    )
