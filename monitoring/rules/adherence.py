"""Adherence from dose events and schedule slots (ABC taxonomy 'implementation').

Parameters, one of three modes:
- {"mode": "consecutive_missed", "count": N, "medications": [...]}: the last N scheduled
  doses of a watched medication were missed. Watched: the listed medication ids, or with an
  empty list every medication plan of the patient marked critical (clinical.yaml: ">= 2
  consecutive missed doses of a critical medication"). Missed, as the reference's
  missed_dose_flag defines it: the plan's slot closed (scheduled time + the plan's window)
  with no dose logged; a dose logged as skipped is not missed and ends the run. Doses without
  a plan have no schedule to miss. Raised when a slot closes (monitoring/nudges/
  escalation.py), from the run of missed slots: evaluate() finds nothing for it.
- {"mode": "taking_rate", "window_days": D, "below_percent": P}: doses taken / doses
  scheduled over the last D days is below P %. Scheduled: a plan's slots once decided (taken,
  or closed without a dose taken); a medication without a plan counts its logged doses
  (taken or skipped). Evaluated when a dose arrives and when a plan's slot is missed
  (monitoring/evaluation/readings.py evaluate_dose_adherence): a patient who stops logging
  falls. count_taken_doses is the count; the patient page's adherence uses it too.
- {"mode": "unanswered_reminders", "count": N}: N consecutive slots of one measurement
  schedule closed with nothing logged. Raised by the nudges module when a slot is missed,
  not by evaluating readings: evaluate() finds nothing for it. The nudges module creates the
  rule on demand, one per metric, in group 'reminders_unanswered'; a clinician tailors N or
  deactivates it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitoring.problems import LOW
from monitoring.rules.base import (
    Checker,
    Context,
    Evaluation,
    Finding,
    Placement,
    PlannedDose,
    RuleLike,
)
from monitoring.units import format_number

CONSECUTIVE_MISSED = "consecutive_missed"
TAKING_RATE = "taking_rate"
# Modes raised from closed slots by the nudges module, never by evaluating readings.
SLOT_MODES = {CONSECUTIVE_MISSED, "unanswered_reminders"}


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    mode = check.choice("mode", [CONSECUTIVE_MISSED, TAKING_RATE, "unanswered_reminders"])
    if mode == CONSECUTIVE_MISSED:
        check.integer("count", minimum=1)
        medications = check.parameters.get("medications", [])
        if not isinstance(medications, list) or not all(isinstance(m, str) for m in medications):
            check.add("medications", "Must be a list of medication ids.")
        check.unknown(["mode", "count", "medications"])
    elif mode == TAKING_RATE:
        check.number("window_days", minimum=1)
        check.number("below_percent", minimum=0)
        check.unknown(["mode", "window_days", "below_percent"])
    elif mode == "unanswered_reminders":
        check.integer("count", minimum=1)
        check.unknown(["mode", "count"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    if parameters["mode"] in SLOT_MODES:
        return timedelta(0)
    return timedelta(days=parameters["window_days"])


def watches(parameters: dict, *, medication: str, critical: bool) -> bool:
    """Whether a 'consecutive_missed' rule with these parameters watches a plan of this
    medication: listed by id, or (no list) the plan is marked critical."""
    listed = parameters.get("medications") or []
    return medication in listed if listed else critical


def _dose_time(reading):
    return reading.scheduled_for or reading.measured_at


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    if not context.new or rule.parameters["mode"] in SLOT_MODES:
        return Evaluation()
    return taking_rate(rule, context)


@dataclass(frozen=True)
class TakingRate:
    taken: int
    scheduled: int  # planned (a plan's decided slots) + logged (doses without a plan)
    planned: int
    latest: datetime | None  # when the latest counted dose was taken or decided

    @property
    def percent(self) -> float | None:
        return 100 * self.taken / self.scheduled if self.scheduled else None


def count_taken_doses(
    *, planned_doses: Sequence[PlannedDose], doses: Sequence, since: datetime
) -> TakingRate:
    """Taken ÷ scheduled doses after `since` (clinical.yaml dose_level_adherence
    .taking_adherence). A medication with a plan counts its decided slots: taken, or closed
    without a dose taken (skipped or never logged); doses without a plan count as logged
    (taken or skipped). `doses`: dose readings (medication, dose_status, scheduled_for,
    measured_at). The taking-rate rule's computation; the patient page calls it too."""
    planned = [p for p in planned_doses if p.due_at > since]
    on_plan = {p.medication for p in planned}
    logged = [d for d in doses if _dose_time(d) > since and d.medication not in on_plan]
    return TakingRate(
        taken=sum(p.taken for p in planned) + sum(d.dose_status == "taken" for d in logged),
        scheduled=len(planned) + len(logged),
        planned=len(planned),
        latest=max([p.at for p in planned] + [d.measured_at for d in logged], default=None),
    )


def taking_rate(rule: RuleLike, context: Context) -> Evaluation:
    """Taken ÷ scheduled doses over the rule's window (count_taken_doses)."""
    params = rule.parameters
    counted = count_taken_doses(
        planned_doses=context.planned_doses,
        doses=context.history,
        since=context.now - timedelta(days=params["window_days"]),
    )
    if counted.percent is None:
        return Evaluation()
    if counted.percent >= params["below_percent"]:
        return Evaluation(cleared_at=counted.latest)
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=rule.title,
                detail=(
                    f"{counted.taken} of {counted.scheduled} doses taken in "
                    f"{format_number(params['window_days'])} days ({counted.percent:.0f} %, "
                    f"below {format_number(params['below_percent'])} %)"
                ),
                triggered_at=counted.latest,
                values={"taking_percent": round(counted.percent, 1), "doses": counted.scheduled},
                # A lower rate is worse: the alert shows the lowest it has seen.
                placement=Placement(LOW, None, params["below_percent"] - counted.percent),
            )
        ]
    )
