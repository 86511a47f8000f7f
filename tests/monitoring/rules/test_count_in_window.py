import pytest

from monitoring.rules import count_in_window
from monitoring.rules.base import InvalidParameters
from tests.monitoring.rules.conftest import (
    NOW,
    context,
    days,
    default_rule,
    reading,
    stated_limit,
    template,
)

# inr.thresholds.inr_low_nice_marker: "two INR <= 1.5 within 6 months"
LOW_MARKER = stated_limit("inr.thresholds.inr_low_nice_marker")
# inr.thresholds.inr_nice_high_marker, first clause: "two INR >= 5 within 6 months"
HIGH_MARKER = stated_limit("inr.thresholds.inr_nice_high_marker")
SIX_MONTHS = days(template("inr_low_nice_marker").parameters["within_days"])
IN_RANGE = 2.5


def inr(value, at):
    return reading("inr", at, value)


def test_two_inr_at_the_low_marker_within_six_months_are_a_finding_naming_both():
    rule = default_rule("inr_low_nice_marker")
    first = inr(LOW_MARKER, NOW - days(90))
    second = inr(LOW_MARKER, NOW - days(1))

    result = count_in_window.evaluate(rule, context([second], history=[first]))

    assert [(f.severity, f.reading_ids, f.values) for f in result.findings] == [
        ("warning", (first.id, second.id), {"count": 2})
    ]


def test_one_low_inr_and_one_in_range_are_not_a_marker():
    rule = default_rule("inr_low_nice_marker")
    history = [inr(LOW_MARKER, NOW - days(30))]

    result = count_in_window.evaluate(rule, context([inr(IN_RANGE, NOW)], history=history))

    assert result.findings == []


@pytest.mark.parametrize(
    ("apart", "expected"),
    [(SIX_MONTHS - days(1), True), (SIX_MONTHS, False)],
    ids=["a day inside six months", "exactly six months apart"],
)
def test_the_marker_counts_only_readings_within_the_window(apart, expected):
    rule = default_rule("inr_nice_high_marker_repeated")
    first = inr(HIGH_MARKER, NOW - apart)
    second = inr(HIGH_MARKER, NOW)

    result = count_in_window.evaluate(rule, context([second], history=[first]))

    assert bool(result.findings) is expected


def test_the_repeated_high_marker_is_critical_as_the_reference_says():
    rule = default_rule("inr_nice_high_marker_repeated")
    history = [inr(HIGH_MARKER + 1, NOW - days(10))]

    result = count_in_window.evaluate(rule, context([inr(HIGH_MARKER, NOW)], history=history))

    assert [f.severity for f in result.findings] == ["critical"]


def test_a_new_reading_outside_the_condition_is_no_finding_even_with_a_marker_in_history():
    rule = default_rule("inr_low_nice_marker")
    history = [inr(LOW_MARKER, NOW - days(20)), inr(LOW_MARKER, NOW - days(10))]

    result = count_in_window.evaluate(rule, context([inr(IN_RANGE, NOW)], history=history))

    assert result.findings == []


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (
            {"conditions": [{"op": "le", "value": 1.5}], "within_days": 30},
            {"count": ["This parameter is required."]},
        ),
        (
            {"conditions": [{"op": "le", "value": 1.5}], "count": 1, "within_days": 30},
            {"count": ["Must be at least 2."]},
        ),
        (
            {"conditions": [{"op": "le", "value": 1.5}], "count": 2, "within_days": 0},
            {"within_days": ["Must be at least 1."]},
        ),
    ],
)
def test_invalid_count_in_window_parameters_are_rejected_with_a_reason_per_parameter(
    parameters, errors
):
    with pytest.raises(InvalidParameters) as raised:
        count_in_window.validate(parameters, metric="inr")

    assert raised.value.errors == errors
