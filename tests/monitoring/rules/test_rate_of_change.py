from datetime import datetime

import pytest

from monitoring.rules import rate_of_change
from monitoring.rules.base import InvalidParameters
from tests.monitoring.rules.conftest import (
    NEW_YORK,
    context,
    default_rule,
    reading,
    reference,
    to_canonical,
)

# body_weight.thresholds: a heart-failure gain is > 0.9 kg in 1 day or > 2.3 kg in 7 days;
# a loss of >= 0.9 kg over 2 days may be over-diuresis.
DAY_GAIN = reference("body_weight.thresholds.hf_gain_1_day")["default"]["delta_kg_gt"]
WEEK_GAIN = reference("body_weight.thresholds.hf_gain_1_week")["default"]["delta_kg_gt"]
BASE = 80.0


def local(day: int, hour: int = 7, minute: int = 0) -> datetime:
    """A time on the patient's (New York) clock, in February 2026."""
    return datetime(2026, 2, day, hour, minute, tzinfo=NEW_YORK)


def weight(at: datetime, kg: float):
    return reading("weight", at, kg)


def evaluate(key, new, history=()):
    return rate_of_change.evaluate(default_rule(key), context(new, history=history, unit="kg"))


def test_176_to_179_8_lb_from_one_morning_to_the_next_is_a_heart_failure_gain():
    # The example: 3.8 lb (1.72 kg) in a day, above the 0.9 kg of hf_gain_1_day.
    yesterday = weight(local(10), to_canonical("weight", 176, "lb"))
    today = weight(local(11), to_canonical("weight", 179.8, "lb"))

    result = evaluate("hf_gain_1_day", [today], [yesterday])

    assert [(f.severity, f.reading_ids, f.values) for f in result.findings] == [
        (
            "warning",
            (yesterday.id, today.id),
            {"change": 1.724, "from": yesterday.value, "to": today.value},
        )
    ]
    assert result.findings[0].detail == ("Gain of 1.72 kg from 10 Feb 2026 to 11 Feb 2026")


@pytest.mark.parametrize(
    ("gain", "expected"),
    [(DAY_GAIN, False), (round(DAY_GAIN + 0.1, 1), True)],
    ids=["exactly the limit", "just above it"],
)
def test_a_gain_of_exactly_the_daily_limit_is_not_above_it(gain, expected):
    yesterday = weight(local(10), BASE)
    today = weight(local(11), round(BASE + gain, 1))

    assert bool(evaluate("hf_gain_1_day", [today], [yesterday]).findings) is expected


@pytest.mark.parametrize(
    ("start", "end"),
    [(80.3, 79.4), (81.0, 80.1), (80.9, 80.0)],
)
def test_a_loss_of_exactly_the_over_diuresis_limit_counts(start, end):
    # hf_loss_possible_overdiuresis: loss >= 0.9 kg over 2 days. 80.3 - 79.4 is
    # 0.8999999999999915 in binary floating point; it is a loss of 0.9 kg all the same.
    two_days_ago = weight(local(9), start)
    today = weight(local(11), end)

    result = evaluate("hf_loss_possible_overdiuresis", [today], [two_days_ago])

    assert [(f.severity, f.values["change"]) for f in result.findings] == [("info", 0.9)]


def test_only_the_first_weight_of_each_local_day_is_compared():
    # Yesterday's evening weight is after a meal; the morning weights are 0.5 kg apart.
    yesterday_morning = weight(local(10, 7), BASE)
    yesterday_evening = weight(local(10, 21), BASE - 1.5)
    today_morning = weight(local(11, 7), BASE + 0.5)

    result = evaluate("hf_gain_1_day", [today_morning], [yesterday_morning, yesterday_evening])

    assert result.findings == []


def test_local_days_are_the_patients_not_utc():
    # 23:30 in New York is 04:30 UTC the next day: still the patient's 10 February.
    late_on_the_10th = weight(local(10, 23, 30), BASE)
    morning_of_the_11th = weight(local(11, 7), BASE + 2)

    result = evaluate("hf_gain_1_day", [morning_of_the_11th], [late_on_the_10th])

    assert [f.reading_ids for f in result.findings] == [
        (late_on_the_10th.id, morning_of_the_11th.id)
    ]


def test_a_second_weighing_on_the_same_day_does_not_report_the_days_gain_again():
    yesterday = weight(local(10), BASE)
    this_morning = weight(local(11, 7), BASE + 2)
    this_evening = weight(local(11, 20), BASE + 2.2)
    first = evaluate("hf_gain_1_day", [this_morning], [yesterday])

    second = evaluate("hf_gain_1_day", [this_evening], [yesterday, this_morning])

    assert len(first.findings) == 1
    assert (second.findings, second.cleared_at) == ([], None)


def test_a_weight_that_syncs_after_the_next_days_is_compared_with_it():
    # given: the 11th's weight was evaluated with nothing to compare it to
    this_morning = weight(local(11, 7), BASE + 1.5)
    assert evaluate("hf_gain_1_day", [this_morning]).findings == []

    # when: last night's weight arrives
    last_night = weight(local(10, 21), BASE)
    result = evaluate("hf_gain_1_day", [last_night], [this_morning])

    # then: the 11th's gain over the 10th, found now
    assert [(f.reading_ids, f.triggered_at, f.values["change"]) for f in result.findings] == [
        ((last_night.id, this_morning.id), this_morning.measured_at, 1.5)
    ]


def test_a_late_weight_is_the_base_of_the_day_after_next_when_the_next_day_has_none():
    late = weight(local(9), BASE)
    two_days_later = weight(local(11), BASE + 1)

    result = evaluate("hf_gain_1_day", [late], [two_days_later])

    assert [f.reading_ids for f in result.findings] == [(late.id, two_days_later.id)]


def test_a_late_weight_is_no_base_when_the_day_after_it_has_one():
    late = weight(local(9), BASE)
    next_day = weight(local(10), BASE + 0.2)
    day_after = weight(local(11), BASE + 1)

    result = evaluate("hf_gain_1_day", [late], [next_day, day_after])

    # the 11th compares with the 10th (0.8 kg), not the 9th (1 kg); the 10th with the 9th
    assert (result.findings, result.cleared_at) == ([], None)


def test_a_late_weight_without_a_gain_to_the_latest_day_clears_the_condition():
    day_before = weight(local(9), BASE)
    latest = weight(local(11), BASE + 1.2)  # 1.2 kg over the 9th: the alert
    late = weight(local(10), BASE + 0.8)

    result = evaluate("hf_gain_1_day", [late], [day_before, latest])

    # the 11th now compares with the 10th: 0.4 kg
    assert (result.findings, result.cleared_at) == ([], latest.measured_at)


def test_a_missing_day_before_falls_back_to_the_day_before_it():
    # body_weight.computed_metrics.delta_weight: if day d-N is missing use the nearest earlier
    # day within N+1 days.
    two_days_ago = weight(local(9), BASE)
    today = weight(local(11), BASE + 1)

    result = evaluate("hf_gain_1_day", [today], [two_days_ago])

    assert [f.reading_ids for f in result.findings] == [(two_days_ago.id, today.id)]


def test_no_weight_within_n_plus_one_days_means_no_comparison():
    three_days_ago = weight(local(8), BASE)
    today = weight(local(11), BASE + 3)

    result = evaluate("hf_gain_1_day", [today], [three_days_ago])

    assert (result.findings, result.cleared_at) == ([], None)


def test_a_slow_gain_is_caught_by_the_weekly_rule_but_not_the_daily_one():
    # 0.4 kg a day for 7 days: never > 0.9 kg in a day, 2.8 kg > 2.3 kg in the week.
    step = 0.4
    assert step <= DAY_GAIN and 7 * step > WEEK_GAIN
    readings = [weight(local(3 + i), round(BASE + step * i, 1)) for i in range(8)]
    new, history = readings[-1:], readings[:-1]

    daily = evaluate("hf_gain_1_day", new, history)
    weekly = evaluate("hf_gain_1_week", new, history)

    assert daily.findings == []
    assert [(f.reading_ids, f.values["change"]) for f in weekly.findings] == [
        ((readings[0].id, readings[-1].id), 2.8)
    ]


def test_a_new_day_without_a_gain_clears_the_condition():
    yesterday = weight(local(10), BASE)
    today = weight(local(11), BASE + 0.2)

    result = evaluate("hf_gain_1_day", [today], [yesterday])

    assert (result.findings, result.cleared_at) == ([], today.measured_at)


def test_the_loss_rule_ignores_gains_and_the_gain_rule_ignores_losses():
    two_days_ago = weight(local(9), BASE)
    today_lighter = weight(local(11), BASE - 2)

    gain = evaluate("hf_gain_1_day", [today_lighter], [two_days_ago])
    loss = evaluate("hf_loss_possible_overdiuresis", [today_lighter], [two_days_ago])

    assert gain.findings == []
    assert [f.values["change"] for f in loss.findings] == [2.0]


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (
            {"window_days": 0, "delta": 1, "direction": "gain"},
            {"window_days": ["Must be at least 1."]},
        ),
        (
            {"window_days": 1, "delta": -1, "direction": "gain"},
            {"delta": ["Must be at least 0."]},
        ),
        (
            {"window_days": 1, "delta": 1, "direction": "up"},
            {"direction": ["Must be one of: gain, loss."]},
        ),
        (
            {"window_days": 1, "delta": 1, "direction": "gain", "op": "lt"},
            {"op": ["Must be one of: gt, ge."]},
        ),
        (
            {"delta": 1, "direction": "gain", "hours": 24},
            {"window_days": ["This parameter is required."], "hours": [
                "Not a parameter of this rule kind."]},
        ),
    ],
)  # fmt: skip
def test_invalid_rate_of_change_parameters_are_rejected_with_a_reason_per_parameter(
    parameters, errors
):
    with pytest.raises(InvalidParameters) as raised:
        rate_of_change.validate(parameters, metric="weight")

    assert raised.value.errors == errors
