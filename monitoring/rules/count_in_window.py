"""Count in window: N readings meeting the condition within D days, in a row or not
(NICE poor-control marker: two INR ≤ 1.5 within 6 months).

Parameters: conditions/match as for threshold, "count", "within_days".
"""

from datetime import timedelta

from monitoring.display import format_instant
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
from monitoring.rules.words import alert_title, conditions_words, plural, subject_of
from monitoring.units import format_number


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.conditions(components=components_for(metric))
    check.integer("count", minimum=2)
    check.number("within_days", minimum=1)
    check.unknown(["conditions", "match", "count", "within_days"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["within_days"])


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    conditions = Conditions.from_parameters(rule.parameters)
    count = rule.parameters["count"]
    span = timedelta(days=rule.parameters["within_days"])
    matching = [reading for reading in context.history if conditions.matches(reading)]
    result = Evaluation()
    for reading in context.new:
        if not conditions.matches(reading):
            continue
        inside = [
            other
            for other in matching
            if reading.measured_at - span < other.measured_at <= reading.measured_at
        ]
        if len(inside) >= count:
            result.findings.append(
                Finding(
                    rule_id=rule.id,
                    severity=rule.severity,
                    title=alert_title(
                        describe(rule.parameters, unit=context.unit, metric=rule.metric)
                    ),
                    detail=(
                        f"{len(inside)} such readings within "
                        f"{format_number(rule.parameters['within_days'])} days, the latest on "
                        f"{format_instant(reading.measured_at, context.zone)}"
                    ),
                    triggered_at=reading.measured_at,
                    reading_ids=tuple(other.id for other in inside),
                    values={"count": len(inside)},
                    placement=conditions.placement(reading, group=rule.group),
                )
            )
    return result


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "INR is at or above 5 in 2 readings within 183 days"."""
    clause = conditions_words(parameters, unit=unit, subject=subject_of(metric))
    return (
        f"{clause} in {plural(parameters['count'], 'reading')} within "
        f"{plural(parameters['within_days'], 'day')}"
    )


KIND = Kind(
    name="count_in_window",
    label="Count in window",
    parameters_schema=object_schema(
        "Count in window",
        {
            **CONDITIONS_PROPERTIES,
            "count": number_schema(2, whole=True),
            "within_days": number_schema(1),
        },
        required=["conditions", "count", "within_days"],
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_READING}),
    about_single_readings=True,
    bands=condition_bands,
    bands_mark_readings=True,
    describe=describe,
    parameter_labels={"count": ("In", "readings")},
)
