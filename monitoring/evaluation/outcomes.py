"""From rule evaluations to alert changes: group, inhibit, raise, clear; route after commit."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from alerts.lifecycle import UNRESOLVED, Raised, Trigger, mark_condition_cleared, raise_alert
from alerts.models import Alert
from alerts.notify import settle_without_paging
from alerts.silences import active_silences, covered
from config.celery import enqueue_on_commit
from config.statements import CompiledQuery
from monitoring.models import Patient, Rule, Severity
from monitoring.problems import groups_cleared_by, problem_key, side_group
from monitoring.rules.base import Conditions, Evaluation, Finding

__all__ = [
    "Raised",
    "apply_outcomes",
    "route_after_commit",
    "send_unresolved_alerts",
    "unresolved_alerts_of",
]


def apply_outcomes(
    *,
    patient: Patient,
    outcomes: list[tuple[Rule, Evaluation]],
    now: datetime,
    unresolved: list[tuple[str, str, datetime | None, datetime]] | None = None,
) -> list[Raised]:
    """Turn rule evaluations into alert changes: group, clear, inhibit, raise.

    Findings go to their alert group (a two-sided rule's finding to its side's group).
    Clearing is decided from every finding before inhibition, in measured order: a group is
    clear when a reading that meets none of its rules was measured after its last finding.
    Inhibition then stays inside one clinical problem (monitoring/problems.yaml).
    `unresolved`: the patient's unresolved alerts as unresolved_alerts_of read them in this
    transaction under the patient's lock (several patients evaluated together), or None to
    read them here when needed.
    """
    findings: dict[str, list[tuple[Rule, Finding]]] = defaultdict(list)
    cleared: dict[str, datetime] = {}
    for rule, evaluation in outcomes:
        both_ways = _goes_both_ways(rule)
        for finding in evaluation.findings:
            group = side_group(rule.group, finding.placement.direction, two_sided=both_ways)
            findings[group].append((rule, finding))
        for group, at in _clearings(rule, evaluation, both_ways):
            cleared[group] = max(cleared.get(group, at), at)
    last_found = {
        group: max(finding.triggered_at for _, finding in group_findings)
        for group, group_findings in findings.items()
    }
    clear = {
        group: at
        for group, at in cleared.items()
        if group not in last_found or at > last_found[group]
    }
    if not (findings or clear):
        unresolved = []
    elif unresolved is None:
        unresolved = _unresolved_alerts(patient)
    inhibited = _inhibited(findings, unresolved)
    open_groups = {group for group, _, _, _ in unresolved}
    raised = []
    for group, group_findings in findings.items():
        if group in inhibited and group not in open_groups:
            continue
        item = raise_alert(
            patient=patient,
            trigger=_trigger(group, group_findings),
            now=now,
            unresolved_groups=open_groups,
        )
        if group in inhibited:
            # Its alert was open already: the finding still counts and keeps the alert's
            # state true (not "cleared" while the condition holds), but pages nobody.
            item.notify = False
        raised.append(item)
    waiting = _clearable(unresolved, raised)
    for group, at in clear.items():
        if group in waiting:
            mark_condition_cleared(patient_id=patient.pk, group=group, at=at)
    raised = _unsilenced(patient, raised, now)
    settle_without_paging(
        event_ids=[item.event.pk for item in raised if item.event is not None and not item.notify],
        now=now,
    )
    return raised


def _clearings(rule: Rule, evaluation: Evaluation, both_ways: bool):
    """(group, since when clear) that this rule's evaluation says: per side for a rule on
    both sides of a range."""
    if both_ways and evaluation.cleared_sides:
        for direction, at in evaluation.cleared_sides.items():
            yield side_group(rule.group, direction, two_sided=True), at
    elif evaluation.cleared_at is not None:
        for group in groups_cleared_by(rule.group, two_sided=both_ways):
            yield group, evaluation.cleared_at


def _goes_both_ways(rule: Rule) -> bool:
    """A rule on both sides of a range (`value < low or value > high`)."""
    if "conditions" not in rule.parameters:
        return False
    return Conditions.from_parameters(rule.parameters).goes_both_ways


def _unresolved_alerts(patient) -> list[tuple[str, str, datetime | None, datetime]]:
    """(group, severity, condition_cleared_at, first_triggered_at) of the patient's unresolved
    alerts: one query
    serving both inhibition and clearing. Evaluations of readings hold the patient's lock, so
    no other evaluation changes these meanwhile; the reminder sweep raises only adherence
    alerts without it (warnings and info: they inhibit nothing), and raise_alert and
    mark_condition_cleared keep one unresolved alert per group and re-check it under its row
    lock themselves."""
    return unresolved_alerts_of([patient.pk])[patient.pk]


def unresolved_alerts_of(patient_ids: list[int]) -> dict[int, list[tuple]]:
    """_unresolved_alerts of several patients in one query: {patient id: its list}."""
    return send_unresolved_alerts(patient_ids)()


def send_unresolved_alerts(patient_ids: list[int]) -> Callable[[], dict[int, list[tuple]]]:
    """unresolved_alerts_of, its query sent (CompiledQuery.send: with the others of an
    enclosing sent_together() block); call the result after the block for the alerts."""
    sent = _unresolved_of_patients.send(patient_ids)

    def alerts() -> dict[int, list[tuple]]:
        found: dict[int, list[tuple]] = {patient_id: [] for patient_id in patient_ids}
        for patient_id, *alert in sent.rows():
            found[patient_id].append(tuple(alert))
        return found

    return alerts


_unresolved_of_patients = CompiledQuery(
    lambda patient_ids: Alert.objects.filter(
        patient_id__any=patient_ids,
        status__in=UNRESOLVED,
    ).values_list(
        "patient_id", "dedupe_key", "severity", "condition_cleared_at", "first_triggered_at"
    ),
    params=lambda patient_ids: [patient_ids, *UNRESOLVED],
)


def _clearable(unresolved, raised: list[Raised]) -> set[str]:
    """The groups with an unresolved alert not yet marked cleared, including those raised in
    this evaluation (a batch whose in-range reading follows the one that fired).

    Most cleared groups have no such alert (a normal glucose clears three groups), and asking
    mark_condition_cleared for each (savepoint, row lock) was ~40 % of an evaluation
    (benchmarks/evaluate_profile.py).
    """
    waiting = {group for group, _, cleared_at, _ in unresolved if cleared_at is None}
    return waiting | {item.alert.dedupe_key for item in raised}


def _inhibited(findings, unresolved) -> set[str]:
    """The groups whose findings page nobody: a critical finding, or an unresolved critical
    alert, of a clinical problem inhibits the lesser findings of the problem's other groups,
    as Alertmanager's inhibition rules do (the critical alert has someone's attention
    already). Another problem is never touched: an open very high glucose hides no low one.

    In measured order, as if every reading had arrived when it was measured: a critical
    inhibits what was measured at or after its first finding, not what came before it. So
    an upload of a day's readings raises what a reading-by-reading upload would have (a
    warning measured at 18:11 was raised before the 22:12 crisis, not hidden by it), and the
    alerts do not depend on how a phone batched them.
    """
    critical_since: dict[tuple[str, str], datetime] = {}
    for group, group_findings in findings.items():
        for _, finding in group_findings:
            if finding.severity == Severity.CRITICAL:
                _earliest(critical_since, (problem_key(group), group), finding.triggered_at)
    for group, severity, _, first_triggered_at in unresolved:
        if severity == Severity.CRITICAL:
            _earliest(critical_since, (problem_key(group), group), first_triggered_at)
    inhibited = set()
    for group, group_findings in findings.items():
        problem = problem_key(group)
        worst = max((finding.severity for _, finding in group_findings), key=Severity.rank)
        first_found = min(finding.triggered_at for _, finding in group_findings)
        if worst != Severity.CRITICAL and any(
            other_problem == problem and other_group != group and since <= first_found
            for (other_problem, other_group), since in critical_since.items()
        ):
            inhibited.add(group)
    return inhibited


def _earliest(times: dict, key, at: datetime) -> None:
    times[key] = min(times.get(key, at), at)


def finding_rank(finding: Finding) -> tuple[int, float, float]:
    """How bad a finding is within its problem: severity, then the rule's tier, then how far
    past its limit the reading went (both unknown: least)."""
    placement = finding.placement
    return (
        Severity.rank(finding.severity),
        -math.inf if placement.tier is None else placement.tier,
        -math.inf if placement.extremity is None else placement.extremity,
    )


def _trigger(group: str, group_findings: list[tuple[Rule, Finding]]) -> Trigger:
    rule, worst = max(group_findings, key=lambda pair: finding_rank(pair[1]))
    # One occurrence per triggering reading (its time), not per rule: a weighing that is both
    # a 1-day and a 7-day gain, or a heart rate above both limits, happened once.
    occurrences = {finding.triggered_at for _, finding in group_findings}
    return Trigger(
        rule=rule,
        group=group,
        severity=worst.severity,
        title=worst.title,
        detail=worst.detail,
        # A finding about a run (of missed slots) began before it was found.
        first_at=min(finding.since or finding.triggered_at for _, finding in group_findings),
        last_at=max(finding.triggered_at for _, finding in group_findings),
        occurrences=len(occurrences),
        values=worst.values,
        reading_ids=list(worst.reading_ids),
        tier=worst.placement.tier,
        extremity=worst.placement.extremity,
    )


def _unsilenced(patient, raised: list[Raised], now: datetime) -> list[Raised]:
    """A silenced alert is still recorded; nobody is notified about it."""
    if not any(item.notify for item in raised):
        return raised
    silences = active_silences(patient_id=patient.pk, at=now)
    for item in raised:
        if covered(silences, rule_id=item.alert.rule_id, at=now):
            item.notify = False
    return raised


def route_after_commit(raised: list[Raised]) -> None:
    """Enqueues after commit: the routing of each alert change someone must hear about."""
    for item in raised:
        if item.notify and item.event is not None:
            enqueue_on_commit("alerts.tasks.route_alert_event_task", item.event.pk)
