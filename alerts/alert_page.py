"""The alert page: one patient's context for one alert, on one page.

Charts of the alert's metric over the last 14 and 30 days (the patient's own thresholds as
bands, the triggering readings marked), the recent readings, the rules in force with their
source, and the alert's timeline: its events, each with the notifications it caused and
every delivery attempt. Read-only; a fixed handful of queries whatever the alert's history.
Times are the patient's local time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q
from django.utils.safestring import SafeString

from alerts.models import (
    Alert,
    AlertEventKind,
    Notification,
    NotificationAttempt,
    ResolutionReason,
)
from alerts.triage import describe_provenance, display_unit, format_value, local_time
from monitoring.admin import describe_parameters
from monitoring.charts import bands_from_rules, line_chart, multi_line_chart
from monitoring.models import GlucoseContext, Metric, Reading, Rule, Severity
from monitoring.rules import kind_of
from monitoring.units import format_number

# The "last 14 and 30 days": display periods, not clinical numbers.
CHART_DAYS = (14, 30)
RECENT_READINGS = 50


@dataclass(frozen=True)
class RuleRow:
    rule: Rule
    parameters: str
    source: str
    fired: str  # "" unless this rule fired the alert: then which version, with what
    tailored_from: str  # the protocol default, when a clinician changed it


@dataclass(frozen=True)
class ReadingRow:
    at: str
    value: str
    sent: str
    context: str
    source: str
    triggering: bool


@dataclass(frozen=True)
class AttemptRow:
    number: int
    at: str
    outcome: str
    outcome_label: str
    detail: str


@dataclass(frozen=True)
class NotificationRow:
    channel: str
    to: str
    status: str
    status_label: str
    attempts: list[AttemptRow]


@dataclass(frozen=True)
class TimelineEntry:
    at: str
    kind: str
    label: str
    actor: str
    note: str
    details: list[str] = field(default_factory=list)
    notifications: list[NotificationRow] = field(default_factory=list)


def alert_page_context(*, alert: Alert, now: datetime) -> dict:
    """What the alert page's template shows, beyond the alert's own fields."""
    zone = alert.patient.zone
    # The rules in force for the metric, and the one that fired even if since switched off.
    in_force = Q(patient_id=alert.patient_id, metric=alert.metric, active=True)
    rules = list(
        Rule.objects.filter(in_force | Q(pk=alert.rule_id))
        .select_related("protocol", "updated_by")
        .order_by("key")
    )
    return {
        "zone": zone,
        "local": {
            name: local_time(getattr(alert, name), zone)
            for name in (
                "first_triggered_at",
                "last_triggered_at",
                "condition_cleared_at",
                "acknowledged_at",
                "resolved_at",
            )
        },
        # Sorted: jsonb keeps its keys in its own order.
        "values": [(name.replace("_", " "), value) for name, value in sorted(alert.values.items())],
        "charts": charts(alert=alert, rules=rules, now=now),
        "rules": [rule_row(rule, alert) for rule in _fired_first(rules, alert)],
        "readings": recent_readings(alert, now=now),
        "timeline": timeline(alert),
    }


def _fired_first(rules: list[Rule], alert: Alert) -> list[Rule]:
    return sorted(rules, key=lambda rule: (rule.pk != alert.rule_id, rule.key))


# --- Charts -------------------------------------------------------------------------------


def chart_end(alert: Alert, now: datetime) -> datetime:
    """Now while the alert is unresolved; a resolved alert is shown as it was when resolved."""
    return alert.resolved_at if alert.resolved_at else now


def charts(*, alert: Alert, rules: list[Rule], now: datetime) -> list[SafeString]:
    if alert.metric == Metric.DOSE:
        return []  # doses are events, not values: the readings table lists them
    end = chart_end(alert, now)
    longest = end - timedelta(days=max(CHART_DAYS))
    rows = list(
        Reading.objects.filter(
            patient_id=alert.patient_id,
            metric=alert.metric,
            measured_at__gte=longest,
            measured_at__lte=end,
        )
        .order_by("measured_at", "id")
        .values_list("id", "measured_at", "value", "systolic", "diastolic")
    )
    # Marked by identity: another reading at the same instant (a sensor value beside the
    # fingerstick that fired) is not the triggering one. An average that fired is ringed on
    # the average drawn at its reading, not on the reading.
    fired = next((rule for rule in rules if rule.pk == alert.rule_id), None)
    averaged = fired is not None and kind_of(fired).bands_averaged_over_days(
        alert.rule_parameters or fired.parameters or {}
    )
    marks = [] if averaged else list(alert.reading_ids)
    average_marks = list(alert.reading_ids) if averaged else []
    unit = display_unit(alert.metric)
    # The rules whose bands are a region of single readings (Kind.bands_mark_readings);
    # averages, rates and summaries alert on something else, so only the alert's own rule
    # of those is drawn.
    drawn = [
        rule for rule in rules if kind_of(rule).bands_mark_readings or rule.pk == alert.rule_id
    ]
    bands = bands_from_rules(drawn, unit=unit)
    label = Metric(alert.metric).label
    result = []
    for days in CHART_DAYS:
        common = {
            "unit": unit,
            "zone": alert.patient.zone,
            "bands": bands,
            "marks": marks,
            "average_marks": average_marks,
            "start": end - timedelta(days=days),
            "end": end,
            "title": f"{label}, last {days} days",
        }
        if alert.metric == Metric.BLOOD_PRESSURE:
            series = [
                ("Systolic", [(at, systolic, pk) for pk, at, _, systolic, _ in rows]),
                ("Diastolic", [(at, diastolic, pk) for pk, at, _, _, diastolic in rows]),
            ]
            result.append(multi_line_chart(series=series, **common))
        else:
            points = [(at, value, pk) for pk, at, value, _, _ in rows if value is not None]
            result.append(line_chart(points=points, **common))
    return result


# --- Rules --------------------------------------------------------------------------------


def rule_row(rule: Rule, alert: Alert) -> RuleRow:
    """Parameters are described as on the patient page (monitoring.admin), so a clinician
    reads a rule the same way in both places."""
    source = " · ".join(
        part
        for part in (
            f"Protocol: {rule.protocol.name}" if rule.protocol else "Added by a clinician",
            rule.reference,
            rule.source,
        )
        if part
    )
    fired = ""
    if rule.pk == alert.rule_id:
        fired = f"Fired this alert at version {alert.rule_version}"
        if alert.rule_version != rule.version:
            then = describe_parameters(rule, alert.rule_parameters)
            fired += f" ({then}); now version {rule.version}"
    tailored = ""
    if rule.default_parameters is not None and rule.default_parameters != rule.parameters:
        tailored = describe_parameters(rule, rule.default_parameters)
    return RuleRow(
        rule=rule,
        parameters=describe_parameters(rule, rule.parameters),
        source=source,
        fired=fired,
        tailored_from=tailored,
    )


# --- Readings -----------------------------------------------------------------------------


def recent_readings(alert: Alert, *, now: datetime) -> list[ReadingRow]:
    """The metric's latest RECENT_READINGS readings, with where each came from (issue 12.4):
    one query on reading_patient_metric_time, those rows only, as tuples (looked for in the
    longest chart's days first: Reading.objects.newest)."""
    zone = alert.patient.zone
    triggering = set(alert.reading_ids)
    readings = (
        Reading.objects.filter(patient_id=alert.patient_id, metric=alert.metric)
        .order_by("-measured_at", "-id")
        .values_list(*READING_ROW_FIELDS, named=True)
        .newest(RECENT_READINGS, since=now - timedelta(days=max(CHART_DAYS)))
    )
    return [
        ReadingRow(
            at=local_time(reading.measured_at, zone),
            value=format_value(
                reading.metric,
                value=reading.value,
                systolic=reading.systolic,
                diastolic=reading.diastolic,
                medication=reading.medication,
                dose_status=reading.dose_status,
            ),
            sent=_as_sent(reading),
            context=GlucoseContext(reading.context).label if reading.context else "",
            source=describe_provenance(
                source=reading.source,
                entry=reading.entry,
                device_serial=reading.device_serial,
                trend=reading.trend,
            ),
            triggering=reading.id in triggering,
        )
        for reading in readings
    ]


READING_ROW_FIELDS = (
    "id",
    "metric",
    "measured_at",
    "value",
    "systolic",
    "diastolic",
    "medication",
    "dose_status",
    "sent_value",
    "sent_unit",
    "context",
    "source",
    "entry",
    "device_serial",
    "trend",
)


def _as_sent(reading) -> str:
    if reading.sent_value is None:
        return ""
    return f"{format_number(reading.sent_value)} {reading.sent_unit}".strip()


# --- Timeline -----------------------------------------------------------------------------


def timeline(alert: Alert) -> list[TimelineEntry]:
    """The alert's events, oldest first, each with the notifications it caused."""
    zone = alert.patient.zone
    events = list(
        alert.events.select_related("actor").prefetch_related(
            Prefetch(
                "notifications",
                queryset=Notification.objects.select_related("recipient")
                .order_by("created_at", "id")
                .prefetch_related(
                    Prefetch("attempt_log", queryset=NotificationAttempt.objects.order_by("number"))
                ),
            )
        )
    )
    assignee_ids = {
        e.data[key]
        for e in events
        for key in ("assignee", "previous_assignee")
        if isinstance(e.data.get(key), int)
    }
    usernames = dict(
        get_user_model().objects.filter(pk__in=assignee_ids).values_list("pk", "username")
    )
    return [
        TimelineEntry(
            at=local_time(event.at, zone),
            kind=event.kind,
            label=AlertEventKind(event.kind).label,
            actor=event.actor.get_username() if event.actor else "Vigil",
            note=event.note,
            details=_event_details(event.data, usernames),
            notifications=[_notification_row(n, zone) for n in event.notifications.all()],
        )
        for event in events
    ]


def _event_details(data: dict, usernames: dict[int, str]) -> list[str]:
    details = []
    if "previous" in data and "severity" in data:
        details.append(f"{_severity(data['previous'])} → {_severity(data['severity'])}")
    elif "severity" in data:
        details.append(_severity(data["severity"]))
    if "rule_version" in data:
        details.append(f"rule version {data['rule_version']}")
    if "assignee" in data:
        details.append(f"to {usernames.get(data['assignee'], 'a removed user')}")
    if data.get("previous_assignee") is not None:
        details.append(f"from {usernames.get(data['previous_assignee'], 'a removed user')}")
    if data.get("reason") in ResolutionReason.values:
        details.append(ResolutionReason(data["reason"]).label)
    if "level" in data:
        details.append(f"now at level {data['level']}")
    if data.get("repeat"):
        details.append(f"repeat {data['repeat']}")
    return details


def _severity(value: str) -> str:
    return Severity(value).label if value in Severity.values else value


def _notification_row(notification: Notification, zone) -> NotificationRow:
    recipient = notification.recipient.get_username() if notification.recipient else ""
    return NotificationRow(
        channel=notification.get_channel_display(),
        to=f"{recipient} ({notification.target})" if recipient else notification.target,
        status=notification.status,
        status_label=notification.get_status_display(),
        attempts=[
            AttemptRow(
                number=attempt.number,
                at=local_time(attempt.at, zone),
                outcome=attempt.outcome,
                outcome_label=attempt.get_outcome_display(),
                detail=" · ".join(
                    filter(
                        None,
                        [
                            f"HTTP {attempt.status_code}" if attempt.status_code else "",
                            f"{attempt.duration_ms} ms",
                            attempt.error,
                        ],
                    )
                ),
            )
            for attempt in notification.attempt_log.all()
        ],
    )
