"""Threshold: a single reading above, below, inside or outside limits.

Parameters: {"conditions": [{"component", "op", "value"}], "match": "any" | "all"}.
Blood pressure names its component (systolic > 180 or diastolic > 120, match any); a band
such as 54 ≤ glucose < 70 is two conditions with match all; outside a range (INR outside
2.0–3.0) is `value < low` or `value > high`, match any.
"""

from datetime import timedelta

from monitoring.rules.base import (
    Checker,
    Conditions,
    Context,
    Evaluation,
    Finding,
    RuleLike,
    components_for,
)
from monitoring.units import format_number


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.conditions(components=components_for(metric))
    check.unknown(["conditions", "match"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(0)


def shown(value: float, unit: str) -> str:
    """As a clinician reads it: mg/dL and mmHg whole, everything else to one decimal."""
    digits = 0 if unit in ("mg/dL", "mm[Hg]", "/min", "%") else 1
    return format_number(round(value, digits))


def observed(reading, unit: str) -> str:
    if reading.systolic is not None:
        return f"{shown(reading.systolic, unit)}/{shown(reading.diastolic, unit)} {unit}"
    return f"{shown(reading.value, unit)} {unit}".strip()


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    conditions = Conditions.from_parameters(rule.parameters)
    result = Evaluation()
    for reading in context.new:
        if conditions.matches(reading):
            local = reading.measured_at.astimezone(context.zone)
            result.findings.append(
                Finding(
                    rule_id=rule.id,
                    severity=rule.severity,
                    title=rule.title,
                    detail=(
                        f"{observed(reading, context.unit)} at {local:%Y-%m-%d %H:%M %Z}; "
                        f"rule: {conditions.describe(context.unit)}"
                    ),
                    triggered_at=reading.measured_at,
                    reading_ids=(reading.id,),
                    values={"observed": observed(reading, context.unit)},
                )
            )
    latest = context.history[-1] if context.history else None
    if latest is not None and latest in context.new and not conditions.matches(latest):
        result.cleared_at = latest.measured_at
    return result
