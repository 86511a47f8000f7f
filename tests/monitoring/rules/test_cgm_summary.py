import re
from datetime import timedelta
from types import SimpleNamespace

import pytest

from monitoring.rules import cgm_summary
from monitoring.rules.base import Finding, InvalidParameters, Placement
from tests.monitoring.rules.conftest import NOW, context, days, default_rule, reading, reference

SUFFICIENCY = reference("blood_glucose.cgm_targets.data_sufficiency")
# "5-min sensor: 288 readings/day x 14 d = 4032 possible -> need >=2823"
ENOUGH = int(re.search(r"5-min sensor: .*? need >=(\d+)", SUFFICIENCY["example"])[1])
RANGES = reference("blood_glucose.cgm_targets.ranges_mg_dL")
IN_RANGE = 120
LOW = RANGES["low"]["lower"]["value"]  # 54 mg/dL: below 70, not below 54


FOURTEEN_DAYS = days(SUFFICIENCY["min_days"])


def sensor(values, span=FOURTEEN_DAYS):
    """CGM readings spread evenly over `span` up to now (the window the sweep loads), the last
    at now (counted back from it: a microsecond of rounding never puts one after now)."""
    step = span / len(values)
    last = len(values) - 1
    return [reading("glucose", NOW - step * (last - i), v) for i, v in enumerate(values)]


def every_tenth_low(count):
    return [LOW if i % 10 == 0 else IN_RANGE for i in range(count)]


def evaluate(key, readings):
    return cgm_summary.evaluate(
        default_rule(key), context([], history=readings, now=NOW, unit="mg/dL")
    )


def test_time_below_70_above_its_target_with_sufficient_data_is_a_finding():
    readings = sensor(every_tenth_low(3000))

    result = evaluate("cgm_tbr_lt70", readings)

    rule_id = result.findings[0].rule_id
    assert result.findings == [
        Finding(
            rule_id=rule_id,
            severity="warning",
            title="CGM time below 70 mg/dL is 4 % or more of the last 14 days",
            detail=(
                "CGM time below 70 mg/dL 10.0 % over 14 days (3000 readings); target below 4 %"
            ),
            triggered_at=NOW,
            values={"percent": 10.0, "readings": 3000},
            placement=Placement(extremity=10.0 - 4),  # 6 points above the < 4 % target
        )
    ]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(ENOUGH - 1, False), (ENOUGH, True)],
    ids=["69.99 % of possible readings", "70 % of possible readings"],
)
def test_a_summary_needs_70_percent_of_the_possible_readings(count, expected):
    result = evaluate("cgm_tbr_lt70", sensor(every_tenth_low(count)))

    assert bool(result.findings) is expected
    assert result.cleared_at is None


def test_enough_readings_over_fewer_than_14_days_give_no_verdict():
    readings = sensor(every_tenth_low(4032), span=days(SUFFICIENCY["min_days"] - 2))

    result = evaluate("cgm_tbr_lt70", readings)

    assert (result.findings, result.cleared_at) == ([], None)


# The default's sensor: a reading every 5 minutes (data_sufficiency.example).
INTERVAL = timedelta(minutes=default_rule("cgm_tbr_lt70").parameters["sensor_interval_minutes"])


def dense(first, last):
    """A reading every sensor interval from `first` to `last` (both included), in range."""
    count = (last - first) // INTERVAL + 1
    return [reading("glucose", first + INTERVAL * i, IN_RANGE) for i in range(count)]


def test_a_full_sensor_over_13_days_gives_no_verdict():
    # The regression: 13 days of readings, 92.9 % of the possible ones, were sufficient.
    readings = dense(NOW - FOURTEEN_DAYS + days(1), NOW)

    result = evaluate("cgm_tbr_lt70", readings)

    assert (len(readings), result.findings, result.cleared_at) == (3745, [], None)


@pytest.mark.parametrize(
    ("first_after_start", "cleared_at"),
    [(INTERVAL, NOW), (INTERVAL + timedelta(seconds=1), None)],
    ids=["readings spanning exactly 14 days", "14 days less a second"],
)
def test_the_data_must_span_14_full_days(first_after_start, cleared_at):
    # A reading an interval (5 minutes) into the 14 days, then one every interval to an
    # interval before now: with an interval at each end, exactly 14 days of wear.
    readings = [
        reading("glucose", NOW - FOURTEEN_DAYS + first_after_start, IN_RANGE),
        *dense(NOW - FOURTEEN_DAYS + 2 * INTERVAL, NOW - INTERVAL),
    ]

    result = evaluate("cgm_tbr_lt70", readings)

    assert (result.findings, result.cleared_at) == ([], cleared_at)


def test_readings_outside_the_window_are_not_observed():
    # Two weeks in range inside the window; an hour of lows before it changes nothing.
    before = [
        reading("glucose", NOW - FOURTEEN_DAYS - days(1) + INTERVAL * i, LOW) for i in range(12)
    ]
    inside = dense(NOW - FOURTEEN_DAYS + INTERVAL, NOW)

    observation = cgm_summary.observe(
        default_rule("cgm_tbr_lt70").parameters, before + inside, now=NOW
    )

    assert (observation.sufficiency.readings, observation.observed, observation.met) == (
        4032,
        0.0,
        True,
    )


def test_below_sufficiency_nothing_is_observed():
    readings = sensor(every_tenth_low(ENOUGH - 1))

    observation = cgm_summary.observe(default_rule("cgm_tbr_lt70").parameters, readings, now=NOW)

    assert (observation.sufficiency.readings, observation.observed, observation.met) == (
        ENOUGH - 1,
        None,
        None,
    )


def test_time_below_range_within_target_clears_the_condition():
    readings = sensor([IN_RANGE] * 3000)

    result = evaluate("cgm_tbr_lt70", readings)

    assert (result.findings, result.cleared_at) == ([], NOW)


def test_time_in_range_counts_both_bounds_as_in_range_and_exactly_70_percent_misses_the_target():
    # battelino_2019: TIR 70-180 mg/dL inclusive, target > 70 %.
    in_range = [RANGES["in_range"]["lower"]["value"], RANGES["in_range"]["upper"]["value"]]
    above = RANGES["high"]["upper"]["value"]
    values = in_range * 1050 + [above] * 900  # 2100 of 3000 in range: exactly 70 %

    result = evaluate("cgm_tir_70_180", sensor(values))

    assert [(f.severity, f.values) for f in result.findings] == [
        ("info", {"percent": 70.0, "readings": 3000})
    ]


@pytest.mark.parametrize(
    ("low", "high", "expected_percent"),
    [(60, 180, 50.0), (100, 140, None)],
    ids=["CV 50 %", "CV 16.7 %"],
)
def test_glucose_variability_above_36_percent_is_a_finding(low, high, expected_percent):
    result = evaluate("cgm_cv", sensor([low, high] * 1500))

    assert [f.values["percent"] for f in result.findings] == (
        [expected_percent] if expected_percent else []
    )


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (
            {"measure": "percent_in_band", "target": {"op": "lt", "value": 4}, "window_days": 14,
             "min_days": 14, "min_percent_active": 70, "sensor_interval_minutes": 5},
            {"band": ["Must be an object with 'lower' and/or 'upper' bounds."]},
        ),
        (
            {"measure": "percent_in_band", "band": {"upper": {"value": 70}},
             "target": {"op": "lt", "value": 4}, "window_days": 14, "min_days": 14,
             "min_percent_active": 70, "sensor_interval_minutes": 5},
            {"band.upper": ["Must be {value: number, inclusive: true|false}."]},
        ),
        (
            {"measure": "cv", "target": {"op": "below", "value": 36}, "window_days": 14,
             "min_days": 14, "min_percent_active": 70, "sensor_interval_minutes": 0},
            {"target": ["Must be {op: lt|le|gt|ge, value: number}."],
             "sensor_interval_minutes": ["Must be at least 0.01."]},
        ),
    ],
)  # fmt: skip
def test_invalid_cgm_summary_parameters_are_rejected_with_a_reason_per_parameter(
    parameters, errors
):
    with pytest.raises(InvalidParameters) as raised:
        cgm_summary.validate(parameters, metric="glucose")

    assert raised.value.errors == errors


def test_fingersticks_are_no_cgm_readings_for_wear_or_the_ranges():
    # given: just enough sensor readings in range, and as many low fingersticks (`sensor`
    # false, as the sweep marks them: monitoring.summaries.sensor_glucose)
    sensor_readings = sensor([IN_RANGE] * ENOUGH)
    fingersticks = [
        SimpleNamespace(measured_at=r.measured_at, metric="glucose", value=LOW, sensor=False)
        for r in sensor_readings
    ]

    # when
    observation = cgm_summary.observe(
        default_rule("cgm_tbr_lt70").parameters, sensor_readings + fingersticks, now=NOW
    )

    # then: the sensor's readings alone, none of them low
    assert (observation.sufficiency.readings, observation.observed, observation.met) == (
        ENOUGH,
        0.0,
        True,
    )
    without_enough_sensor = cgm_summary.observe(
        default_rule("cgm_tbr_lt70").parameters, sensor_readings[1:] + fingersticks, now=NOW
    )
    assert (without_enough_sensor.sufficiency.sufficient, without_enough_sensor.observed) == (
        False,
        None,
    )
