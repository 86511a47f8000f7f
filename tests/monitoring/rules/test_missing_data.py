import pytest

from monitoring.rules import missing_data
from monitoring.rules.base import ON_READING, ON_SCHEDULE, Finding, InvalidParameters
from tests.monitoring.rules.conftest import NOW, context, default_rule, hours, reading, template

# protocols.yaml heart_failure weight_missing (an engineering choice): no weight for 36 hours.
LIMIT = hours(template("weight_missing").parameters["silent_hours"])


def test_no_reading_for_longer_than_the_limit_is_a_finding():
    rule = default_rule("weight_missing", created_at=NOW - LIMIT - hours(1))

    result = missing_data.evaluate(rule, context([], now=NOW))

    assert result.findings == [
        Finding(
            rule_id=rule.id,
            severity="warning",
            title="No weight reading arrives for 36 hours",
            detail="No weight reading in the last 36 hours.",
            triggered_at=NOW,
        )
    ]


@pytest.mark.parametrize(
    ("watched_for", "expected"),
    [(LIMIT - hours(1), False), (LIMIT, True)],
    ids=["an hour short of the limit", "exactly the limit"],
)
def test_a_rule_newer_than_its_limit_waits_for_the_limit_to_pass(watched_for, expected):
    rule = default_rule("weight_missing", created_at=NOW - watched_for)

    result = missing_data.evaluate(rule, context([], now=NOW))

    assert bool(result.findings) is expected


def test_a_reading_within_the_limit_clears_the_condition():
    rule = default_rule("weight_missing", created_at=NOW - LIMIT * 3)
    earlier = reading("weight", NOW - hours(20), 80.0)
    latest = reading("weight", NOW - hours(2), 80.2)

    result = missing_data.evaluate(rule, context([], history=[earlier, latest], now=NOW))

    assert (result.findings, result.cleared_at) == ([], latest.measured_at)


def test_the_next_check_is_the_limit_after_the_latest_reading():
    parameters = template("weight_missing").parameters
    latest = NOW - hours(2)

    assert missing_data.next_check(parameters, latest, NOW) == latest + LIMIT
    assert missing_data.next_check(parameters, NOW - LIMIT * 2, NOW) == NOW
    assert missing_data.next_check(parameters, None, NOW) == NOW + LIMIT


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, "moved"),  # no deadline yet
        (NOW - hours(1), "moved"),  # behind the reading
        (NOW + LIMIT / 2 - hours(1), "moved"),  # less than half the limit ahead
        (NOW + LIMIT / 2, "kept"),  # exactly half the limit ahead
        (NOW + LIMIT, "kept"),  # where the reading would move it anyway
        (NOW + LIMIT + hours(5), "kept"),  # set from a newer reading than this late one
    ],
)
def test_a_reading_moves_the_next_check_only_when_it_is_less_than_half_the_limit_ahead(
    current, expected
):
    parameters = template("weight_missing").parameters

    moved = missing_data.moved_check(parameters, current, NOW, NOW)

    assert moved == (NOW + LIMIT if expected == "moved" else None)


def test_missing_data_is_checked_by_the_clock_and_cleared_by_a_reading():
    assert missing_data.KIND.triggers == {ON_SCHEDULE, ON_READING}


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        ({}, {"silent_hours": ["This parameter is required."]}),
        ({"silent_hours": 0.1}, {"silent_hours": ["Must be at least 0.25."]}),
        ({"silent_hours": "36"}, {"silent_hours": ["Must be a number."]}),
        (
            {"silent_hours": 36, "grace": 1},
            {"grace": ["Not a parameter of this rule kind."]},
        ),
    ],
)
def test_invalid_missing_data_parameters_are_rejected_with_a_reason_per_parameter(
    parameters, errors
):
    with pytest.raises(InvalidParameters) as raised:
        missing_data.validate(parameters, metric="weight")

    assert raised.value.errors == errors
