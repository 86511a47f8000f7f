"""From rule evaluations to alert changes: group, inhibit, raise, clear; route after commit."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from alerts.lifecycle import UNRESOLVED, Raised, Trigger, mark_condition_cleared, raise_alert
from alerts.models import Alert, Silence
from config.celery import enqueue_on_commit
from monitoring.models import Patient, Rule, Severity
from monitoring.rules.base import Evaluation, Finding

__all__ = ["Raised", "apply_outcomes", "route_after_commit"]


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


def route_after_commit(raised: list[Raised]) -> None:
    from alerts.tasks import route_alert_event_task

    for item in raised:
        if item.notify and item.event is not None:
            enqueue_on_commit(route_alert_event_task, item.event.pk)
