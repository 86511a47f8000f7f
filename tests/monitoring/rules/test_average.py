import pytest

from monitoring.rules import average
from monitoring.rules.base import InvalidParameters
from tests.monitoring.rules.conftest import NOW, bp, context, days, default_rule, hours, reference

# blood_pressure.thresholds.bp_home_avg_above_goal: 7-day home average >= 135/85 mm[Hg]
ABOVE_GOAL = reference("blood_pressure.thresholds.bp_home_avg_above_goal")
SYSTOLIC, DIASTOLIC = ABOVE_GOAL["systolic_ge"], ABOVE_GOAL["diastolic_ge"]
CALM_DIASTOLIC = DIASTOLIC - 10


def evaluate(readings, key="bp_home_avg_above_goal", new=1):
    rule = default_rule(key)
    return average.evaluate(rule, context(readings[-new:], history=readings[:-new], unit="mm[Hg]"))


def twice_daily(systolics, diastolic=CALM_DIASTOLIC, every=None):
    """Readings `every` apart (12 hours unless told), the last one an hour before now."""
    every = every or hours(12)
    start = NOW - hours(1) - every * (len(systolics) - 1)
    return [bp(start + every * i, s, diastolic) for i, s in enumerate(systolics)]


def test_an_average_at_exactly_the_goal_limit_is_a_finding():
    readings = twice_daily([SYSTOLIC - 2, SYSTOLIC + 2, SYSTOLIC - 1, SYSTOLIC + 1])

    result = evaluate(readings)

    systolic = int(SYSTOLIC)
    assert [(f.severity, f.values, f.reading_ids) for f in result.findings] == [
        ("warning", {"average": f"{systolic}/{int(CALM_DIASTOLIC)} mm[Hg]", "readings": 4},
         (readings[-1].id,))
    ]  # fmt: skip
    assert result.findings[0].detail == (
        f"7-day average {systolic}/{int(CALM_DIASTOLIC)} mmHg over 4 readings"
    )


def test_an_average_a_twentieth_below_the_limit_is_not_at_the_limit():
    # Three readings a day for a week, 20 at the limit and one a mm[Hg] below: a mean of
    # 134.95…, under 135 however it is shown.
    readings = twice_daily([SYSTOLIC] * 20 + [SYSTOLIC - 1], every=hours(8))

    result = evaluate(readings)

    assert (result.findings, result.cleared_at) == ([], readings[-1].measured_at)


def test_the_diastolic_average_alone_is_enough():
    readings = twice_daily([SYSTOLIC - 20] * 4, diastolic=DIASTOLIC)

    assert len(evaluate(readings).findings) == 1


def test_fewer_readings_than_the_minimum_give_no_verdict():
    minimum = default_rule("bp_home_avg_above_goal").parameters["min_readings"]
    readings = twice_daily([SYSTOLIC + 20] * (minimum - 1))

    result = evaluate(readings)

    assert (result.findings, result.cleared_at) == ([], None)


def test_readings_older_than_the_window_before_the_latest_do_not_count():
    # Four high readings more than 7 days old, four calm ones this week.
    old = [bp(NOW - days(8) - hours(i), SYSTOLIC + 30, DIASTOLIC + 10) for i in range(4)]
    recent = twice_daily([SYSTOLIC - 15] * 4)

    result = evaluate(old[::-1] + recent)

    assert (result.findings, result.cleared_at) == ([], recent[-1].measured_at)


def test_no_new_reading_means_no_verdict():
    rule = default_rule("bp_home_avg_above_goal")
    readings = twice_daily([SYSTOLIC + 20] * 4)

    result = average.evaluate(rule, context([], history=readings))

    assert (result.findings, result.cleared_at) == ([], None)


def test_the_stage_2_like_average_is_its_own_higher_limit():
    stage_2 = reference("blood_pressure.thresholds.bp_home_avg_stage2_like")
    between = twice_daily([int((SYSTOLIC + stage_2["systolic_ge"]) / 2)] * 4)

    assert len(evaluate(between, "bp_home_avg_above_goal").findings) == 1
    assert evaluate(between, "bp_home_avg_stage2_like").findings == []


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (
            {"conditions": [{"component": "systolic", "op": "ge", "value": 135}], "window_days": 7},
            {"min_readings": ["This parameter is required."]},
        ),
        (
            {"conditions": [{"component": "systolic", "op": "ge", "value": 135}],
             "window_days": 0, "min_readings": 0},
            {"window_days": ["Must be at least 1."], "min_readings": ["Must be at least 1."]},
        ),
    ],
)  # fmt: skip
def test_invalid_average_parameters_are_rejected_with_a_reason_per_parameter(parameters, errors):
    with pytest.raises(InvalidParameters) as raised:
        average.validate(parameters, metric="blood_pressure")

    assert raised.value.errors == errors
