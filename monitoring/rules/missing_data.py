"""Missing data: no reading of the metric for longer than the patient's limit
(a CGM silent for hours, a heart-failure patient who stopped weighing).

Parameters: "silent_hours". Checked by the clock (the missing-data sweep), cleared by the
next reading.
"""

from datetime import timedelta

from monitoring.models import Metric
from monitoring.rules.base import Checker, Context, Evaluation, Finding, RuleLike
from monitoring.units import format_number

SCHEDULED = True  # evaluated by the sweep, not only when readings arrive


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
                title=rule.title,
                detail=f"No {Metric(rule.metric).label} reading in the last {hours} hours.",
                triggered_at=context.now,
            )
        ]
    )
