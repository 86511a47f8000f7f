from datetime import timedelta

import pytest

from monitoring.rules import sustained
from monitoring.rules.base import InvalidParameters
from tests.monitoring.rules.conftest import NOW, FakeRule, context, hours, reading

# A clinician's own rule (no protocol default is of this kind): three glucose readings in a
# row above 250 mg/dL, or above it for two hours.
ABOVE = {"conditions": [{"op": "gt", "value": 250}]}
HIGH, NORMAL = 300, 120


def three_in_a_row() -> FakeRule:
    return FakeRule(
        kind="sustained", metric="glucose", severity="warning", parameters=ABOVE | {"count": 3}
    )


def for_two_hours() -> FakeRule:
    return FakeRule(
        kind="sustained",
        metric="glucose",
        severity="warning",
        parameters=ABOVE | {"duration_minutes": 120},
    )


HOURLY = hours(1)


def series(*values, start=None, step=HOURLY):
    """Hourly readings, the first ten hours ago unless told."""
    start = start or NOW - hours(10)
    return [reading("glucose", start + step * i, value) for i, value in enumerate(values)]


def test_the_third_matching_reading_in_a_row_is_a_finding_naming_the_run():
    rule = three_in_a_row()
    first, second, third = series(HIGH, HIGH, HIGH)

    result = sustained.evaluate(rule, context([third], history=[first, second]))

    assert [(f.reading_ids, f.values, f.triggered_at) for f in result.findings] == [
        ((first.id, second.id, third.id), {"run_length": 3}, third.measured_at)
    ]


def test_two_matching_readings_in_a_row_are_not_enough():
    first, second = series(HIGH, HIGH)

    result = sustained.evaluate(three_in_a_row(), context([second], history=[first]))

    assert (result.findings, result.cleared_at) == ([], None)


def test_a_reading_outside_the_condition_breaks_the_run():
    readings = series(HIGH, HIGH, NORMAL, HIGH, HIGH)

    result = sustained.evaluate(three_in_a_row(), context(readings[-1:], history=readings[:-1]))

    assert result.findings == []


def test_each_new_reading_that_extends_the_run_is_one_finding_of_the_last_count_readings():
    readings = series(HIGH, HIGH, HIGH, HIGH)

    result = sustained.evaluate(three_in_a_row(), context(readings[2:], history=readings[:2]))

    assert [(f.reading_ids, f.values) for f in result.findings] == [
        (tuple(r.id for r in readings[0:3]), {"run_length": 3}),
        (tuple(r.id for r in readings[1:4]), {"run_length": 4}),
    ]


def test_a_run_found_in_history_alone_is_not_reported_again():
    readings = series(HIGH, HIGH, HIGH, NORMAL)

    result = sustained.evaluate(three_in_a_row(), context(readings[-1:], history=readings[:-1]))

    assert (result.findings, result.cleared_at) == ([], readings[-1].measured_at)


@pytest.mark.parametrize(
    ("span", "expected"),
    [(timedelta(minutes=119), False), (timedelta(minutes=120), True)],
    ids=["a minute short", "exactly the duration"],
)
def test_a_duration_rule_fires_once_the_run_spans_the_duration(span, expected):
    first = reading("glucose", NOW - hours(3), HIGH)
    middle = reading("glucose", first.measured_at + span / 2, HIGH)
    last = reading("glucose", first.measured_at + span, HIGH)

    result = sustained.evaluate(for_two_hours(), context([last], history=[first, middle]))

    assert bool(result.findings) is expected


def test_a_duration_run_names_every_reading_in_it():
    readings = series(HIGH, HIGH, HIGH, start=NOW - hours(3))

    result = sustained.evaluate(for_two_hours(), context(readings[-1:], history=readings[:-1]))

    assert [(f.reading_ids, f.values) for f in result.findings] == [
        (tuple(r.id for r in readings), {"run_length": 3})
    ]


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (ABOVE, {"count": ["Give either 'count' or 'duration_minutes', not both."]}),
        (
            ABOVE | {"count": 3, "duration_minutes": 60},
            {"count": ["Give either 'count' or 'duration_minutes', not both."]},
        ),
        (ABOVE | {"count": 1}, {"count": ["Must be at least 2."]}),
        (ABOVE | {"count": 2.5}, {"count": ["Must be a whole number."]}),
        (ABOVE | {"duration_minutes": 0}, {"duration_minutes": ["Must be at least 1."]}),
        (
            {"conditions": [{"op": "gt"}], "count": 3},
            {"conditions[0].value": ["Must be a number."]},
        ),
    ],
)
def test_invalid_sustained_parameters_are_rejected_with_a_reason_per_parameter(parameters, errors):
    with pytest.raises(InvalidParameters) as raised:
        sustained.validate(parameters, metric="glucose")

    assert raised.value.errors == errors
