"""Scheduled rules (missing data, summaries): claimed by the sweep, evaluated per patient."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper
from django.utils import timezone

from config.celery import enqueue_on_commit
from monitoring.evaluation.locking import lock_patient, unit_of
from monitoring.evaluation.outcomes import apply_outcomes, route_after_commit
from monitoring.models import Metric, Patient, Reading, Rule
from monitoring.rules import kind_of
from monitoring.rules.base import Context, Kind
from monitoring.summaries import sensor_glucose


def evaluate_scheduled_rules(
    *, patient_id: int, rule_ids: list[int], now: datetime | None = None
) -> int:
    """Evaluate the given scheduled rules of one patient against their windows.

    Writes: alerts (through alerts.lifecycle), Rule.next_check_at. Enqueues after commit:
    notification routing for alerts someone must hear about. Returns the number of findings.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lock_patient(patient_id)
        patient = Patient.objects.select_related("care_team").get(pk=patient_id)
        rules = list(Rule.objects.filter(patient_id=patient_id, id__in=rule_ids, active=True))
        # One load per metric, of the widest window its rules need, as tuples: five CGM
        # summary rules used to load the same 14 days five times as model objects (90 % of a
        # 0.5 s run building rows, issue 15). Each rule then reads its own window of it.
        loaded = {
            metric: _load_windows(patient_id, metric, [r for r in rules if r.metric == metric], now)
            for metric in {rule.metric for rule in rules}
        }
        outcomes = []
        for rule in rules:
            kind = kind_of(rule)
            history = rule_window(
                loaded[rule.metric],
                since=now - kind.lookback(rule.parameters),
                reading_before=kind.reading_before_window,
            )
            context = Context(
                now=now, zone=patient.zone, unit=unit_of(rule.metric), new=[], history=history
            )
            outcomes.append((rule, kind.evaluate(rule, context)))
            Rule.objects.filter(pk=rule.pk).update(
                next_check_at=_next_check(rule, kind, history, now)
            )
        raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        route_after_commit(raised)
    return sum(len(evaluation.findings) for _, evaluation in outcomes)


# What a rule kind reads of a reading (monitoring.rules.base.ReadingLike).
READING_FIELDS = ("id", "metric", "measured_at", "value", "systolic", "diastolic")


def _load_windows(patient_id: int, metric: str, rules: list[Rule], now: datetime) -> list:
    kinds = [kind_of(rule) for rule in rules]
    return window_history(
        patient_id=patient_id,
        metric=metric,
        since=now
        - max(kind.lookback(rule.parameters) for kind, rule in zip(kinds, rules, strict=True)),
        now=now,
        reading_before=any(kind.reading_before_window for kind in kinds),
    )


def rule_window(readings: list, *, since: datetime, reading_before: bool) -> list:
    """One rule's part of a metric's loaded window (oldest first): its readings from `since`
    on and, with `reading_before`, the latest one before `since` if loaded."""
    start = bisect_left(readings, since, key=lambda reading: reading.measured_at)
    if reading_before and start > 0:
        start -= 1
    return readings[start:]


def window_history(
    *, patient_id: int, metric: str, since: datetime, now: datetime, reading_before: bool
) -> list:
    """The patient's readings of the metric in [since, now], oldest first, as named tuples of
    READING_FIELDS; with `reading_before`, preceded by the latest reading before `since` (an
    INR time in range interpolates from it into the window). Bounded: the window, plus one
    row found by a backward scan of reading_patient_metric_time."""
    readings = Reading.objects.filter(patient_id=patient_id, metric=metric)
    fields = READING_FIELDS
    if metric == Metric.GLUCOSE:
        # Whether a CGM sensor measured it: the CGM summary rules count sensor readings only,
        # never fingersticks (issue 14.3; monitoring.summaries.sensor_glucose).
        readings = readings.annotate(
            sensor=ExpressionWrapper(sensor_glucose(), output_field=BooleanField())
        )
        fields = (*READING_FIELDS, "sensor")
    history = list(
        readings.filter(measured_at__gte=since, measured_at__lte=now)
        .order_by("measured_at", "id")
        .values_list(*fields, named=True)
    )
    if reading_before:
        before = (
            readings.filter(measured_at__lt=since)
            .order_by("-measured_at", "-id")
            .values_list(*fields, named=True)
            .first()
        )
        if before is not None:
            history.insert(0, before)
    return history


def _next_check(rule: Rule, kind: Kind, history, now: datetime) -> datetime:
    """The deadline the kind sets from the latest reading (missing data); a summary's next
    check after the interval."""
    if kind.next_check is not None:
        latest = history[-1].measured_at if history else None
        return kind.next_check(rule.parameters, latest, now)
    return now + settings.VIGIL_SUMMARY_CHECK_INTERVAL


def claim_due_scheduled_rules(*, now: datetime | None = None) -> dict[int, list[int]]:
    """Claim scheduled rules whose check is due, by moving their deadline forward in the same
    statement that selects them (two beats or sweeps never claim one rule twice).
    Returns {patient_id: [rule ids]}."""
    now = now or timezone.now()
    claimed: dict[int, list[int]] = defaultdict(list)
    with transaction.atomic():
        due = list(
            Rule.objects.select_for_update(skip_locked=True)
            .filter(active=True, next_check_at__lte=now)
            .order_by("next_check_at")
            .values_list("id", "patient_id")[: settings.VIGIL_SWEEP_BATCH]
        )
        Rule.objects.filter(id__in=[rule_id for rule_id, _ in due]).update(
            next_check_at=now + settings.VIGIL_SUMMARY_CHECK_INTERVAL
        )
    for rule_id, patient_id in due:
        claimed[patient_id].append(rule_id)
    return dict(claimed)


def enqueue_due_scheduled_rules(*, now: datetime | None = None) -> int:
    """Enqueues one scheduled-rules evaluation per patient with due rules; returns how many."""
    claimed = claim_due_scheduled_rules(now=now)
    for patient_id, rule_ids in claimed.items():
        enqueue_on_commit("monitoring.tasks.evaluate_scheduled_rules_task", patient_id, rule_ids)
    return len(claimed)
