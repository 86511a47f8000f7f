"""The alert lifecycle: raise, re-trigger, clear, acknowledge, assign, resolve, expire.

This module is the only code that changes an alert. Each change writes an AlertEvent in the
same transaction; changes that someone must hear about (a new alert, a higher severity)
return `notify=True` and the caller routes them after commit.

open → acknowledged → resolved. A new finding of an unresolved alert adds occurrences and
raises the severity if worse (never lowers it); a higher severity re-opens an acknowledged
alert. Only a person resolves a warning or critical alert; info alerts expire on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertEventKind, AlertStatus
from monitoring.models import Rule, Severity

UNRESOLVED = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class InvalidTransition(Exception):
    """The alert is not in a state that allows this change."""


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


def raise_alert(*, patient, trigger: Trigger, now: datetime | None = None) -> Raised:
    """Open an alert for the trigger's group, or fold the trigger into the unresolved one.

    Writes: Alert (insert or update), AlertEvent (raised / severity_raised).
    The partial unique index decides between two racing raisers: the loser's insert fails
    and it updates the winner's row instead.
    """
    now = now or timezone.now()
    key = trigger.rule.group
    with transaction.atomic():
        alert = _locked_unresolved(patient.pk, key)
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
    return (
        Alert.objects.select_for_update()
        .select_related("patient__care_team")
        .filter(patient_id=patient_id, dedupe_key=key, status__in=UNRESOLVED)
        .first()
    )


def _create(patient, trigger: Trigger, now: datetime) -> Alert:
    alert = Alert(
        patient=patient,
        rule=trigger.rule,
        dedupe_key=trigger.rule.group,
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
    )
    _deadlines(alert, now)
    alert.save()
    return alert


def _fold(alert: Alert, trigger: Trigger, now: datetime) -> Raised:
    worse = Severity.rank(trigger.severity) > Severity.rank(alert.severity)
    alert.occurrences = F("occurrences") + trigger.occurrences
    alert.last_triggered_at = max(alert.last_triggered_at, trigger.last_at)
    alert.condition_cleared_at = None
    if not Severity.rank(trigger.severity) < Severity.rank(alert.severity):
        # The values shown stay those of the finding the title and severity describe; a
        # lesser finding in the same group only counts as an occurrence.
        alert.values = trigger.values
        alert.reading_ids = trigger.reading_ids
    if trigger.rule.pk == alert.rule_id:
        # Its rule fired again, perhaps as a clinician tailored it since: record that version.
        alert.rule_version = trigger.rule.version
        alert.rule_parameters = trigger.rule.parameters
    event = None
    if worse:
        previous = alert.severity
        alert.severity = trigger.severity
        alert.rule = trigger.rule
        alert.kind = trigger.rule.kind
        alert.title = trigger.title
        alert.detail = trigger.detail
        alert.rule_version = trigger.rule.version
        alert.rule_parameters = trigger.rule.parameters
        # Someone acknowledged a lesser problem; the worse one needs a person again, with
        # the full escalation policy behind it (the acknowledgement stays in the events).
        alert.status = AlertStatus.OPEN
        alert.acknowledged_by = None
        alert.acknowledged_at = None
        alert.repeats = 0
        _deadlines(alert, now)
        event = _event(
            alert,
            AlertEventKind.SEVERITY_RAISED,
            at=now,
            previous=previous,
            severity=alert.severity,
            rule_version=trigger.rule.version,
        )
    elif alert.severity == Severity.INFO:
        _deadlines(alert, now)
    alert.save()
    alert.refresh_from_db(fields=["occurrences"])
    return Raised(alert, event, notify=worse)


def mark_condition_cleared(*, patient_id: int, group: str, at: datetime) -> Alert | None:
    """Note that the unresolved alert's condition no longer holds (it stays for a person to
    resolve). Writes: Alert.condition_cleared_at, AlertEvent (condition_cleared)."""
    with transaction.atomic():
        alert = _locked_unresolved(patient_id, group)
        if alert is None or alert.condition_cleared_at is not None or at < alert.last_triggered_at:
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


def resolve_alert(*, alert: Alert, user, note: str = "", now: datetime | None = None) -> Alert:
    """open or acknowledged → resolved. Writes: Alert, AlertEvent (resolved)."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk, status__in=UNRESOLVED).update(
            status=AlertStatus.RESOLVED,
            resolved_by=user,
            resolved_at=now,
            next_escalation_at=None,
            expires_at=None,
        )
        alert.refresh_from_db()
        if not changed:
            raise InvalidTransition("This alert is already resolved.")
        _event(alert, AlertEventKind.RESOLVED, at=now, actor=user, note=note)
    return alert


def assign_alert(*, alert: Alert, user, assignee, now: datetime | None = None) -> Alert:
    """Writes: Alert.assignee, AlertEvent (assigned)."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk, status__in=UNRESOLVED).update(assignee=assignee)
        alert.refresh_from_db()
        if not changed:
            raise InvalidTransition("This alert is resolved.")
        _event(alert, AlertEventKind.ASSIGNED, at=now, actor=user, assignee=assignee.pk)
    return alert


def expire_info_alerts(*, now: datetime | None = None, limit: int = 500) -> int:
    """Resolve info alerts past their expiry (nobody had to act). Writes: Alert, AlertEvent."""
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
            alert.expires_at = None
            alert.save(update_fields=["status", "resolved_at", "expires_at"])
            _event(alert, AlertEventKind.EXPIRED, at=now)
            expired += 1
    return expired
