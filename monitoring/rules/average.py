"""Average over a window: the mean of the readings of the last N days crosses a limit
(home blood pressure: the 7-day average ≥ 135/85; the reference's thresholds apply to
averages of home readings, not to single readings).

Parameters: conditions/match as for threshold (applied to the means), "window_days",
"min_readings" (fewer readings in the window: no verdict).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean

from monitoring.rules.base import (
    Checker,
    Conditions,
    Context,
    Evaluation,
    Finding,
    RuleLike,
    components_for,
)
from monitoring.rules.threshold import observed


@dataclass(frozen=True)
class Mean:
    id: int
    measured_at: datetime
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.conditions(components=components_for(metric))
    check.number("window_days", minimum=1)
    check.integer("min_readings", minimum=1)
    check.unknown(["conditions", "match", "window_days", "min_readings"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["window_days"])


def _mean(values):
    # Not rounded before the comparison: a mean of 134.95 is below 135 (shown rounded).
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    if not context.new:
        return Evaluation()
    latest = max(context.history, key=lambda reading: reading.measured_at)
    since = latest.measured_at - timedelta(days=params["window_days"])
    window = [r for r in context.history if since < r.measured_at <= latest.measured_at]
    if len(window) < params["min_readings"]:
        return Evaluation()
    mean = Mean(
        id=latest.id,
        measured_at=latest.measured_at,
        value=_mean(r.value for r in window),
        systolic=_mean(r.systolic for r in window),
        diastolic=_mean(r.diastolic for r in window),
    )
    conditions = Conditions.from_parameters(params)
    if not conditions.matches(mean):
        return Evaluation(cleared_at=latest.measured_at)
    shown = observed(mean, context.unit, conditions.items)
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=rule.title,
                detail=(
                    f"{params['window_days']}-day average {shown} over {len(window)} readings; "
                    f"rule: average {conditions.describe(context.unit)}"
                ),
                triggered_at=latest.measured_at,
                reading_ids=(latest.id,),
                values={"average": shown, "readings": len(window)},
                placement=conditions.placement(mean, group=rule.group),
            )
        ]
    )
