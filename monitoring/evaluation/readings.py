"""Evaluation of a patient's new readings (and of dose adherence when a planned dose is
missed): rules of the readings' metrics, their windows, findings handed to outcomes."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from monitoring.evaluation.locking import lock_patient, unit_of
from monitoring.evaluation.outcomes import Raised, apply_outcomes, route_after_commit
from monitoring.models import Metric, Reading, Rule
from monitoring.rules import KINDS, is_scheduled
from monitoring.rules.adherence import TAKING_RATE, taking_rate
from monitoring.rules.base import Context, Evaluation
from monitoring.schedules import fulfil_slots, planned_doses

# Readings one evaluation takes on; a larger backlog continues in a follow-up task.
MAX_READINGS_PER_RUN = 2000
# Kinds whose findings are about single readings and so may page about stale data.
READING_KINDS_SUPPRESSED_WHEN_STALE = {
    "threshold",
    "sustained",
    "count_in_window",
    "rate_of_change",
    "average",
    "adherence",
}


# Kinds evaluated when readings arrive: the unscheduled ones, and missing data (cleared by
# a reading; its deadline moves with it). Summaries run from the sweep only.
KINDS_ON_READINGS = sorted(
    kind for kind in KINDS if not is_scheduled(kind) or kind == "missing_data"
)


def evaluate_pending_readings(*, patient_id: int, now: datetime | None = None) -> int:
    """Evaluate the patient's readings not yet evaluated; return how many were.

    Writes: alerts (through alerts.lifecycle), Rule.next_check_at of missing-data rules,
    Reading.evaluated_at. Enqueues after commit: a notification routing task per alert that
    someone must hear about, and a follow-up evaluation if the backlog was larger than one run.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lock_patient(patient_id)
        pending = list(
            Reading.objects.filter(patient_id=patient_id, evaluated_at__isnull=True).order_by(
                "measured_at", "id"
            )[: MAX_READINGS_PER_RUN + 1]
        )
        more = len(pending) > MAX_READINGS_PER_RUN
        pending = pending[:MAX_READINGS_PER_RUN]
        if not pending:
            return 0
        # The rules new readings are evaluated against, of their metrics only, with the
        # patient and team in the same query: a patient on all five protocols has ~40
        # rules, a CGM reading concerns 6.
        rules = list(
            Rule.objects.filter(
                patient_id=patient_id,
                active=True,
                metric__in={r.metric for r in pending},
                kind__in=KINDS_ON_READINGS,
            ).select_related("patient__care_team")
        )
        # In the same transaction: a reading marks its schedule's slot done exactly when it
        # counts as evaluated (re-evaluating changes nothing: a done slot stays done); before
        # the rules, so the dose taking rate counts the dose just taken.
        fulfil_slots(patient_id=patient_id, readings=pending)
        raised = []
        if rules:
            patient = rules[0].patient
            outcomes = _evaluate_new_readings(patient, rules, pending, now)
            raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        Reading.objects.filter(id__in=[reading.id for reading in pending]).update(evaluated_at=now)
        route_after_commit(raised)
        if more:
            from monitoring.tasks import evaluate_patient_readings_task

            enqueue_on_commit(evaluate_patient_readings_task, patient_id)
    return len(pending)


def _evaluate_new_readings(patient, rules, pending, now) -> list[tuple[Rule, Evaluation]]:
    by_metric: dict[str, list[Reading]] = defaultdict(list)
    for reading in pending:
        by_metric[reading.metric].append(reading)
    stale_before = now - settings.VIGIL_STALE_READING_AGE
    outcomes = []
    for metric, new in by_metric.items():
        metric_rules = [rule for rule in rules if rule.metric == metric]
        if not metric_rules:
            continue
        # A missing-data rule looks only at the latest reading, which a window starting at
        # the oldest new reading always holds; its lookback (48 h: ~576 rows for a CGM) is
        # for the scheduled check. Loading it for every live CGM reading tripled the
        # evaluation (benchmarks/evaluate_profile.py --shape cgm).
        lookback = max(
            (
                KINDS[rule.kind].lookback(rule.parameters)
                for rule in metric_rules
                if rule.kind != "missing_data"
            ),
            default=timedelta(0),
        )
        if lookback:
            history = list(
                Reading.objects.filter(
                    patient_id=patient.pk,
                    metric=metric,
                    measured_at__gte=min(r.measured_at for r in new) - lookback,
                ).order_by("measured_at", "id")
            )
        else:
            # Only single-reading kinds (thresholds; a CGM's live glucose): the new readings
            # are the whole window. A reading measured later but evaluated earlier already
            # raised or cleared its alert, and the lifecycle ignores a clearing older than
            # the alert's last trigger.
            history = new
        fresh = [reading for reading in new if reading.measured_at >= stale_before]
        planned = []
        if metric == Metric.DOSE and any(_is_taking_rate(rule) for rule in metric_rules):
            planned = planned_doses(patient_id=patient.pk, since=now - lookback, now=now)
        for rule in metric_rules:
            suppress = rule.kind in READING_KINDS_SUPPRESSED_WHEN_STALE
            context = Context(
                now=now,
                zone=patient.zone,
                unit=unit_of(metric),
                new=fresh if suppress else new,
                history=history,
                planned_doses=planned,
            )
            outcomes.append((rule, KINDS[rule.kind].evaluate(rule, context)))
            if rule.kind == "missing_data":
                _push_missing_data_deadline(rule, max(r.measured_at for r in new), now)
    return outcomes


def _is_taking_rate(rule: Rule) -> bool:
    return rule.kind == "adherence" and rule.parameters.get("mode") == TAKING_RATE


def evaluate_dose_adherence(*, patient_id: int, now: datetime) -> list[Raised]:
    """Evaluate the patient's dose taking-rate rules when a planned dose was missed: no
    reading arrives to do it, and a patient who stops logging must still fall below.

    Called by the reminder sweep's miss handling, once per missed slot, inside the claim of
    that slot. It does not take the patient's evaluation lock: the sweep holds the slot's row,
    which an evaluation holding that lock may be waiting for (fulfil_slots); raise_alert keeps
    one unresolved alert per group by itself. Writes: alerts (through alerts.lifecycle).
    Enqueues after commit: notification routing of the alerts someone must hear about.
    """
    rules = [
        rule
        for rule in Rule.objects.filter(
            patient_id=patient_id, active=True, kind="adherence", metric=Metric.DOSE
        ).select_related("patient__care_team")
        if _is_taking_rate(rule)
    ]
    if not rules:
        return []
    patient = rules[0].patient
    lookback = max(KINDS[rule.kind].lookback(rule.parameters) for rule in rules)
    history = list(
        Reading.objects.filter(
            patient_id=patient_id, metric=Metric.DOSE, measured_at__gt=now - lookback
        ).order_by("measured_at", "id")
    )
    context = Context(
        now=now,
        zone=patient.zone,
        unit="",
        new=[],
        history=history,
        planned_doses=planned_doses(patient_id=patient_id, since=now - lookback, now=now),
    )
    with transaction.atomic():
        outcomes = [(rule, taking_rate(rule, context)) for rule in rules]
        raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        route_after_commit(raised)
    return raised


def _push_missing_data_deadline(rule: Rule, latest: datetime, now: datetime) -> None:
    deadline = KINDS["missing_data"].moved_check(rule.parameters, rule.next_check_at, latest, now)
    if deadline is not None:
        Rule.objects.filter(pk=rule.pk).update(next_check_at=deadline)
