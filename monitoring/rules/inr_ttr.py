"""INR time in therapeutic range (Rosendaal) below a limit (NICE: TTR < 65 % is poor control).

Parameters: "target_low", "target_high" (the patient's range), "max_gap_days" (gaps longer
are not interpolated), "window_days", "below_percent".
"""

from datetime import timedelta

from monitoring.rules.base import Checker, Context, Evaluation, Finding, RuleLike
from monitoring.summaries import rosendaal_ttr
from monitoring.units import format_number

SCHEDULED = True


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    low = check.number("target_low", minimum=0)
    high = check.number("target_high", minimum=0)
    if low is not None and high is not None and low >= high:
        check.add("target_high", "Must be above target_low.")
    check.integer("max_gap_days", minimum=1)
    check.number("window_days", minimum=1)
    check.number("below_percent", minimum=0)
    check.unknown(["target_low", "target_high", "max_gap_days", "window_days", "below_percent"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["window_days"])


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    points = [(r.measured_at.astimezone(context.zone).date(), r.value) for r in context.history]
    ttr = rosendaal_ttr(
        points,
        low=params["target_low"],
        high=params["target_high"],
        max_gap_days=params["max_gap_days"],
    )
    if ttr.percent is None:
        return Evaluation()
    if ttr.percent >= params["below_percent"]:
        return Evaluation(cleared_at=context.now)
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=rule.title,
                detail=(
                    f"INR time in range {ttr.percent:.0f} % over {ttr.days_total} days "
                    f"(target {format_number(params['target_low'])}–"
                    f"{format_number(params['target_high'])}; below "
                    f"{format_number(params['below_percent'])} % is poor control)"
                ),
                triggered_at=context.now,
                values={"ttr_percent": round(ttr.percent, 1), "days": ttr.days_total},
            )
        ]
    )
