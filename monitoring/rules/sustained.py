"""Sustained: the condition holds for N readings in a row, or for a duration, so one noisy
value does not page anyone.

Parameters: conditions/match as for threshold, and either "count" (consecutive readings)
or "duration_minutes" (the run of matching readings spans at least this long).
"""

from datetime import timedelta

from monitoring.rules.bands import condition_bands
from monitoring.rules.base import (
    CONDITIONS_PROPERTIES,
    ON_READING,
    Checker,
    Conditions,
    Context,
    Evaluation,
    Finding,
    Kind,
    RuleLike,
    components_for,
    number_schema,
    object_schema,
)
from monitoring.rules.threshold import observed
from monitoring.rules.words import alert_title, conditions_words, plural, subject_of

# How far back a run of readings is followed. Not clinical: a bound on the query.
MAX_LOOKBACK = timedelta(days=30)


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.conditions(components=components_for(metric))
    has_count = check.parameters.get("count") is not None
    has_duration = check.parameters.get("duration_minutes") is not None
    if has_count == has_duration:
        check.add("count", "Give either 'count' or 'duration_minutes', not both.")
    elif has_count:
        check.integer("count", minimum=2)
    else:
        check.number("duration_minutes", minimum=1)
    check.unknown(["conditions", "match", "count", "duration_minutes"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    if parameters.get("duration_minutes"):
        return timedelta(minutes=parameters["duration_minutes"]) + timedelta(hours=1)
    return MAX_LOOKBACK


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    conditions = Conditions.from_parameters(rule.parameters)
    count = rule.parameters.get("count")
    duration = rule.parameters.get("duration_minutes")
    new_ids = {reading.id for reading in context.new}
    result = Evaluation()
    run = []
    for reading in context.history:
        if not conditions.matches(reading):
            run = []
            continue
        run.append(reading)
        sustained = (
            len(run) >= count
            if count
            else run[-1].measured_at - run[0].measured_at >= timedelta(minutes=duration)
        )
        if sustained and reading.id in new_ids:
            span = (
                f"{len(run)} readings in a row"
                if count
                else f"{len(run)} readings over {duration} min"
            )
            result.findings.append(
                Finding(
                    rule_id=rule.id,
                    severity=rule.severity,
                    title=alert_title(
                        describe(rule.parameters, unit=context.unit, metric=rule.metric)
                    ),
                    detail=(
                        f"{span}; the latest "
                        + observed(
                            reading,
                            context.unit,
                            (*conditions.items, *context.limits),
                            in_words=True,
                        )
                    ),
                    triggered_at=reading.measured_at,
                    reading_ids=tuple(r.id for r in run[-(count or len(run)) :]),
                    values={"run_length": len(run)},
                    placement=conditions.placement(reading, group=rule.group),
                )
            )
    latest = context.history[-1] if context.history else None
    if latest is not None and latest.id in new_ids and not conditions.matches(latest):
        result.cleared_at = latest.measured_at
    return result


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "glucose is below 70 mg/dL for 3 readings in a row", "… for at least 30 minutes"."""
    clause = conditions_words(parameters, unit=unit, subject=subject_of(metric))
    if parameters.get("count") is not None:
        return f"{clause} for {plural(parameters['count'], 'reading')} in a row"
    if parameters.get("duration_minutes") is not None:
        return f"{clause} for at least {plural(parameters['duration_minutes'], 'minute')}"
    return clause


KIND = Kind(
    name="sustained",
    label="Sustained",
    parameters_schema=object_schema(
        "Sustained",
        {
            **CONDITIONS_PROPERTIES,
            "count": number_schema(2, whole=True) | {"type": ["integer", "null"]},
            "duration_minutes": number_schema(1) | {"type": ["number", "null"]},
        },
        required=["conditions"],
        # Either a count of readings in a row or a duration, not both.
        oneOf=[
            {
                "required": ["count"],
                "properties": {"count": {"type": "integer"}, "duration_minutes": {"type": "null"}},
            },
            {
                "required": ["duration_minutes"],
                "properties": {"duration_minutes": {"type": "number"}, "count": {"type": "null"}},
            },
        ],
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_READING}),
    about_single_readings=True,
    bands=condition_bands,
    bands_mark_readings=True,
    describe=describe,
    parameter_labels={"count": ("For", "readings in a row")},
)
