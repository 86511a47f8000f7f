"""Evaluation of stored readings against the patient's own rules.

The database row is the outbox: `evaluated_at IS NULL` means "still to do", whatever happened
to the task meant to do it, and the sweep re-enqueues what waits too long. One evaluation
holds a per-patient transaction lock, loads the patient's rules once and each metric's
window once, runs the pure rule kinds, and writes its alerts and `evaluated_at` in the same
transaction: evaluating a reading twice, or two workers on one patient, changes nothing more
than one evaluation would.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alerts.lifecycle import UNRESOLVED, Raised, Trigger, mark_condition_cleared, raise_alert
from alerts.models import Alert, Silence
from config.celery import enqueue_on_commit
from monitoring.models import Metric, Patient, Reading, Rule, Severity
from monitoring.rules import KINDS, is_scheduled
from monitoring.rules.adherence import TAKING_RATE, taking_rate
from monitoring.rules.base import Context, Evaluation, Finding
from monitoring.schedules import fulfil_slots, planned_doses
from monitoring.units import metric_units

logger = logging.getLogger(__name__)

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


def lock_patient(patient_id: int) -> None:
    """Serialise evaluations of one patient until the transaction ends (PostgreSQL); SQLite
    already serialises writers (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7301, patient_id])


def unit_of(metric: str) -> str:
    """The canonical unit as shown to clinicians (INR and doses have none)."""
    units = metric_units().get(metric)
    if units is None or units.canonical_unit == "{INR}":
        return ""
    return units.canonical_unit


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
        _route_after_commit(raised)
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
        _route_after_commit(raised)
    return raised


def _push_missing_data_deadline(rule: Rule, latest: datetime, now: datetime) -> None:
    deadline = KINDS["missing_data"].moved_check(rule.parameters, rule.next_check_at, latest, now)
    if deadline is not None:
        Rule.objects.filter(pk=rule.pk).update(next_check_at=deadline)


def apply_outcomes(
    *, patient: Patient, outcomes: list[tuple[Rule, Evaluation]], now: datetime
) -> list[Raised]:
    """Turn rule evaluations into alert changes: group, inhibit, raise, clear."""
    findings: dict[str, list[tuple[Rule, Finding]]] = defaultdict(list)
    cleared: dict[str, datetime] = {}
    for rule, evaluation in outcomes:
        for finding in evaluation.findings:
            findings[rule.group].append((rule, finding))
        if evaluation.cleared_at is not None:
            cleared[rule.group] = max(
                cleared.get(rule.group, evaluation.cleared_at), evaluation.cleared_at
            )
    unresolved = _unresolved_alerts(patient) if findings or cleared else []
    findings = _inhibit(findings, unresolved)
    raised = [
        raise_alert(patient=patient, trigger=_trigger(group_findings), now=now)
        for group_findings in findings.values()
    ]
    clear = [group for group in cleared if group not in findings]
    for group in _clearable(clear, unresolved):
        mark_condition_cleared(patient_id=patient.pk, group=group, at=cleared[group])
    return _unsilenced(patient, raised, now)


def _unresolved_alerts(patient) -> list[tuple[str, str, str, datetime | None]]:
    """(group, metric, severity, condition_cleared_at) of the patient's unresolved alerts: one
    query serving both inhibition and clearing. Evaluations of readings hold the patient's
    lock, so no other evaluation changes these meanwhile; the reminder sweep raises only
    adherence alerts without it (warnings and info: they inhibit nothing), and
    raise_alert and mark_condition_cleared keep one unresolved alert per group and re-check
    it under its row lock themselves."""
    return list(
        Alert.objects.filter(patient=patient, status__in=UNRESOLVED).values_list(
            "dedupe_key", "metric", "severity", "condition_cleared_at"
        )
    )


def _clearable(groups: list[str], unresolved) -> list[str]:
    """The groups, in order, with an unresolved alert not yet marked cleared.

    Most cleared groups have no such alert (a normal glucose clears three groups), and asking
    mark_condition_cleared for each (savepoint, row lock) was ~40 % of an evaluation
    (benchmarks/evaluate_profile.py).
    """
    waiting = {group for group, _, _, cleared_at in unresolved if cleared_at is None}
    return [group for group in groups if group in waiting]


def _inhibit(findings, unresolved):
    """A critical finding, or an unresolved critical alert, on a metric suppresses warnings on
    that metric from other groups, as Alertmanager's inhibition rules do."""
    critical = {
        (rule.metric, group)
        for group, group_findings in findings.items()
        for rule, finding in group_findings
        if finding.severity == Severity.CRITICAL
    }
    critical |= {
        (metric, group)
        for group, metric, severity, _ in unresolved
        if severity == Severity.CRITICAL
    }
    kept = {}
    for group, group_findings in findings.items():
        metric = group_findings[0][0].metric
        worst = max((f.severity for _, f in group_findings), key=Severity.rank)
        inhibited = worst == Severity.WARNING and any(
            other_metric == metric and other_group != group
            for other_metric, other_group in critical
        )
        if not inhibited:
            kept[group] = group_findings
    return kept


def _trigger(group_findings: list[tuple[Rule, Finding]]) -> Trigger:
    rule, worst = max(group_findings, key=lambda pair: Severity.rank(pair[1].severity))
    # One occurrence per triggering reading (its time), not per rule: a weighing that is both
    # a 1-day and a 7-day gain, or a heart rate above both limits, happened once.
    occurrences = {finding.triggered_at for _, finding in group_findings}
    return Trigger(
        rule=rule,
        severity=worst.severity,
        title=worst.title,
        detail=worst.detail,
        first_at=min(finding.triggered_at for _, finding in group_findings),
        last_at=max(finding.triggered_at for _, finding in group_findings),
        occurrences=len(occurrences),
        values=worst.values,
        reading_ids=list(worst.reading_ids),
    )


def _unsilenced(patient, raised: list[Raised], now: datetime) -> list[Raised]:
    """A silenced alert is still recorded; nobody is notified about it."""
    if not any(item.notify for item in raised):
        return raised
    silences = list(Silence.objects.filter(patient=patient, starts_at__lte=now, ends_at__gt=now))
    for item in raised:
        if any(s.covers(rule_id=item.alert.rule_id, at=now) for s in silences):
            item.notify = False
    return raised


def _route_after_commit(raised: list[Raised]) -> None:
    from alerts.tasks import route_alert_event_task

    for item in raised:
        if item.notify and item.event is not None:
            enqueue_on_commit(route_alert_event_task, item.event.pk)


# --- Scheduled rules (missing data, summaries) ---------------------------------------------


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
        outcomes = []
        for rule in rules:
            since = now - KINDS[rule.kind].lookback(rule.parameters)
            history = list(
                Reading.objects.filter(
                    patient_id=patient_id,
                    metric=rule.metric,
                    measured_at__gte=since,
                    measured_at__lte=now,
                ).order_by("measured_at", "id")
            )
            context = Context(
                now=now, zone=patient.zone, unit=unit_of(rule.metric), new=[], history=history
            )
            outcomes.append((rule, KINDS[rule.kind].evaluate(rule, context)))
            Rule.objects.filter(pk=rule.pk).update(next_check_at=_next_check(rule, history, now))
        raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        _route_after_commit(raised)
    return sum(len(evaluation.findings) for _, evaluation in outcomes)


def _next_check(rule: Rule, history, now: datetime) -> datetime:
    if rule.kind == "missing_data":
        latest = history[-1].measured_at if history else None
        if latest is None:
            return now + timedelta(hours=rule.parameters["silent_hours"])
        return KINDS["missing_data"].next_check(rule.parameters, latest, now)
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
    from monitoring.tasks import evaluate_scheduled_rules_task

    claimed = claim_due_scheduled_rules(now=now)
    for patient_id, rule_ids in claimed.items():
        enqueue_on_commit(evaluate_scheduled_rules_task, patient_id, rule_ids)
    return len(claimed)


# --- The outbox sweep ---------------------------------------------------------------------


def enqueue_unevaluated_readings(
    *, now: datetime | None = None, after_patient_id: int | None = None
) -> int:
    """Enqueue an evaluation for each patient with readings waiting longer than the grace.

    Enqueues, after commit: one evaluation task per such patient, at most VIGIL_SWEEP_BATCH
    of them in patient id order after `after_patient_id`, and, when more remain, the sweep
    itself again to carry on after the last of them. Returns the number of patients enqueued.
    """
    from monitoring.tasks import enqueue_unevaluated_readings_task, evaluate_patient_readings_task

    now = now or timezone.now()
    cutoff = now - settings.VIGIL_EVALUATION_GRACE
    limit = settings.VIGIL_SWEEP_BATCH
    pending = Reading.objects.filter(evaluated_at__isnull=True, received_at__lt=cutoff)
    if after_patient_id is not None:
        # Carry on after the previous batch rather than start over: that batch may still be
        # pending (in flight, or failing every time), and would be picked again and again.
        pending = pending.filter(patient_id__gt=after_patient_id)
    patient_ids = list(
        pending.order_by("patient_id").values_list("patient_id", flat=True).distinct()[: limit + 1]
    )
    batch, more = patient_ids[:limit], len(patient_ids) > limit

    def publish() -> None:
        # One hook for the batch, and a named function: Django logs a failed robust hook by
        # its __qualname__, which a functools.partial lacks (the AttributeError would escape).
        # With the broker down the first failure ends the batch; the next sweep retries.
        for patient_id in batch:
            evaluate_patient_readings_task.delay(patient_id)
        if more:
            enqueue_unevaluated_readings_task.delay(after_patient_id=batch[-1])

    if batch:
        transaction.on_commit(publish, robust=True)
        logger.info("evaluation sweep enqueued %s patients", len(batch))
    return len(batch)
