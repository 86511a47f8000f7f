"""Adherence from dose events (ABC taxonomy 'implementation').

Parameters, one of three modes:
- {"mode": "consecutive_missed", "count": N, "medications": [...]}: the last N doses of a
  listed (critical) medication were missed; empty list = every medication.
- {"mode": "taking_rate", "window_days": D, "below_percent": P}: taken ÷ (taken + missed)
  over the last D days is below P %.
- {"mode": "unanswered_reminders", "count": N}: N consecutive slots of one measurement
  schedule, or of one critical medication plan, closed with nothing logged. Raised by the
  nudges module when a slot is missed (monitoring/nudges/escalation.py), not by evaluating
  readings: evaluate() finds nothing for it. The nudges module creates the rule on demand,
  one per metric, in group 'reminders_unanswered'; a clinician tailors N or deactivates it.
A missed dose is a dose event with status 'skipped'; doses never logged against a schedule
count once medication schedules exist.
"""

from datetime import timedelta

from monitoring.rules.base import Checker, Context, Evaluation, Finding, RuleLike
from monitoring.units import format_number

# Enough dose history to see N consecutive doses of a once- or twice-daily medication.
CONSECUTIVE_LOOKBACK = timedelta(days=30)


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    mode = check.choice("mode", ["consecutive_missed", "taking_rate", "unanswered_reminders"])
    if mode == "consecutive_missed":
        check.integer("count", minimum=1)
        medications = check.parameters.get("medications", [])
        if not isinstance(medications, list) or not all(isinstance(m, str) for m in medications):
            check.add("medications", "Must be a list of medication ids.")
        check.unknown(["mode", "count", "medications"])
    elif mode == "taking_rate":
        check.number("window_days", minimum=1)
        check.number("below_percent", minimum=0)
        check.unknown(["mode", "window_days", "below_percent"])
    elif mode == "unanswered_reminders":
        check.integer("count", minimum=1)
        check.unknown(["mode", "count"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    if parameters["mode"] == "unanswered_reminders":
        return timedelta(0)
    if parameters["mode"] == "taking_rate":
        return timedelta(days=parameters["window_days"])
    return CONSECUTIVE_LOOKBACK


def _dose_time(reading):
    return reading.scheduled_for or reading.measured_at


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    if not context.new or rule.parameters["mode"] == "unanswered_reminders":
        return Evaluation()
    if rule.parameters["mode"] == "consecutive_missed":
        return _consecutive(rule, context)
    return _taking_rate(rule, context)


def _consecutive(rule: RuleLike, context: Context) -> Evaluation:
    count = rule.parameters["count"]
    watched = set(rule.parameters.get("medications") or [])
    result = Evaluation()
    by_medication: dict[str, list] = {}
    for dose in sorted(context.history, key=_dose_time):
        if not watched or dose.medication in watched:
            by_medication.setdefault(dose.medication, []).append(dose)
    touched = {dose.medication for dose in context.new}
    for medication, doses in by_medication.items():
        if medication not in touched:
            continue
        trailing = []
        for dose in reversed(doses):
            if dose.dose_status != "skipped":
                break
            trailing.append(dose)
        if len(trailing) >= count:
            result.findings.append(
                Finding(
                    rule_id=rule.id,
                    severity=rule.severity,
                    title=rule.title,
                    detail=f"{len(trailing)} consecutive missed doses of {medication}",
                    triggered_at=trailing[0].measured_at,
                    reading_ids=tuple(d.id for d in trailing),
                    values={"medication": medication, "missed": len(trailing)},
                )
            )
        elif doses[-1].dose_status == "taken":
            result.cleared_at = doses[-1].measured_at
    return result


def _taking_rate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    since = context.now - timedelta(days=params["window_days"])
    doses = [d for d in context.history if _dose_time(d) > since]
    if not doses:
        return Evaluation()
    taken = sum(1 for d in doses if d.dose_status == "taken")
    rate = 100 * taken / len(doses)
    latest = max(doses, key=_dose_time)
    if rate >= params["below_percent"]:
        return Evaluation(cleared_at=latest.measured_at)
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=rule.title,
                detail=(
                    f"{taken} of {len(doses)} doses taken in "
                    f"{format_number(params['window_days'])} days ({rate:.0f} %, below "
                    f"{format_number(params['below_percent'])} %)"
                ),
                triggered_at=latest.measured_at,
                values={"taking_percent": round(rate, 1), "doses": len(doses)},
            )
        ]
    )
