"""Adherence from dose events and schedule slots (ABC taxonomy 'implementation').

Parameters, one of three modes:
- {"mode": "consecutive_missed", "count": N, "medications": [...]}: the last N scheduled
  doses of a watched medication were missed. Watched: the listed medication ids, or with an
  empty list every medication plan of the patient marked critical (clinical.yaml: ">= 2
  consecutive missed doses of a critical medication"). Missed, as the reference's
  missed_dose_flag defines it: the plan's slot closed (scheduled time + the plan's window)
  with no dose logged; a dose logged as skipped is not missed and ends the run. Doses without
  a plan have no schedule to miss. Evaluated when a slot closes (evaluate_slot, from the run
  of missed slots that monitoring/nudges/escalation.py finds): evaluate() finds nothing.
- {"mode": "taking_rate", "window_days": D, "below_percent": P}: doses taken / doses
  scheduled over the last D days is below P %. Scheduled: a plan's slots once decided (taken,
  or closed without a dose taken); a medication without a plan counts its logged doses
  (taken or skipped). Evaluated when a dose arrives, and when a plan's slot closes without a
  dose taken (evaluate_slot, from monitoring/evaluation/readings.py evaluate_dose_adherence):
  a patient who stops logging falls. count_taken_doses is the count; the patient page's
  adherence uses it too.
- {"mode": "unanswered_reminders", "count": N}: N consecutive slots of one measurement
  schedule closed with nothing logged. Evaluated when a slot closes (evaluate_slot), not by
  evaluating readings: evaluate() finds nothing for it. The nudges module creates the
  rule on demand, one per metric, in group 'reminders_unanswered'; a clinician tailors N or
  deactivates it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitoring.display import format_instant
from monitoring.problems import LOW
from monitoring.rules.base import (
    ON_READING,
    ON_SLOT_CLOSING,
    SUMMARY_DOSE_TAKING,
    Checker,
    Context,
    Evaluation,
    Finding,
    Kind,
    Placement,
    PlannedDose,
    RuleLike,
    number_schema,
    object_schema,
)
from monitoring.rules.words import alert_title, plural, subject_of
from monitoring.units import format_number

CONSECUTIVE_MISSED = "consecutive_missed"
TAKING_RATE = "taking_rate"
UNANSWERED_REMINDERS = "unanswered_reminders"
# Modes raised from runs of closed slots, never by evaluating readings.
SLOT_MODES = {CONSECUTIVE_MISSED, UNANSWERED_REMINDERS}


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    mode = check.choice("mode", [CONSECUTIVE_MISSED, TAKING_RATE, UNANSWERED_REMINDERS])
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
    elif mode == UNANSWERED_REMINDERS:
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


def is_taking_rate(parameters: dict) -> bool:
    return parameters.get("mode") == TAKING_RATE


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
                title=alert_title(describe(rule.parameters, unit=context.unit, metric=rule.metric)),
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


def evaluate_slot(rule: RuleLike, context: Context) -> Evaluation:
    """When a slot closed unanswered: a run of misses as long as the rule's count (its
    `missed` newest first, ending with the slot just closed), or the taking rate a missed dose
    lowered (no reading arrives to evaluate it)."""
    if is_taking_rate(rule.parameters):
        return taking_rate(rule, context)
    missed = context.missed
    if not missed or len(missed) < rule.parameters["count"]:
        return Evaluation()
    slot = missed[0]
    last_due = format_instant(slot.due_at, context.zone)
    things = "scheduled doses" if slot.of_plan else "measurements"
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=alert_title(describe(rule.parameters, unit=context.unit, metric=rule.metric)),
                detail=(
                    f"{slot.subject}: {len(missed)} consecutive {things} not logged; "
                    f"last due {last_due}"
                ),
                triggered_at=slot.closes_at,
                since=missed[-1].closes_at,
                values={
                    **slot.owner,
                    "missed": len(missed),
                    "slot_ids": [closed.id for closed in reversed(missed)],
                },
                # A longer run of misses is worse: the alert shows the longest.
                placement=Placement(extremity=len(missed)),
            )
        ]
    )


def summary_windows(parameters: dict) -> list[float]:
    """A taking-rate rule's window, shown on the patient page besides its own."""
    return [parameters["window_days"]] if is_taking_rate(parameters) else []


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "2 scheduled doses in a row of a medication marked critical are missed", "fewer than
    80 % of scheduled doses are taken over the last 7 days", "3 measurement reminders in a
    row go unanswered"."""
    mode = parameters.get("mode")
    if mode == CONSECUTIVE_MISSED:
        listed = parameters.get("medications") or []
        watched = f"of {', '.join(listed)}" if listed else "of a medication marked critical"
        verb = "is" if parameters["count"] == 1 else "are"
        return f"{plural(parameters['count'], 'scheduled dose')} in a row {watched} {verb} missed"
    if mode == TAKING_RATE:
        return (
            f"fewer than {format_number(parameters['below_percent'])} % of scheduled doses are "
            f"taken over the last {plural(parameters['window_days'], 'day')}"
        )
    if mode == UNANSWERED_REMINDERS:
        reminder = f"{subject_of(metric)} reminder" if metric else "measurement reminder"
        if parameters["count"] == 1:
            return f"a {reminder} goes unanswered"
        return f"{plural(parameters['count'], reminder)} in a row go unanswered"
    return ""


KIND = Kind(
    name="adherence",
    label="Dose adherence",
    parameters_schema={
        "title": "Dose adherence",
        "oneOf": [
            object_schema(
                "Consecutive missed doses",
                {
                    "mode": {"enum": [CONSECUTIVE_MISSED]},
                    "count": number_schema(1, whole=True),
                    "medications": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Medication ids; empty: every plan marked critical.",
                    },
                },
                required=["mode", "count"],
            ),
            object_schema(
                "Taking rate",
                {
                    "mode": {"enum": [TAKING_RATE]},
                    "window_days": number_schema(1),
                    "below_percent": number_schema(0),
                },
                required=["mode", "window_days", "below_percent"],
            ),
            object_schema(
                "Unanswered reminders",
                {"mode": {"enum": [UNANSWERED_REMINDERS]}, "count": number_schema(1, whole=True)},
                required=["mode", "count"],
            ),
        ],
    },
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_READING, ON_SLOT_CLOSING}),
    about_single_readings=True,
    wants_planned_doses=is_taking_rate,
    evaluate_slot=evaluate_slot,
    runs_on_missed_dose=is_taking_rate,
    summary=SUMMARY_DOSE_TAKING,
    summary_windows=summary_windows,
    describe=describe,
    parameter_labels={"count": ("In a row", "")},
)
