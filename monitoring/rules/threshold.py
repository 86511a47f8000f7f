"""Threshold: a single reading above, below, inside or outside limits.

Parameters: {"conditions": [{"component", "op", "value"}], "match": "any" | "all"}.
Blood pressure names its component (systolic > 180 or diastolic > 120, match any); a band
such as 54 ≤ glucose < 70 is two conditions with match all; outside a range (INR outside
2.0–3.0) is `value < low` or `value > high`, match any.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from monitoring.display import display_unit, format_instant
from monitoring.problems import DIRECTIONS
from monitoring.rules.bands import condition_bands
from monitoring.rules.base import (
    CONDITIONS_PROPERTIES,
    ON_READING,
    OPERATORS,
    Checker,
    Condition,
    Conditions,
    Context,
    Evaluation,
    Finding,
    Kind,
    RuleLike,
    components_for,
    object_schema,
)
from monitoring.rules.words import alert_title, conditions_words, subject_of
from monitoring.units import format_number


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.conditions(components=components_for(metric))
    check.unknown(["conditions", "match"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(0)


# Shown whole: a clinician reads mg/dL, mmHg, beats/min and % without decimals.
WHOLE_UNITS = ("mg/dL", "mm[Hg]", "/min", "%")
# The most decimals a value is ever shown with: a measured value has no more.
MAX_DECIMALS = 3


def shown(
    value: float, unit: str, limits: Sequence[Condition] = (), component: str = "value"
) -> str:
    """As a clinician reads it: mg/dL and mmHg whole, everything else to one decimal, and as
    many more decimals as keep the value on its own side of every limit on it: 53.9 mg/dL
    next to "< 54" is 53.9, not 54; INR 4.99 next to "≥ 5" is 4.99, not 5.0."""
    digits = 0 if unit in WHOLE_UNITS else 1
    facing = [limit for limit in limits if limit.component == component]
    while digits < MAX_DECIMALS and any(
        OPERATORS[limit.op](round(value, digits), limit.value)
        != OPERATORS[limit.op](value, limit.value)
        for limit in facing
    ):
        digits += 1
    return format_number(round(value, digits))


def observed(
    reading, unit: str, limits: Sequence[Condition] = (), *, in_words: bool = False
) -> str:
    """The reading's value with its unit: as stored in the alert's values (the canonical
    code, "185/95 mm[Hg]"), or `in_words` as a clinician writes it ("185/95 mmHg")."""
    suffix = display_unit(unit) if in_words else unit
    if reading.systolic is not None:
        systolic = shown(reading.systolic, unit, limits, "systolic")
        diastolic = shown(reading.diastolic, unit, limits, "diastolic")
        return f"{systolic}/{diastolic} {suffix}"
    return f"{shown(reading.value, unit, limits)} {suffix}".strip()


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    conditions = Conditions.from_parameters(rule.parameters)
    limits = (*conditions.items, *context.limits)
    result = Evaluation()
    for reading in context.new:
        if conditions.matches(reading):
            value = observed(reading, context.unit, limits)
            worded = observed(reading, context.unit, limits, in_words=True)
            result.findings.append(
                Finding(
                    rule_id=rule.id,
                    severity=rule.severity,
                    title=alert_title(
                        describe(rule.parameters, unit=context.unit, metric=rule.metric)
                    ),
                    detail=f"{worded} at {format_instant(reading.measured_at, context.zone)}",
                    triggered_at=reading.measured_at,
                    reading_ids=(reading.id,),
                    values={"observed": value},
                    placement=conditions.placement(reading, group=rule.group),
                )
            )
    result.cleared_at = clear_since(conditions, context.history)
    if conditions.goes_both_ways:
        for direction in DIRECTIONS:
            since = clear_since(conditions.side(direction), context.history)
            if since is not None:
                result.cleared_sides[direction] = since
    return result


def clear_since(conditions: Conditions, readings) -> datetime | None:
    """When the trailing run of readings that meet none of the conditions began (None when
    the latest reading meets them): the condition cleared with the first reading after the
    last one that met it, however the readings were batched."""
    since = None
    for reading in reversed(readings):
        if conditions.matches(reading):
            break
        since = reading.measured_at
    return since


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "glucose is below 54 mg/dL", "INR is below 2 or above 3"."""
    return conditions_words(parameters, unit=unit, subject=subject_of(metric))


KIND = Kind(
    name="threshold",
    label="Threshold",
    parameters_schema=object_schema("Threshold", CONDITIONS_PROPERTIES, required=["conditions"]),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_READING}),
    about_single_readings=True,
    bands=condition_bands,
    bands_mark_readings=True,
    shown_value="observed",
    describe=describe,
)
