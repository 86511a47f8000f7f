"""Rate of change: a gain or loss over N days (heart failure: > 0.9 kg in 1 day).

Per the clinical reference (body_weight.computed_metrics.delta_weight): use the first
reading of each local calendar day; delta_N = value(day d) − value(day d−N); if day d−N has
no reading use the nearest earlier day within N+1 days, else skip. A weight that arrives after
the days it is the base of were evaluated is compared with them too.

Parameters: "window_days" N, "delta" (canonical unit), "direction" gain | loss,
"op" gt | ge (default gt).
"""

from datetime import date, timedelta

from monitoring.display import format_date
from monitoring.problems import HIGH, LOW
from monitoring.rules.base import (
    ON_READING,
    OPERATORS,
    Checker,
    Context,
    Evaluation,
    Finding,
    Kind,
    Placement,
    RuleLike,
    number_schema,
    object_schema,
)
from monitoring.rules.words import alert_title, plural, quantity, subject_of


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.integer("window_days", minimum=1)
    check.number("delta", minimum=0)
    check.choice("direction", ["gain", "loss"])
    check.choice("op", ["gt", "ge"], required=False)
    check.unknown(["window_days", "delta", "direction", "op"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    # Day d−N−1 may stand in for d−N, and local days straddle UTC ones.
    return timedelta(days=parameters["window_days"] + 2)


def first_of_each_day(readings, zone) -> dict[date, object]:
    days: dict[date, object] = {}
    for reading in readings:  # oldest first
        days.setdefault(reading.measured_at.astimezone(zone).date(), reading)
    return days


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    n = params["window_days"]
    sign = 1 if params["direction"] == "gain" else -1
    compare = OPERATORS[params.get("op", "gt")]
    days = first_of_each_day(context.history, context.zone)
    new_ids = {r.id for r in context.new}
    # A new first weight of day D is compared as "today" and, when it arrived after later
    # days were evaluated (a scale that synced late), as their base: days D+N and D+N+1.
    new_days = [day for day, first in days.items() if first.id in new_ids]
    targets = sorted(
        {day + timedelta(days=k) for day in new_days for k in (0, n, n + 1)} & days.keys()
    )
    result = Evaluation()
    for day in targets:
        today = days[day]
        base = days.get(day - timedelta(days=n)) or days.get(day - timedelta(days=n + 1))
        if base is None or (today.id not in new_ids and base.id not in new_ids):
            continue  # nothing new in this comparison (e.g. a later weighing of a day)
        # Rounded as canonical values are (units.Unit.to_canonical): 80.9 - 80.0 is a change
        # of exactly 0.9 kg, not 0.9000000000000057, so a limit of "> 0.9" holds at the limit.
        change = round(sign * (today.value - base.value), 6)
        if compare(change, params["delta"]):
            result.findings.append(
                Finding(
                    rule_id=rule.id,
                    severity=rule.severity,
                    title=alert_title(
                        describe(rule.parameters, unit=context.unit, metric=rule.metric)
                    ),
                    detail=(
                        f"{'Gain' if sign > 0 else 'Loss'} of "
                        f"{quantity(round(change, 2), context.unit)} from "
                        f"{format_date(base.measured_at.astimezone(context.zone).date())} to "
                        f"{format_date(day)}"
                    ),
                    triggered_at=today.measured_at,
                    reading_ids=(base.id, today.id),
                    values={"change": round(change, 3), "from": base.value, "to": today.value},
                    # A gain is a high problem, a loss a low one; a larger limit is a further
                    # tier (2.3 kg in a week past 0.9 kg in a day), a larger change worse.
                    placement=Placement(
                        HIGH if sign > 0 else LOW,
                        params["delta"],
                        (change - params["delta"]) / (params["delta"] or 1),
                    ),
                )
            )
        elif day == max(days):
            result.cleared_at = today.measured_at
    return result


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "weight rises by more than 0.9 kg in 1 day", "weight falls by 0.9 kg or more in 2
    days"."""
    verb = "rises" if parameters.get("direction") == "gain" else "falls"
    amount = quantity(parameters["delta"], unit)
    by = f"{amount} or more" if parameters.get("op") == "ge" else f"more than {amount}"
    days = plural(parameters["window_days"], "day")
    return f"{subject_of(metric)} {verb} by {by} in {days}"


KIND = Kind(
    name="rate_of_change",
    label="Rate of change",
    parameters_schema=object_schema(
        "Rate of change",
        {
            "window_days": number_schema(1, whole=True),
            "delta": number_schema(0),
            "direction": {"enum": ["gain", "loss"]},
            "op": {"enum": ["gt", "ge", None], "default": "gt"},
        },
        required=["window_days", "delta", "direction"],
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_READING}),
    about_single_readings=True,
    describe=describe,
    parameter_labels={"window_days": ("Within", "days"), "delta": ("Amount", "unit")},
)
