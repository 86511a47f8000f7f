"""Evaluation of a patient's new readings (and of dose adherence when a planned dose is
missed): rules of the readings' metrics, their windows, findings handed to outcomes."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alerts.models import Alert
from config.celery import enqueue_on_commit
from config.statements import CompiledQuery, hot_cursor, prepares_statements, sent_together
from monitoring.display import format_instant
from monitoring.evaluation.failures import TRANSIENT_ERRORS, mark_evaluation_failed
from monitoring.evaluation.locking import lock_patient, lock_patients, unit_of
from monitoring.evaluation.outcomes import (
    Raised,
    apply_outcomes,
    route_after_commit,
    send_unresolved_alerts,
)
from monitoring.models import Metric, Reading, Rule, Severity
from monitoring.rules import KINDS, ON_READING, ON_SLOT_CLOSING, kind_of, names_running
from monitoring.rules.base import Condition, Conditions, Context, Evaluation
from monitoring.schedules import fulfil_slots, planned_doses, send_active_owners
from monitoring.schedules.slots import may_answer_a_slot

logger = logging.getLogger(__name__)
TITLE_LENGTH = Alert._meta.get_field("title").max_length
# Readings one evaluation takes on; a larger backlog continues in a follow-up task.
MAX_READINGS_PER_RUN = 2000
# Kinds whose findings are about single readings, and so about stale data when the reading is
# older than VIGIL_STALE_READING_AGE (a phone that was offline): such a finding raises an
# alert only when it is critical, marked late with its measured time (review_late_findings).
SINGLE_READING_KINDS = {name for name, kind in KINDS.items() if kind.about_single_readings}
# Kinds evaluated when readings arrive (missing data among them: a reading clears it and
# moves its deadline). Summaries run from the sweep only.
KINDS_ON_READINGS = names_running(ON_READING)


def evaluate_pending_readings(*, patient_id: int, now: datetime | None = None) -> int:
    """Evaluate the patient's readings not yet evaluated; return how many were.

    Writes: alerts (through alerts.lifecycle), Rule.next_check_at of missing-data rules,
    Reading.evaluated_at. Enqueues after commit: a notification routing task per alert that
    someone must hear about, and a follow-up evaluation if the backlog was larger than one run.

    When evaluating the batch raises an unexpected error, its readings are evaluated again one
    at a time, each in its own transaction, and one that still raises is marked failed
    (evaluation.failures) and left unevaluated: one reading holds up neither its siblings nor
    the readings after it. An error about the run (TRANSIENT_ERRORS) is raised for the task
    to retry, nothing marked.
    """
    now = now or timezone.now()
    pending: list[Reading] = []
    more = False
    try:
        with transaction.atomic():
            # In the order received (see _pending_of_patients), evaluated in measured order.
            pending = _locked_pending([patient_id])
            more, pending = len(pending) > MAX_READINGS_PER_RUN, pending[:MAX_READINGS_PER_RUN]
            pending.sort(key=lambda reading: (reading.measured_at, reading.id))
            _evaluate_readings(patient_id, pending, now)
        evaluated = len(pending)
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        if not pending:
            raise  # before any reading was read: nothing to isolate
        logger.warning(
            "evaluation of %s readings of patient %s failed with %s; evaluating them one by one",
            len(pending),
            patient_id,
            type(error).__name__,
        )
        evaluated = _evaluate_one_by_one(patient_id, pending, now)
    if more:
        enqueue_on_commit("monitoring.tasks.evaluate_patient_readings_task", patient_id)
    return evaluated


def evaluate_patients_together(*, patient_ids: list[int], now: datetime | None = None) -> int:
    """Evaluate the pending readings of several patients in one transaction; return how many
    were evaluated. What each patient's evaluation decides is what evaluate_pending_readings
    decides for it alone: the same rules over the same windows, alerts, slots and
    evaluated_at; the patients' locks are held together, until the one commit.

    The statements an evaluation of one live reading makes (the lock, the pending readings,
    the rules, the schedules, the unresolved alerts, the update, the commit) are made once
    for all of them: when the drain finds several patients waiting (a busy system), that is
    where the CPU per reading went (benchmarks/README.md, "Cost per live reading, third
    pass"). One patient, or the embedded SQLite, or a backlog longer than one run takes:
    each patient alone, as before. An unexpected error evaluates each patient alone again
    (each then isolates its own failing reading); an error about the run (TRANSIENT_ERRORS)
    is raised for the task to retry, nothing written.
    """
    patient_ids = sorted(set(patient_ids))
    if len(patient_ids) < 2 or connection.vendor != "postgresql":
        return _each_alone(patient_ids, now)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            pending = _locked_pending(patient_ids)
            if len(pending) > MAX_READINGS_PER_RUN:
                raise _TooManyTogether
            readings_of: dict[int, list[Reading]] = defaultdict(list)
            for reading in pending:
                readings_of[reading.patient_id].append(reading)
            loaded = _load_and_mark(readings_of, now)
            for patient_id, readings in readings_of.items():
                readings.sort(key=lambda reading: (reading.measured_at, reading.id))
                _evaluate_readings(patient_id, readings, now, loaded=loaded[patient_id])
        return len(pending)
    except TRANSIENT_ERRORS:
        raise
    except _TooManyTogether:
        return _each_alone(patient_ids, now)
    except Exception as error:
        logger.warning(
            "evaluation of %s patients together failed with %s; evaluating each alone",
            len(patient_ids),
            type(error).__name__,
        )
        return _each_alone(patient_ids, now)


class _TooManyTogether(Exception):
    """More pending readings than one run takes: each patient alone, in runs."""


def _each_alone(patient_ids: list[int], now: datetime | None) -> int:
    return sum(
        evaluate_pending_readings(patient_id=patient_id, now=now) for patient_id in patient_ids
    )


@dataclass(frozen=True)
class _Loaded:
    """One patient's part of what was loaded for several patients together."""

    rules: list[Rule]
    owners: list  # active schedules and plans its readings may answer
    unresolved: list[tuple]


def _locked_pending(patient_ids: list[int]) -> list[Reading]:
    """Take the patients' evaluation locks, then read their pending readings (at most one
    run's and one more), in one round trip: the lock and the read are sent together
    (sent_together; psycopg's BEGIN goes before them, on its own), PostgreSQL reading the
    rows once it holds the locks."""
    with sent_together():
        lock_patients(patient_ids)
        pending = _pending_of_patients.send(patient_ids)
    return pending.rows()


def _load_and_mark(readings_of: dict[int, list[Reading]], now: datetime) -> dict[int, _Loaded]:
    """The rules, schedules and plans, and unresolved alerts of these patients' readings:
    one query per kind of row for all of them (one patient's or several's); and the readings
    marked evaluated at `now`. In one round trip: the update needs nothing the evaluation
    finds, and takes effect with its alerts, at the commit (or not at all)."""
    if not readings_of:
        return {}
    patient_ids = sorted(readings_of)
    metrics_of = {
        patient_id: {r.metric for r in readings_of[patient_id]} for patient_id in patient_ids
    }
    metrics = sorted(set().union(*metrics_of.values()))
    with sent_together():
        rules = _rules_of_patients.send(patient_ids, metrics)
        owners = send_active_owners(readings_of)
        # Of every patient, not only those with rules of their readings' metrics (most
        # have): sent before the rules are read.
        unresolved = send_unresolved_alerts(patient_ids)
        _mark_evaluated([r for readings in readings_of.values() for r in readings], now)
    rules_of: dict[int, list[Rule]] = defaultdict(list)
    for rule in rules.rows():
        if rule.metric in metrics_of[rule.patient_id]:
            rules_of[rule.patient_id].append(rule)
    owners_of = owners()
    unresolved_of = unresolved()
    return {
        patient_id: _Loaded(
            rules=rules_of[patient_id],
            owners=owners_of[patient_id],
            unresolved=unresolved_of.get(patient_id, []),
        )
        for patient_id in patient_ids
    }


def _evaluate_readings(
    patient_id: int,
    readings: list[Reading],
    now: datetime,
    *,
    loaded: _Loaded | None = None,
) -> None:
    """Evaluate these readings, inside the patient's lock. `loaded`: what _load_and_mark
    loaded for several patients together (their readings marked evaluated then), or None to
    load it, and mark these readings, here."""
    if not readings:
        return
    if loaded is None:
        loaded = _load_and_mark({patient_id: readings}, now)[patient_id]
    rules = loaded.rules
    # In the same transaction: a reading marks its schedule's slot done exactly when it
    # counts as evaluated (re-evaluating changes nothing: a done slot stays done); before
    # the rules, so the dose taking rate counts the dose just taken. A reading dated where
    # no slot can be (a clock reset to 0001-01-01, stored before ingest checked) answers none.
    fulfil_slots(
        patient_id=patient_id,
        readings=[
            reading
            for reading in readings
            if all(
                may_answer_a_slot(moment, now=now)
                for moment in (reading.measured_at, reading.scheduled_for)
                if moment is not None
            )
        ],
        owners=loaded.owners,
    )
    raised = []
    if rules:
        patient = rules[0].patient
        outcomes = _evaluate_new_readings(patient, rules, readings, now)
        raised = apply_outcomes(
            patient=patient,
            outcomes=outcomes,
            now=now,
            unresolved=loaded.unresolved,
        )
    route_after_commit(raised)


# --- The statements of every evaluation, compiled once (config/statements.py) -------------

# The patients' (one's, or several's: evaluate_patients_together) ids as one array parameter,
# so one statement serves any number of them. In the order they were received, which the
# partial index reading_unevaluated (patient, received_at) WHERE evaluated_at IS NULL holds:
# a run reads its patients' pending rows only, probed per patient. Ordered by measured time,
# PostgreSQL walked the patient's whole history on reading_patient_time instead (105,850
# rows for none pending, 98 ms, with 243,000 other readings pending).
_pending_of_patients = CompiledQuery(
    lambda patient_ids: Reading.objects.filter(
        patient_id__any=patient_ids,
        evaluated_at__isnull=True,
        evaluation_failed_at__isnull=True,
    ).order_by("patient_id", "received_at", "id")[: MAX_READINGS_PER_RUN + 1],
    params=lambda patient_ids: [patient_ids],
)

# The rules new readings are evaluated against, of their metrics only, with the patient and
# team in the same query: a patient on all five protocols has ~40 rules, a CGM reading
# concerns 6. One compiled statement per number of metrics; in id order, so one patient's
# alerts are raised in one order whoever else is evaluated with it.
_rules_of_patients = CompiledQuery(
    lambda patient_ids, metrics: (
        Rule.objects.filter(
            patient_id__any=patient_ids,
            active=True,
            metric__in=metrics,
            kind__in=KINDS_ON_READINGS,
        )
        .select_related("patient__care_team")
        .order_by("patient_id", "id")
    ),
    params=lambda patient_ids, metrics: [*sorted(KINDS_ON_READINGS), *metrics, patient_ids],
    shape=lambda patient_ids, metrics: len(metrics),
)

_history = CompiledQuery(
    lambda patient_id, metric, since: Reading.objects.filter(
        patient_id=patient_id, metric=metric, measured_at__gte=since
    ).order_by("measured_at", "id"),
    params=lambda patient_id, metric, since: [since, metric, patient_id],
)

# The readings' time span lets PostgreSQL read only the partitions holding them (by id
# alone, every month's partition is probed: docs/retention.md).
_MARK_EVALUATED = (
    f"UPDATE {Reading._meta.db_table} SET evaluated_at = %s "
    "WHERE id = ANY(%s) AND measured_at >= %s AND measured_at <= %s"
)


def _mark_evaluated(readings: list[Reading], now: datetime) -> None:
    measured = [reading.measured_at for reading in readings]
    ids = [reading.id for reading in readings]
    if not prepares_statements():  # SQLite has no arrays; a pooler: Django's own statement
        Reading.objects.filter(
            id__in=ids, measured_at__gte=min(measured), measured_at__lte=max(measured)
        ).update(evaluated_at=now)
        return
    with hot_cursor() as cursor:
        cursor.execute(_MARK_EVALUATED, [now, ids, min(measured), max(measured)])


def _evaluate_one_by_one(patient_id: int, readings: list[Reading], now: datetime) -> int:
    """Evaluate each reading in its own transaction (in measured order, as a batch would);
    mark failed each one whose evaluation raises. Returns how many were evaluated."""
    evaluated = 0
    for reading in readings:
        try:
            with transaction.atomic():
                lock_patient(patient_id)
                # Re-read under the lock: another run may have evaluated it meanwhile.
                still_pending = Reading.objects.filter(
                    pk=reading.pk, evaluated_at__isnull=True, evaluation_failed_at__isnull=True
                ).first()
                if still_pending is not None:
                    _evaluate_readings(patient_id, [still_pending], now)
                    evaluated += 1
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            mark_evaluation_failed(
                reading_id=reading.pk, patient_id=patient_id, error=error, now=now
            )
    return evaluated


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
        # A kind that looks only at the latest reading (missing data), which a window
        # starting at the oldest new reading always holds, loads no history here
        # (Kind.history_on_readings): loading its 48 h for every live CGM reading tripled
        # the evaluation (benchmarks/evaluate_profile.py --shape cgm).
        lookback = max(
            (
                kind_of(rule).lookback(rule.parameters)
                for rule in metric_rules
                if kind_of(rule).history_on_readings
            ),
            default=timedelta(0),
        )
        if lookback:
            history = _history(patient.pk, metric, min(r.measured_at for r in new) - lookback)
        else:
            # Only single-reading kinds (thresholds; a CGM's live glucose): the new readings
            # are the whole window. A reading measured later but evaluated earlier already
            # raised or cleared its alert, and the lifecycle ignores a clearing older than
            # the alert's last trigger.
            history = new
        limits = _limits(metric_rules)
        planned = []
        if any(kind_of(rule).wants_planned_doses(rule.parameters) for rule in metric_rules):
            planned = planned_doses(patient_id=patient.pk, since=now - lookback, now=now)
        for rule in metric_rules:
            kind = kind_of(rule)
            context = Context(
                now=now,
                zone=patient.zone,
                unit=unit_of(metric),
                new=new,
                history=history,
                planned_doses=planned,
                limits=limits,
            )
            evaluation = kind.evaluate(rule, context)
            if kind.about_single_readings:
                evaluation = review_late_findings(evaluation, stale_before, patient.zone)
            outcomes.append((rule, evaluation))
            if kind.moved_check is not None:
                _move_deadline(rule, kind, max(r.measured_at for r in new), now)
    return outcomes


def _limits(rules: list[Rule]) -> tuple[Condition, ...]:
    return tuple(
        condition
        for rule in rules
        if "conditions" in rule.parameters
        for condition in Conditions.from_parameters(rule.parameters).items
    )


def review_late_findings(evaluation: Evaluation, stale_before: datetime, zone) -> Evaluation:
    """Late data is reviewed, not dropped: a finding on a reading measured before
    `stale_before` still raises an alert when it is critical, titled as late with the time
    it was measured, so the team decides what an old value means now; a lesser one raises
    nothing (the reading stays on the patient's page and charts). Clearing is unchanged: the
    lifecycle ignores a clearing measured before the alert's last trigger."""
    findings = []
    for finding in evaluation.findings:
        if finding.triggered_at >= stale_before:
            findings.append(finding)
        elif finding.severity == Severity.CRITICAL:
            measured = f"{finding.triggered_at.astimezone(zone):%Y-%m-%d %H:%M %Z}"
            # The title in the pages' one date format; the values keep the sortable form.
            shown = format_instant(finding.triggered_at, zone)
            findings.append(
                replace(
                    finding,
                    title=f"Late reading, measured {shown}: {finding.title}"[:TITLE_LENGTH],
                    values={**finding.values, "late": True, "measured": measured},
                )
            )
    return replace(evaluation, findings=findings)


def evaluate_dose_adherence(*, patient_id: int, now: datetime) -> list[Raised]:
    """Evaluate the patient's dose rules a missed dose changes (Kind.runs_on_missed_dose: a
    taking rate) on the slot's closing: no reading arrives to do it, and a patient who stops
    logging must still fall below.

    Called by the reminder sweep's miss handling, once per missed slot, inside the claim of
    that slot. It does not take the patient's evaluation lock: the sweep holds the slot's row,
    which an evaluation holding that lock may be waiting for (fulfil_slots); raise_alert keeps
    one unresolved alert per group by itself. Writes: alerts (through alerts.lifecycle).
    Enqueues after commit: notification routing of the alerts someone must hear about.
    """
    rules = [
        rule
        for rule in Rule.objects.filter(
            patient_id=patient_id,
            active=True,
            kind__in=names_running(ON_SLOT_CLOSING),
            metric=Metric.DOSE,
        ).select_related("patient__care_team")
        if kind_of(rule).runs_on_missed_dose(rule.parameters)
    ]
    if not rules:
        return []
    patient = rules[0].patient
    lookback = max(kind_of(rule).lookback(rule.parameters) for rule in rules)
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
        outcomes = [(rule, kind_of(rule).evaluate_slot(rule, context)) for rule in rules]
        raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        route_after_commit(raised)
    return raised


def _move_deadline(rule: Rule, kind, latest: datetime, now: datetime) -> None:
    """The deadline a kind keeps by the clock (missing data), moved by new readings."""
    deadline = kind.moved_check(rule.parameters, rule.next_check_at, latest, now)
    if deadline is not None:
        Rule.objects.filter(pk=rule.pk).update(next_check_at=deadline)
