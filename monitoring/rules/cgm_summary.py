"""CGM summary: a consensus CGM metric over the last days misses its target
(time below 70 mg/dL ≥ 4 %, time in range ≤ 70 %, CV > 36 % …), reported only when the data
are sufficient (≥ 14 days, ≥ 70 % of possible readings).

Parameters: "measure" percent_in_band | cv, "band" (for percent_in_band: lower/upper bounds
as in the reference), "target" {"op", "value"} (the target; the rule fires when it is not
met), "window_days", "min_days", "min_percent_active", "sensor_interval_minutes".
"""

from datetime import timedelta

from monitoring.rules.base import (
    OPERATORS,
    SYMBOLS,
    Checker,
    Context,
    Evaluation,
    Finding,
    RuleLike,
)
from monitoring.summaries import cgm_data_sufficient, coefficient_of_variation, percent_in_band
from monitoring.units import format_number

SCHEDULED = True


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    measure = check.choice("measure", ["percent_in_band", "cv"])
    if measure == "percent_in_band":
        band = check.parameters.get("band")
        if not isinstance(band, dict) or not ({"lower", "upper"} & set(band)):
            check.add("band", "Must be an object with 'lower' and/or 'upper' bounds.")
        else:
            for side in ("lower", "upper"):
                bound = band.get(side)
                if bound is not None and not (
                    isinstance(bound, dict)
                    and isinstance(bound.get("value"), int | float)
                    and isinstance(bound.get("inclusive"), bool)
                ):
                    check.add(f"band.{side}", "Must be {value: number, inclusive: true|false}.")
    target = check.parameters.get("target")
    if not (
        isinstance(target, dict)
        and target.get("op") in OPERATORS
        and isinstance(target.get("value"), int | float)
    ):
        check.add("target", "Must be {op: lt|le|gt|ge, value: number}.")
    for name in ("window_days", "min_days", "min_percent_active", "sensor_interval_minutes"):
        check.number(name, minimum=0.01)
    check.unknown(
        [
            "measure",
            "band",
            "target",
            "window_days",
            "min_days",
            "min_percent_active",
            "sensor_interval_minutes",
        ]
    )
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["window_days"])


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    values = [r.value for r in context.history]
    times = [r.measured_at for r in context.history]
    if not cgm_data_sufficient(
        times,
        now=context.now,
        window_days=params["window_days"],
        min_days=params["min_days"],
        min_percent_active=params["min_percent_active"],
        sensor_interval_minutes=params["sensor_interval_minutes"],
    ):
        return Evaluation()
    if params["measure"] == "cv":
        observed, label = coefficient_of_variation(values), "CV"
    else:
        observed, label = percent_in_band(values, params["band"]), "time in band"
    target = params["target"]
    if OPERATORS[target["op"]](observed, target["value"]):
        return Evaluation(cleared_at=context.now)
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=rule.title,
                detail=(
                    f"{label} {observed:.1f} % over {format_number(params['window_days'])} days "
                    f"({len(values)} readings); target {SYMBOLS[target['op']]} "
                    f"{format_number(target['value'])} %"
                ),
                triggered_at=context.now,
                values={"percent": round(observed, 1), "readings": len(values)},
            )
        ]
    )
