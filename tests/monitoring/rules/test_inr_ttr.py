from datetime import date, datetime, time, timedelta

import pytest

from monitoring.rules import inr_ttr
from monitoring.rules.base import Finding, InvalidParameters, Placement
from tests.monitoring.rules.conftest import NEW_YORK, NOW, context, default_rule, reading, reference

TARGET = reference("inr.target_ranges.0")  # 2.0–3.0, most indications
IN_RANGE = (TARGET["low"] + TARGET["high"]) / 2
BELOW = TARGET["low"] - 1
WINDOW_DAYS = default_rule("inr_ttr_rosendaal").parameters["window_days"]  # NICE: 6 months
MAX_GAP = default_rule("inr_ttr_rosendaal").parameters["max_gap_days"]
# The window's first day on the patient's (New York) clock.
FIRST_DAY = (NOW - timedelta(days=WINDOW_DAYS)).astimezone(NEW_YORK).date()


def on_day(day: int, value: float, hour: int = 9):
    """An INR on the patient's (New York) clock, day 0 being 1 January 2026."""
    return reading("inr", datetime(2026, 1, 1 + day, hour, tzinfo=NEW_YORK), value)


def evaluate(readings):
    return inr_ttr.evaluate(default_rule("inr_ttr_rosendaal"), context([], history=readings))


def thirteen_of_twenty_days_in_range(last_in_range_day=12):
    # Days 0..12 interpolate between two in-range values; day 12 -> 13 starts in range
    # (day 12 itself), then days 13..19 are below: 13 of 20 days in range = 65 %.
    return [
        on_day(0, IN_RANGE),
        on_day(last_in_range_day, IN_RANGE),
        on_day(last_in_range_day + 1, BELOW),
        on_day(20, BELOW),
    ]


def test_a_time_in_range_below_the_nice_limit_is_a_warning():
    # 12 of 20 days in range: 60 % < 65 % (inr.computed_metrics.ttr_rosendaal, NICE).
    result = evaluate(thirteen_of_twenty_days_in_range(last_in_range_day=11))

    rule_id = result.findings[0].rule_id
    assert result.findings == [
        Finding(
            rule_id=rule_id,
            severity="warning",
            title="INR time in the 2–3 range is below 65 % over the last 183 days",
            detail=("INR time in range 60 % over 20 days (target 2–3; below 65 % is poor control)"),
            triggered_at=NOW,
            values={"ttr_percent": 60.0, "days": 20},
            placement=Placement(extremity=65 - 60.0),  # 5 points below the 65 % limit
        )
    ]


def test_a_time_in_range_of_exactly_the_nice_limit_is_not_poor_control():
    result = evaluate(thirteen_of_twenty_days_in_range())

    assert (result.findings, result.cleared_at) == ([], NOW)


def test_a_single_inr_gives_no_verdict():
    result = evaluate([on_day(0, BELOW)])

    assert (result.findings, result.cleared_at) == ([], None)


def test_the_last_inr_of_a_local_day_is_that_days_value():
    # Re-tested the same evening (02:00 UTC the next day): the evening value stands for the
    # whole local day, so both days to the next INR are in range. Taking the morning value,
    # or UTC days, would put a day or two below range (TTR 0 % or 50 %).
    readings = [
        on_day(0, BELOW, hour=8),
        on_day(0, IN_RANGE, hour=21),
        on_day(2, IN_RANGE),
    ]

    result = evaluate(readings)

    assert (result.findings, result.cleared_at) == ([], NOW)


def on(day: date, value: float, hour: int = 9):
    return reading("inr", datetime.combine(day, time(hour), tzinfo=NEW_YORK), value)


def from_first_day(n: int) -> date:
    return FIRST_DAY + timedelta(days=n)


def test_the_last_inr_before_the_window_starts_the_interpolation_at_the_windows_start():
    # 1.0 two days before the window and 1.0 on day 8: days 0..7 below (8 of the interval's
    # 10, the two before the window not counted); 1.0 -> 2.5 from day 8 to 18 rises 0.15 a
    # day: 7 below, 3 in range; 2.5 -> 2.5 to day 28: 10 in range. 13 of 28 days: 46 %.
    # Starting at day 8 instead (the regression) gave 13 of 20 days: 65 %, no finding.
    readings = [
        on(from_first_day(-2), BELOW),
        on(from_first_day(8), BELOW),
        on(from_first_day(18), IN_RANGE),
        on(from_first_day(28), IN_RANGE),
    ]

    result = evaluate(readings)

    assert [(f.detail, f.values) for f in result.findings] == [
        (
            "INR time in range 46 % over 28 days (target 2–3; below 65 % is poor control)",
            {"ttr_percent": 46.4, "days": 28},
        )
    ]


def test_only_the_latest_inr_before_the_window_is_used():
    readings = [
        on(from_first_day(-30), IN_RANGE),
        on(from_first_day(-2), BELOW),
        on(from_first_day(8), BELOW),
        on(from_first_day(18), IN_RANGE),
        on(from_first_day(28), IN_RANGE),
    ]

    ttr = time_in_range(readings)

    assert (ttr.days_in_range, ttr.days_below, ttr.days_total, ttr.results) == (13, 15, 28, 4)


def test_an_inr_before_the_window_longer_than_the_gap_limit_before_the_next_is_not_used():
    # inr.computed_metrics.ttr_rosendaal: gaps > max_gap_days are not interpolated.
    readings = [
        on(from_first_day(-2), BELOW),
        on(from_first_day(MAX_GAP - 1), IN_RANGE),
        on(from_first_day(MAX_GAP + 9), IN_RANGE),
    ]

    ttr = time_in_range(readings)

    assert (ttr.days_in_range, ttr.days_below, ttr.days_total) == (10, 0, 10)


def test_an_inr_before_the_window_and_none_inside_gives_no_verdict():
    result = evaluate([on(from_first_day(-2), BELOW)])

    assert (result.findings, result.cleared_at) == ([], None)


def time_in_range(readings):
    parameters = default_rule("inr_ttr_rosendaal").parameters
    return inr_ttr.time_in_range(
        readings,
        low=parameters["target_low"],
        high=parameters["target_high"],
        max_gap_days=parameters["max_gap_days"],
        window_days=parameters["window_days"],
        now=NOW,
        zone=NEW_YORK,
    )


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (
            {"target_low": 3.0, "target_high": 2.0, "max_gap_days": 56, "window_days": 183,
             "below_percent": 65},
            {"target_high": ["Must be above target_low."]},
        ),
        (
            {"target_low": 2.0, "target_high": 3.0, "max_gap_days": 0, "window_days": 183},
            {"max_gap_days": ["Must be at least 1."],
             "below_percent": ["This parameter is required."]},
        ),
    ],
)  # fmt: skip
def test_invalid_ttr_parameters_are_rejected_with_a_reason_per_parameter(parameters, errors):
    with pytest.raises(InvalidParameters) as raised:
        inr_ttr.validate(parameters, metric="inr")

    assert raised.value.errors == errors
