"""Missing data: no reading of the metric for longer than the patient's limit
(a CGM silent for hours, a heart-failure patient who stopped weighing).

Parameters: "silent_hours". Checked by the clock (the missing-data sweep), cleared by the
next reading.
"""

from datetime import timedelta

from monitoring.rules.base import (
    ON_READING,
    ON_SCHEDULE,
    Checker,
    Context,
    Evaluation,
    Finding,
    Kind,
    RuleLike,
    number_schema,
    object_schema,
)
from monitoring.rules.words import alert_title, plural, subject_of
from monitoring.units import format_number


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.number("silent_hours", minimum=0.25)
    check.unknown(["silent_hours"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(hours=parameters["silent_hours"])


def next_check(parameters: dict, last_reading_at, now):
    """When silence would next become a finding."""
    limit = timedelta(hours=parameters["silent_hours"])
    return max(now, (last_reading_at or now) + limit)


def moved_check(parameters: dict, current, last_reading_at, now):
    """The next check after a reading at `last_reading_at`, or None to keep `current`.

    A deadline is kept while it lies at least half the limit after the reading: it is never
    later than the moment silence would become a finding, so no silence is found late; at
    worst the sweep checks early, finds the reading and moves the deadline itself. A steady
    stream of readings (a CGM every five minutes) then moves it once per half limit instead
    of writing the rule at every reading.
    """
    limit = timedelta(hours=parameters["silent_hours"])
    if current is not None and last_reading_at + limit / 2 <= current:
        return None
    return next_check(parameters, last_reading_at, now)


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    limit = timedelta(hours=rule.parameters["silent_hours"])
    if context.history:
        return Evaluation(cleared_at=context.history[-1].measured_at)
    watched_since = getattr(rule, "created_at", None)
    if watched_since is not None and context.now - watched_since < limit:
        return Evaluation()
    hours = format_number(rule.parameters["silent_hours"])
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=alert_title(describe(rule.parameters, unit=context.unit, metric=rule.metric)),
                detail=f"No {subject_of(rule.metric)} reading in the last {hours} hours.",
                triggered_at=context.now,
            )
        ]
    )


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "no glucose reading arrives for 48 hours"."""
    return (
        f"no {subject_of(metric)} reading arrives for {plural(parameters['silent_hours'], 'hour')}"
    )


KIND = Kind(
    name="missing_data",
    label="Missing data",
    parameters_schema=object_schema(
        "Missing data", {"silent_hours": number_schema(0.25)}, required=["silent_hours"]
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    # Found by the clock (the sweep); cleared by a reading, whose arrival moves the deadline.
    triggers=frozenset({ON_SCHEDULE, ON_READING}),
    history_on_readings=False,
    next_check=next_check,
    moved_check=moved_check,
    describe=describe,
)
