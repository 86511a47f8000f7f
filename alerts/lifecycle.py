"""The alert lifecycle: raise, re-trigger, clear, acknowledge, assign, note, resolve,
escalate, expire.

This module is the only code that writes Alert and AlertEvent rows. Each change writes an
AlertEvent in the same transaction; changes that someone must hear about (a new alert, a
higher severity) return `notify=True` and the caller routes them after commit. Callers
decide *which* alerts to change (evaluation's findings, the escalation sweep's overdue
alerts, a person's click); this module decides *how* each one changes.

open → acknowledged → resolved. A new finding of an unresolved alert adds an occurrence.
The alert always tells the worst finding it has absorbed: a worse one — a higher severity, or
a further tier of the same problem at the same severity (INR > 10 after INR ≥ 5) — moves the
title, detail and values to it, records an event, re-opens an acknowledged alert and is
routed as a new alert is; a reading further past the same limit moves the values only; a
lesser finding only counts. Only a person resolves a warning or critical alert; info
alerts expire on their own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.models import (
    PERSON_REASONS,
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    CareTeamMembership,
    ResolutionReason,
)
from config.statements import CompiledQuery
from monitoring.models import Rule, Severity

UNRESOLVED = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class InvalidTransition(Exception):
    """The alert is not in a state that allows this change."""


class InvalidAssignee(Exception):
    """The assignee does not triage the patient's alerts (not an active nurse or physician
    of the patient's care team)."""


class EmptyNote(ValueError):
    """A note on an alert says nothing."""


@dataclass
class Trigger:
    """What the rules found for one alert group in one evaluation."""

    rule: Rule
    severity: str
    title: str
    detail: str
    first_at: datetime
    last_at: datetime
    occurrences: int = 1
    values: dict = field(default_factory=dict)
    reading_ids: list[int] = field(default_factory=list)
    # The alert group (dedupe key); the rule's group unless the finding went to one side of
    # a two-sided rule (monitoring/problems.py).
    group: str = ""
    # Where the worst finding lies within its problem (rules.base.Placement): larger is worse.
    tier: float | None = None
    extremity: float | None = None

    @property
    def key(self) -> str:
        return self.group or self.rule.group


@dataclass
class Raised:
    alert: Alert
    event: AlertEvent | None
    notify: bool


def _event(alert: Alert, kind: str, *, at: datetime, actor=None, note: str = "", **data):
    return AlertEvent.objects.create(
        alert=alert, kind=kind, actor=actor, at=at, note=note, data=data
    )


def _deadlines(alert: Alert, now: datetime) -> None:
    """Escalation deadline for warning/critical, expiry for info."""
    delay = alert.escalation_delay(alert.patient.care_team)
    alert.next_escalation_at = now + delay if delay and alert.status == AlertStatus.OPEN else None
    alert.expires_at = (
        alert.last_triggered_at + settings.VIGIL_INFO_ALERT_TTL
        if alert.severity == Severity.INFO
        else None
    )


def raise_alert(
    *,
    patient,
    trigger: Trigger,
    now: datetime | None = None,
    unresolved_groups: Collection[str] | None = None,
) -> Raised:
    """Open an alert for the trigger's group, or fold the trigger into the unresolved one.

    Writes: Alert (insert or update), AlertEvent (raised / severity_raised).
    The partial unique index decides between two racing raisers: the loser's insert fails
    and it updates the winner's row instead. `unresolved_groups`, the patient's unresolved
    alert groups as the caller read them in this transaction (the evaluation, under the
    patient's lock): a group not among them is inserted without looking for its alert first
    (a raiser that came meanwhile still loses only the insert, and folds).
    """
    now = now or timezone.now()
    key = trigger.key
    # Inside the caller's transaction (an evaluation), no savepoint of its own: an error
    # here aborts the evaluation's transaction anyway, which evaluates again reading by
    # reading. The insert keeps its savepoint, the one a lost race rolls back to.
    with transaction.atomic(savepoint=False):
        known_absent = unresolved_groups is not None and key not in unresolved_groups
        alert = None if known_absent else _locked_unresolved(patient.pk, key)
        if alert is None:
            try:
                with transaction.atomic():
                    alert = _create(patient, trigger, now)
            except IntegrityError:
                alert = _locked_unresolved(patient.pk, key)
                if alert is None:
                    raise
            else:
                event = _event(
                    alert,
                    AlertEventKind.RAISED,
                    at=now,
                    severity=alert.severity,
                    rule_version=trigger.rule.version,
                )
                return Raised(alert, event, notify=True)
        return _fold(alert, trigger, now)


def _locked_unresolved(patient_id: int, key: str) -> Alert | None:
    found = _locked_unresolved_query(patient_id, key)
    return found[0] if found else None


# Locks the alert's row only (OF self): its patient and care team rows are read, not changed,
# and locking the team's row held every other fold of the team's patients until commit.
_locked_unresolved_query = CompiledQuery(
    lambda patient_id, key: (
        Alert.objects.select_for_update(of=("self",))
        .select_related("patient__care_team")
        .filter(patient_id=patient_id, dedupe_key=key, status__in=UNRESOLVED)
        .order_by("pk")[:1]
    ),
    params=lambda patient_id, key: [key, patient_id, *UNRESOLVED],
)


def _create(patient, trigger: Trigger, now: datetime) -> Alert:
    alert = Alert(
        patient=patient,
        rule=trigger.rule,
        dedupe_key=trigger.key,
        metric=trigger.rule.metric,
        kind=trigger.rule.kind,
        severity=trigger.severity,
        title=trigger.title,
        detail=trigger.detail,
        occurrences=trigger.occurrences,
        first_triggered_at=trigger.first_at,
        last_triggered_at=trigger.last_at,
        rule_version=trigger.rule.version,
        rule_parameters=trigger.rule.parameters,
        values=trigger.values,
        reading_ids=trigger.reading_ids,
        tier=trigger.tier,
        extremity=trigger.extremity,
    )
    _deadlines(alert, now)
    alert.save()
    return alert


def _worse(trigger: Trigger, alert: Alert) -> tuple[bool, bool]:
    """(a worse finding someone must hear of, a reading further past the same limit)."""
    higher = Severity.rank(trigger.severity) - Severity.rank(alert.severity)
    if higher:
        return higher > 0, False
    if _greater(trigger.tier, alert.tier):
        return True, False
    return False, trigger.tier == alert.tier and _greater(trigger.extremity, alert.extremity)


def _greater(new: float | None, old: float | None) -> bool:
    return new is not None and (old is None or new > old)


def _fold(alert: Alert, trigger: Trigger, now: datetime) -> Raised:
    worse, further = _worse(trigger, alert)
    alert.occurrences = F("occurrences") + trigger.occurrences
    alert.last_triggered_at = max(alert.last_triggered_at, trigger.last_at)
    # A backfilled reading (a phone that synced late) shows the problem began earlier. The
    # escalation clock stays: it runs from when the team could first have known.
    alert.first_triggered_at = min(alert.first_triggered_at, trigger.first_at)
    if alert.condition_cleared_at is not None and trigger.last_at >= alert.condition_cleared_at:
        # It holds again. A finding measured before the clearing reading (synced late) does
        # not undo the clearing: the later reading still says the condition is gone.
        alert.condition_cleared_at = None
    if trigger.rule.pk == alert.rule_id:
        # Its rule fired again, perhaps as a clinician tailored it since: record that version.
        alert.rule_version = trigger.rule.version
        alert.rule_parameters = trigger.rule.parameters
    if further:
        # The same limit, passed further (INR 9 after INR 8.2): the alert shows the worst
        # value; nobody needs paging again for it.
        alert.detail = trigger.detail
        alert.values = trigger.values
        alert.reading_ids = trigger.reading_ids
        alert.extremity = trigger.extremity
    event = None
    if worse:
        previous = {"severity": alert.severity, "title": alert.title, "values": alert.values}
        _take_worst(alert, trigger)
        # Someone acknowledged a lesser problem; the worse one needs a person again, with
        # the full escalation policy behind it (the acknowledgement stays in the events).
        alert.status = AlertStatus.OPEN
        alert.acknowledged_by = None
        alert.acknowledged_at = None
        alert.repeats = 0
        alert.escalation_level = 1
        _deadlines(alert, now)
        raised = previous["severity"] != alert.severity
        event = _event(
            alert,
            AlertEventKind.SEVERITY_RAISED if raised else AlertEventKind.WORSENED,
            at=now,
            previous=previous["severity"],
            severity=alert.severity,
            previous_title=previous["title"],
            title=alert.title,
            previous_values=previous["values"],
            values=alert.values,
            rule_version=trigger.rule.version,
        )
    elif alert.severity == Severity.INFO:
        _deadlines(alert, now)
    alert.save()
    alert.refresh_from_db(fields=["occurrences"])
    return Raised(alert, event, notify=worse)


def _take_worst(alert: Alert, trigger: Trigger) -> None:
    alert.severity = trigger.severity
    alert.rule = trigger.rule
    alert.kind = trigger.rule.kind
    alert.title = trigger.title
    alert.detail = trigger.detail
    alert.values = trigger.values
    alert.reading_ids = trigger.reading_ids
    alert.tier = trigger.tier
    alert.extremity = trigger.extremity
    alert.rule_version = trigger.rule.version
    alert.rule_parameters = trigger.rule.parameters


def mark_condition_cleared(*, patient_id: int, group: str, at: datetime) -> Alert | None:
    """Note that the unresolved alert's condition no longer holds (it stays for a person to
    resolve). Writes: Alert.condition_cleared_at, AlertEvent (condition_cleared)."""
    with transaction.atomic():
        alert = _locked_unresolved(patient_id, group)
        # A reading measured at or before the last trigger says nothing about whether the
        # condition still holds (a reading of the same minute may be the one that fired).
        if alert is None or alert.condition_cleared_at is not None or at <= alert.last_triggered_at:
            return None
        alert.condition_cleared_at = at
        alert.save(update_fields=["condition_cleared_at"])
        _event(alert, AlertEventKind.CONDITION_CLEARED, at=at)
        return alert


def acknowledge_alert(*, alert: Alert, user, note: str = "", now: datetime | None = None) -> Alert:
    """open → acknowledged; acknowledging an acknowledged alert changes nothing but keeps the
    note. Writes: Alert, AlertEvent (acknowledged, or a note). Stops escalation."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
            status=AlertStatus.ACKNOWLEDGED,
            acknowledged_by=user,
            acknowledged_at=now,
            next_escalation_at=None,
            # Whoever acknowledges owns it, unless someone was assigned already.
            assignee=Coalesce(F("assignee"), Value(user.pk)),
        )
        alert.refresh_from_db()
        if changed:
            _event(alert, AlertEventKind.ACKNOWLEDGED, at=now, actor=user, note=note)
        elif alert.status == AlertStatus.RESOLVED:
            raise InvalidTransition("This alert is resolved.")
        elif note:
            _event(alert, AlertEventKind.NOTE, at=now, actor=user, note=note)
    return alert


def resolve_alert(
    *, alert: Alert, user, note: str = "", reason: str = "", now: datetime | None = None
) -> Alert:
    """open or acknowledged → resolved, with why (`reason`, one of PERSON_REASONS; blank
    only where a caller may omit it: the API's contract body is {"note"}).
    Writes: Alert (resolution_reason too), AlertEvent (resolved, data {reason})."""
    if reason and reason not in dict(PERSON_REASONS):
        raise ValueError(f"not a resolution reason: {reason!r}")
    now = now or timezone.now()
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk, status__in=UNRESOLVED).update(
            status=AlertStatus.RESOLVED,
            resolved_by=user,
            resolved_at=now,
            resolution_reason=reason,
            next_escalation_at=None,
            expires_at=None,
        )
        alert.refresh_from_db()
        if not changed:
            raise InvalidTransition("This alert is already resolved.")
        data = {"reason": reason} if reason else {}
        _event(alert, AlertEventKind.RESOLVED, at=now, actor=user, note=note, **data)
    return alert


def may_be_assigned(alert: Alert, assignee) -> bool:
    """Whether `assignee` may own the alert: an active nurse or physician of the patient's
    care team (coordinators do not triage; MembershipQuerySet.on_call)."""
    return (
        CareTeamMembership.objects.on_call()
        .filter(team_id=alert.patient.care_team_id, user_id=assignee.pk)
        .exists()
    )


def assign_alert(*, alert: Alert, user, assignee, now: datetime | None = None) -> Alert:
    """Give the unresolved alert to `assignee`: an active nurse or physician of the patient's
    team, or the acting user themself (who may triage it: the caller asked). Refuses anyone
    else (InvalidAssignee). Writes: Alert.assignee, AlertEvent (assigned, actor = who
    assigned, data {assignee, previous_assignee})."""
    now = now or timezone.now()
    if assignee.pk != user.pk and not may_be_assigned(alert, assignee):
        raise InvalidAssignee(f"{assignee.get_username()} does not triage this patient's alerts.")
    with transaction.atomic():
        locked = (
            Alert.objects.select_for_update()
            .filter(pk=alert.pk, status__in=UNRESOLVED)
            .only("pk", "assignee_id")
            .first()
        )
        if locked is None:
            alert.refresh_from_db()
            raise InvalidTransition("This alert is resolved.")
        Alert.objects.filter(pk=alert.pk).update(assignee=assignee)
        alert.refresh_from_db()
        _event(
            alert,
            AlertEventKind.ASSIGNED,
            at=now,
            actor=user,
            assignee=assignee.pk,
            previous_assignee=locked.assignee_id,
        )
    return alert


def note_alert(*, alert: Alert, user, note: str, now: datetime | None = None) -> AlertEvent:
    """A note in the alert's timeline that changes nothing else: no status, no assignee, no
    escalation. Any alert, a resolved one too (a call back after it was closed).
    Writes: AlertEvent (note)."""
    note = note.strip()
    if not note:
        raise EmptyNote("Write the note.")
    return _event(alert, AlertEventKind.NOTE, at=now or timezone.now(), actor=user, note=note)


def escalate_alert(*, alert: Alert, now: datetime) -> AlertEvent | None:
    """One step of the care team's escalation policy for an open alert past its deadline:
    the next level someone on call holds hears of it; at the top level it is repeated every
    `repeat_minutes`, at most `max_repeats` times, then left open at the top of the queue.

    The caller holds the alert's row lock (alerts/escalation.py claims overdue alerts with
    SKIP LOCKED), so one overdue deadline escalates once. Writes: Alert (escalation_level,
    repeats, next_escalation_at), AlertEvent (escalated / repeated, data {level, repeat}).
    Returns the event for routing, or None when the repeats are spent.
    """
    team = alert.patient.care_team
    # The next level someone (active) holds: a gap in the numbering (levels 1 and 3) must not
    # cost the alert another delay while it pages the level below again.
    higher = (
        team.memberships.on_call()
        .filter(escalation_level__gt=alert.escalation_level)
        .values_list("escalation_level", flat=True)
    )
    next_level = min(higher, default=None)
    if next_level is not None:
        alert.escalation_level = next_level
        alert.next_escalation_at = now + alert.escalation_delay(team)
        kind = AlertEventKind.ESCALATED
    elif alert.repeats < team.max_repeats:
        alert.repeats += 1
        alert.next_escalation_at = now + timedelta(minutes=team.repeat_minutes)
        kind = AlertEventKind.REPEATED
    else:
        # The loop is bounded: the alert stays open at the top of the queue.
        alert.next_escalation_at = None
        alert.save(update_fields=["next_escalation_at"])
        return None
    alert.save(update_fields=["escalation_level", "repeats", "next_escalation_at"])
    return _event(alert, kind, at=now, level=alert.escalation_level, repeat=alert.repeats)


def mark_events_routed(*, event_ids: list[int], now: datetime) -> int:
    """Claim these events for routing: `routed_at` on those not routed yet, by a conditional
    UPDATE, so that of two routings of one event (a redelivery, the outbox sweep), or of a
    routing and a settling, one wins. Returns how many this call claimed.
    Writes: AlertEvent.routed_at."""
    if not event_ids:
        return 0
    return AlertEvent.objects.filter(pk__in=event_ids, routed_at__isnull=True).update(routed_at=now)


def expire_info_alerts(*, now: datetime | None = None, limit: int = 500) -> int:
    """Resolve info alerts past their expiry (nobody had to act), with Vigil's own reason
    `expired` (a person's reasons are for a person's decisions; the statistics count these
    apart). Writes: Alert, AlertEvent (expired, data {reason})."""
    now = now or timezone.now()
    expired = 0
    with transaction.atomic():
        due = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(~Q(status=AlertStatus.RESOLVED), severity=Severity.INFO, expires_at__lte=now)
            .order_by("expires_at")[:limit]
        )
        for alert in due:
            alert.status = AlertStatus.RESOLVED
            alert.resolved_at = now
            alert.resolution_reason = ResolutionReason.EXPIRED
            alert.expires_at = None
            alert.save(update_fields=["status", "resolved_at", "resolution_reason", "expires_at"])
            _event(alert, AlertEventKind.EXPIRED, at=now, reason=ResolutionReason.EXPIRED)
            expired += 1
    return expired


# --- partition: retention (docs/retention.md) ---------------------------------------------


def delete_resolved_alerts(*, before: datetime, batch: int = 2000) -> int:
    """Delete the alerts resolved before `before`, as the clinic's records policy allows
    (monitoring.retention; never an open or acknowledged alert). Deletes: those alerts, their
    events and notifications (cascade), `batch` alerts per transaction. Returns how many."""
    resolved = Alert.objects.filter(status=AlertStatus.RESOLVED, resolved_at__lt=before)
    deleted = 0
    while ids := list(resolved.order_by("pk").values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            Alert.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted
