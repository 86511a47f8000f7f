"""Persistent non-response goes to the care team as an adherence alert.

Missed doses. A scheduled dose is missed when its slot closes with no dose logged: clinical
.yaml medication_adherence.dose_level_adherence.missed_dose_flag ("dose not confirmed taken
(and not explicitly skipped) by scheduled_time + grace window"; the plan's window is the
grace). The patient's 'consecutive_missed' adherence rules decide what is watched (the listed
medications, or with an empty list every plan marked critical) and how many misses in a row
make an alert: ">= 2 consecutive missed doses of a critical medication", warning
(alert_defaults[0], engineering_choice). A patient with a critical plan and no such rule gets
one on demand from the reference (`doses_missed_consecutively`, as the diabetes and
anticoagulation protocols give it); a rule a clinician deactivated stays off. A dose logged as
skipped is an answer, not a miss: it ends the run.

Missed measurements. After N consecutive missed slots of one measurement schedule the
patient's 'reminders unanswered' rule for the metric (created on demand: key
`reminders_unanswered_<metric>`, mode 'unanswered_reminders', group 'reminders_unanswered',
N = VIGIL_NONRESPONSE_MISSES) raises its alert.

Either way this module finds the run of misses and the rules watching it; the rule's kind
evaluates the slot's closing (Kind.evaluate_slot: adherence finds a run as long as its count)
and its findings go the way every finding goes (monitoring/evaluation/outcomes.py: alerts
through alerts.lifecycle, silences, routing). Each further miss of that schedule or plan adds
an occurrence while the alert is unresolved, and after a person resolves it, N fresh misses
(closed after the resolution) are needed to raise a new one. Evaluating readings never
raises these.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from alerts.models import Alert, AlertStatus
from monitoring.evaluation.outcomes import Raised, apply_outcomes, route_after_commit
from monitoring.models import MedicationPlan, Metric, Patient, Rule, Severity, Slot
from monitoring.nudges.outcomes import slot_done_at
from monitoring.patient_rules import add_reference_rule, add_rule
from monitoring.rules import ON_SLOT_CLOSING, kind_of, names_running
from monitoring.rules.adherence import CONSECUTIVE_MISSED, UNANSWERED_REMINDERS, watches
from monitoring.rules.adherence import KIND as ADHERENCE
from monitoring.rules.base import ClosedSlot, Context

RULE_GROUP = "reminders_unanswered"
RULE_MODE = UNANSWERED_REMINDERS
# The reference's missed-dose rule, given on demand to a patient with a critical plan.
MISSED_DOSES_RULE_KEY = "doses_missed_consecutively"
# Enough history to describe a long run of misses; the decision needs only the last N.
TRAILING_LIMIT = 60


def escalate_nonresponse(*, slot: Slot, now: datetime) -> Raised | None:
    """Raise (or add an occurrence to) the patient's adherence alert when `slot`, just
    missed, ends a run of N misses of its measurement schedule or watched medication plan.

    Call once per missed slot (the reminder sweep claims Slot.miss_handled_at first):
    each call for a slot in such a run counts one occurrence.
    Writes: Rule + RuleRevision (first time), Alert + AlertEvent (through the evaluation
    outcomes and alerts.lifecycle). Enqueues after commit: notification routing of a new
    alert, unless silenced. Returns the last alert raised, if any.
    """
    patient = Patient.objects.select_related("care_team").get(pk=slot.patient_id)
    if slot.plan_id is not None:
        rules = missed_dose_rules(patient=patient, plan=slot.plan)
    else:
        rules = [nonresponse_rule(patient=patient, metric=slot.schedule.metric)]
    outcomes = []
    for rule in rules:
        if not rule.active:
            continue
        missed = _trailing_misses(slot, patient, rule.group)
        context = Context(
            now=now,
            zone=patient.zone,
            unit="",
            new=[],
            history=[],
            missed=[_closed(earlier) for earlier in missed],
        )
        outcomes.append((rule, kind_of(rule).evaluate_slot(rule, context)))
    if not any(evaluation.findings for _, evaluation in outcomes):
        return None
    with transaction.atomic():
        raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        route_after_commit(raised)
    return raised[-1] if raised else None


def missed_dose_rules(*, patient: Patient, plan: MedicationPlan) -> list[Rule]:
    """The patient's 'consecutive_missed' rules watching the plan's medication, active or
    not. A critical plan watched by none, with no reference rule ever given, gets the
    reference rule now (so a heart-failure patient's critical diuretic is watched too)."""
    rules = [
        rule
        for rule in Rule.objects.filter(
            patient=patient,
            kind__in=names_running(ON_SLOT_CLOSING),
            parameters__mode=CONSECUTIVE_MISSED,
        ).order_by("pk")
        if watches(rule.parameters, medication=plan.medication, critical=plan.critical)
    ]
    if rules or not plan.critical:
        return rules
    if Rule.objects.filter(patient=patient, key=MISSED_DOSES_RULE_KEY).exists():
        return []  # tailored not to watch this plan: the clinician's choice
    try:
        with transaction.atomic():
            rule = add_reference_rule(
                patient=patient,
                key=MISSED_DOSES_RULE_KEY,
                note=f"Given at the first missed dose of a critical plan ({plan.medication}).",
            )
    except IntegrityError:  # given by a concurrent miss of another plan
        rule = Rule.objects.get(patient=patient, key=MISSED_DOSES_RULE_KEY)
    return [rule]


def nonresponse_rule(*, patient: Patient, metric: str) -> Rule:
    """The patient's 'reminders unanswered' rule for the metric, created the first time."""
    key = f"{RULE_GROUP}_{metric}"
    rule = Rule.objects.filter(patient=patient, key=key).first()
    if rule is not None:
        return rule
    label = Metric(metric).label
    try:
        with transaction.atomic():
            return add_rule(
                patient=patient,
                key=key,
                kind=ADHERENCE.name,
                metric=metric,
                severity=Severity.WARNING,
                group=RULE_GROUP,
                title=f"{label} reminders unanswered",
                parameters={"mode": RULE_MODE, "count": settings.VIGIL_NONRESPONSE_MISSES},
                note="Created by the nudges module at the first missed slot to escalate.",
            )
    except IntegrityError:  # created by a concurrent miss of another schedule
        return Rule.objects.get(patient=patient, key=key)


def _trailing_misses(slot: Slot, patient: Patient, group: str) -> list[Slot]:
    """The run of missed slots of the slot's schedule or plan ending with it (newest first),
    not counting misses from before the last resolution of the patient's alert of `group`."""
    resolved = Alert.objects.filter(
        patient=patient, dedupe_key=group, status=AlertStatus.RESOLVED
    ).aggregate(at=Max("resolved_at"))["at"]
    owner = {"plan_id": slot.plan_id} if slot.plan_id else {"schedule_id": slot.schedule_id}
    recent = (
        Slot.objects.filter(**owner, due_at__lte=slot.due_at)
        .select_related("schedule", "plan", "fulfilled_by")
        .order_by("-due_at")[:TRAILING_LIMIT]
    )
    missed = []
    for earlier in recent:
        if resolved is not None and earlier.closes_at <= resolved:
            break
        if slot_done_at(earlier, until=earlier.closes_at) is not None:
            break
        missed.append(earlier)
    return missed


def _closed(slot: Slot) -> ClosedSlot:
    """A missed slot as the rule kinds read it."""
    if slot.plan_id is not None:
        subject = slot.plan.name
        owner = {"plan_id": slot.plan_id, "medication": slot.plan.medication}
    else:
        subject = Metric(slot.schedule.metric).label
        owner = {"schedule_id": slot.schedule_id, "schedule": slot.schedule.key}
    return ClosedSlot(
        id=slot.pk,
        due_at=slot.due_at,
        closes_at=slot.closes_at,
        subject=subject,
        of_plan=slot.plan_id is not None,
        owner=owner,
    )
