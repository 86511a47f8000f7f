"""Reading ingestion, validation (monitoring/ingest/validation.py): values, units,
plausibility limits, blood pressure, glucose context and doses.

Plausibility limits come from monitoring.units.metric_units() (read from clinical.yaml), so
these tests follow the reference instead of restating it.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from monitoring.units import format_number, metric_units
from tests.factories import ReadingItemFactory
from tests.monitoring.ingest.helpers import (
    NOW,
    SINGLE_VALUE_METRICS,
    TIMESTAMP_FORMAT,
    errors_of,
    minutes,
    outside,
    valid,
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
    # docs/api.md: medication, status and scheduled_for are required for a dose.
    item = ReadingItemFactory(type="dose")
    if scheduled_for == "absent":
        del item["scheduled_for"]
    else:
        item["scheduled_for"] = scheduled_for

    assert errors_of(item) == {"scheduled_for": ["This field is required."]}
