"""Persistent non-response to reminders goes to the care team as an adherence alert.

After N consecutive missed slots of one measurement schedule, or of one critical medication
plan, an alert is raised through alerts.lifecycle.raise_alert; each further miss of that
schedule or plan adds an occurrence to it while it is unresolved. After a person resolves it,
N fresh misses (closed after the resolution) are needed to raise a new one.

The alert needs a rule: each patient gets, on demand, an adherence rule per metric
(key `reminders_unanswered_<metric>`, mode 'unanswered_reminders', group
'reminders_unanswered', so one alert gathers all of them) with N = VIGIL_NONRESPONSE_MISSES
when it is created. Clinicians tailor it like any rule: change N for this patient, or
deactivate it. Evaluating readings never fires it (monitoring/rules/adherence.py).

Severity warning: clinical.yaml medication_adherence.dose_level_adherence.missed_dose_flag
.alert_defaults[0] (">= 2 consecutive missed doses of a critical medication": warning,
engineering_choice); missed measurements are treated alike.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from alerts.lifecycle import Raised, Trigger, raise_alert
from alerts.models import Alert, AlertStatus, Silence
from config.celery import enqueue_on_commit
from monitoring.models import Metric, Patient, Rule, Severity, Slot
from monitoring.nudges.outcomes import slot_done_at
from monitoring.patient_rules import add_rule

RULE_GROUP = "reminders_unanswered"
RULE_MODE = "unanswered_reminders"
# Enough history to describe a long run of misses; the decision needs only the last N.
TRAILING_LIMIT = 60


def escalate_nonresponse(*, slot: Slot, now: datetime) -> Raised | None:
    """Raise (or add an occurrence to) the patient's 'reminders unanswered' alert when `slot`,
    just missed, ends a run of N misses of its schedule or critical plan.

    Call once per missed slot (the reminder sweep claims Slot.miss_handled_at first):
    each call for a slot in such a run counts one occurrence.
    Writes: Rule + RuleRevision (first time, per metric), Alert + AlertEvent (lifecycle).
    Enqueues after commit: notification routing of a new alert, unless silenced.
    """
    if slot.plan_id is not None and not slot.plan.critical:
        return None
    patient = Patient.objects.select_related("care_team").get(pk=slot.patient_id)
    metric = Metric.DOSE if slot.plan_id is not None else slot.schedule.metric
    rule = nonresponse_rule(patient=patient, metric=metric)
    if not rule.active:
        return None
    missed = _trailing_misses(slot, patient)
    if len(missed) < rule.parameters["count"]:
        return None
    with transaction.atomic():
        trigger = _trigger(rule, slot, missed, patient.zone)
        raised = raise_alert(patient=patient, trigger=trigger, now=now)
        if raised.notify and raised.event is not None and not _silenced(patient, rule, now):
            from alerts.tasks import route_alert_event_task

            enqueue_on_commit(route_alert_event_task, raised.event.pk)
    return raised


def nonresponse_rule(*, patient: Patient, metric: str) -> Rule:
    """The patient's 'reminders unanswered' rule for the metric, created the first time."""
    key = f"{RULE_GROUP}_{metric}"
    rule = Rule.objects.filter(patient=patient, key=key).first()
    if rule is not None:
        return rule
    label = "Dose" if metric == Metric.DOSE else Metric(metric).label
    try:
        with transaction.atomic():
            return add_rule(
                patient=patient,
                key=key,
                kind="adherence",
                metric=metric,
                severity=Severity.WARNING,
                group=RULE_GROUP,
                title=f"{label} reminders unanswered",
                parameters={"mode": RULE_MODE, "count": settings.VIGIL_NONRESPONSE_MISSES},
                note="Created by the nudges module at the first missed slot to escalate.",
            )
    except IntegrityError:  # created by a concurrent miss of another schedule
        return Rule.objects.get(patient=patient, key=key)


def _trailing_misses(slot: Slot, patient: Patient) -> list[Slot]:
    """The run of missed slots of the slot's schedule or plan ending with it (newest first),
    not counting misses from before the last resolution of the patient's alert."""
    resolved = Alert.objects.filter(
        patient=patient, dedupe_key=RULE_GROUP, status=AlertStatus.RESOLVED
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


def _trigger(rule: Rule, slot: Slot, missed: list[Slot], zone: ZoneInfo) -> Trigger:
    last_due = slot.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    if slot.plan_id is not None:
        what = f"{slot.plan.name}: {len(missed)} consecutive scheduled doses"
        owner = {"plan_id": slot.plan_id, "medication": slot.plan.medication}
    else:
        what = f"{Metric(slot.schedule.metric).label}: {len(missed)} consecutive measurements"
        owner = {"schedule_id": slot.schedule_id, "schedule": slot.schedule.key}
    return Trigger(
        rule=rule,
        severity=rule.severity,
        title=rule.title,
        detail=f"{what} not logged; last due {last_due}",
        first_at=missed[-1].closes_at,
        last_at=slot.closes_at,
        values={**owner, "missed": len(missed), "slot_ids": [s.pk for s in reversed(missed)]},
    )


def _silenced(patient: Patient, rule: Rule, now: datetime) -> bool:
    silences = Silence.objects.filter(patient=patient, starts_at__lte=now, ends_at__gt=now)
    return any(silence.covers(rule_id=rule.pk, at=now) for silence in silences)
