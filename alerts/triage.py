"""The triage queue: how unresolved alerts are ordered, filtered and shown to the care team.

The admin's Alert changelist is the queue (alerts/admin.py); this module holds its query,
its list filters and its columns. Ordering: unresolved first (open, then acknowledged),
critical before warning before info, then the oldest first. Each row's latest value of the
alert's metric comes from one correlated subquery, so the page costs the same few queries
for 10 alerts or 100.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import admin
from django.db.models import (
    Case,
    IntegerField,
    JSONField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, JSONObject
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from alerts.lifecycle import UNRESOLVED
from alerts.models import AlertStatus, CareTeam
from monitoring.evaluation import unit_of
from monitoring.models import Entry, Metric, Reading, ReadingSource, Severity
from monitoring.rules import kind_of
from monitoring.rules.threshold import shown

# Canonical UCUM codes as a clinician writes them.
DISPLAY_UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "/min": "bpm"}

SEVERITY_RANK = Case(
    When(severity=Severity.CRITICAL, then=Value(0)),
    When(severity=Severity.WARNING, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
STATUS_RANK = Case(
    When(status=AlertStatus.OPEN, then=Value(0)),
    When(status=AlertStatus.ACKNOWLEDGED, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
# The queue's default order. Expressions rather than the annotations' names: the admin
# orders its base queryset before get_queryset() has annotated it.
QUEUE_ORDER = [STATUS_RANK.asc(), SEVERITY_RANK.asc(), "first_triggered_at", "id"]


def display_unit(metric: str) -> str:
    unit = unit_of(metric)
    return DISPLAY_UNITS.get(unit, unit)


def format_value(
    metric: str,
    *,
    value: float | None = None,
    systolic: float | None = None,
    diastolic: float | None = None,
    medication: str = "",
    dose_status: str = "",
) -> str:
    """A reading's canonical value as the queue and the alert page show it, with its unit."""
    if metric == Metric.DOSE:
        return f"{medication} {dose_status}".strip() or "—"
    unit = unit_of(metric)
    if systolic is not None and diastolic is not None:
        return f"{shown(systolic, unit)}/{shown(diastolic, unit)} {display_unit(metric)}"
    if value is None:
        return "—"
    return f"{shown(value, unit)} {display_unit(metric)}".strip()


# --- Where a reading came from (issue 12.3/12.4) -------------------------------------------

# A CGM's trend as Nightscout names it (`direction`), with the arrow uploaders draw.
TREND_ARROWS = {
    "DoubleUp": "⇈",
    "SingleUp": "↑",
    "FortyFiveUp": "↗",
    "Flat": "→",
    "FortyFiveDown": "↘",
    "SingleDown": "↓",
    "DoubleDown": "⇊",
}


def describe_provenance(
    *, source: str, entry: str, device_serial: str = "", trend: str = ""
) -> str:
    """Where a reading came from, as the readings list, the patient page and the alert page
    show it: "Nightscout uploader · xDrip-DexcomG6 · Measured by a device · ↗ FortyFiveUp"."""
    parts = [
        ReadingSource(source).label if source in ReadingSource.values else source,
        device_serial,
        Entry(entry).label if entry in Entry.values else entry,
        f"{TREND_ARROWS[trend]} {trend}" if trend in TREND_ARROWS else trend,
    ]
    return " · ".join(part for part in parts if part)


def local_time(at: datetime | None, zone) -> str:
    return f"{at.astimezone(zone):%d %b %Y %H:%M %Z}" if at else "—"


def short_time(at: datetime, zone) -> str:
    """For the queue's narrow columns: the patient's local day and time, no year."""
    return f"{at.astimezone(zone):%d %b %H:%M %Z}"


# Where the queue looks for an alert's latest reading first: a display period, not a clinical
# number (with_queue_annotations).
LATEST_READING_RECENT = timedelta(days=30)


def with_queue_annotations(queryset: QuerySet) -> QuerySet:
    """The ranks the queue orders by, and the latest reading of each alert's metric.

    The latest reading is one correlated subquery per row, served by the index on
    (patient, metric, -measured_at); it comes back as one JSON object, so no second query.
    It is looked for in the last LATEST_READING_RECENT first, and in the whole history only
    when none is that recent (COALESCE runs the second subquery only then): on PostgreSQL an
    unbounded "latest" opens every monthly partition of the readings, one index descent
    each, a cost per row of the queue that grows with every month of history.
    """
    latest = (
        Reading.objects.filter(patient_id=OuterRef("patient_id"), metric=OuterRef("metric"))
        .order_by("-measured_at", "-id")
        .values(
            data=JSONObject(
                value="value",
                systolic="systolic",
                diastolic="diastolic",
                medication="medication",
                dose_status="dose_status",
                measured_at="measured_at",
                source="source",
                entry="entry",
                device_serial="device_serial",
                trend="trend",
            )
        )
    )
    recent = latest.filter(measured_at__gte=timezone.now() - LATEST_READING_RECENT)
    return queryset.select_related("patient", "assignee").annotate(
        status_rank=STATUS_RANK,
        severity_rank=SEVERITY_RANK,
        latest_reading=Coalesce(
            Subquery(recent[:1], output_field=JSONField()),
            Subquery(latest[:1], output_field=JSONField()),
            output_field=JSONField(),
        ),
    )


# --- List filters -------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    """Unresolved alerts unless asked otherwise: the queue is what still needs a person."""

    title = "status"
    parameter_name = "status"
    DEFAULT = "unresolved"

    def lookups(self, request, model_admin):
        return [
            ("unresolved", "Unresolved"),
            (AlertStatus.OPEN, "Open"),
            (AlertStatus.ACKNOWLEDGED, "Acknowledged"),
            (AlertStatus.RESOLVED, "Resolved"),
            ("all", "All"),
        ]

    def choices(self, changelist):
        current = self.value() or self.DEFAULT
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or self.DEFAULT
        if value == "unresolved":
            return queryset.filter(status__in=UNRESOLVED)
        if value in AlertStatus.values:
            return queryset.filter(status=value)
        return queryset


class CareTeamFilter(admin.SimpleListFilter):
    """My teams, or one team (only the teams the user may see are offered)."""

    title = "care team"
    parameter_name = "team"

    def lookups(self, request, model_admin):
        teams = CareTeam.objects.visible_to(request.user).only("id", "name")
        return [("mine", "My teams"), *((str(team.pk), team.name) for team in teams)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "mine":
            return queryset.filter(patient__care_team__memberships__user=request.user)
        # isascii too: isdigit() is true of "²" and other digits int() refuses.
        # care_team__id, not care_team_id: the id's own lookup knows its 64-bit range, so an
        # id past it matches nothing on SQLite too, where binding it would raise (a 500).
        if value and value.isascii() and value.isdigit():
            return queryset.filter(patient__care_team__id=int(value))
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assigned to"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", "Me"), ("nobody", "Nobody")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assignee=request.user)
        if self.value() == "nobody":
            return queryset.filter(assignee__isnull=True)
        return queryset


class ConditionClearedFilter(admin.SimpleListFilter):
    """Whether a later reading no longer meets the condition (the alert still needs a person)."""

    title = "condition cleared"
    parameter_name = "cleared"

    def lookups(self, request, model_admin):
        return [("yes", "Cleared"), ("no", "Still present")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(condition_cleared_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(condition_cleared_at__isnull=True)
        return queryset


# --- Columns --------------------------------------------------------------------------------


class QueueColumns:
    """The queue's columns, for AlertAdmin.list_display: severity by colour and word, the
    patient, the metric's latest value with its unit, since when (in the patient's time)."""

    @admin.display(description="Severity", ordering="severity_rank")
    def severity_badge(self, alert):
        return format_html(
            '<span class="vigil-severity vigil-severity-{}">{}</span>',
            alert.severity,
            alert.get_severity_display(),
        )

    @admin.display(description="Alert", ordering="title")
    def summary(self, alert):
        return alert.title

    @admin.display(description="Patient", ordering="patient__name")
    def patient_column(self, alert):
        return format_html(
            '<a href="{}">{}</a><br><span class="vigil-quiet">{}</span>',
            reverse("admin:monitoring_patient_change", args=[alert.patient_id]),
            alert.patient.name,
            alert.patient.external_id,
        )

    @admin.display(description="Metric", ordering="metric")
    def metric_column(self, alert):
        return alert.get_metric_display()

    @admin.display(description="Latest value")
    def latest_value(self, alert):
        reading = alert.latest_reading
        if reading is None:
            # No reading of the metric at all (a missing-data alert): what the rule saw.
            shown = kind_of(alert).shown_value
            return (alert.values.get(shown) if shown else None) or "—"
        value = format_value(
            alert.metric,
            value=reading["value"],
            systolic=reading["systolic"],
            diastolic=reading["diastolic"],
            medication=reading["medication"] or "",
            dose_status=reading["dose_status"] or "",
        )
        at = datetime.fromisoformat(reading["measured_at"])
        # Where it came from (issue 12.4): app, device key, FHIR client, Nightscout uploader.
        came_from = describe_provenance(
            source=reading.get("source") or "",
            entry=reading.get("entry") or "",
            device_serial=reading.get("device_serial") or "",
            trend=reading.get("trend") or "",
        )
        return format_html(
            '{}<br><span class="vigil-quiet">{}</span><br><span class="vigil-quiet">{}</span>',
            value,
            short_time(at, alert.patient.zone),
            came_from,
        )

    @admin.display(description="Since", ordering="first_triggered_at")
    def since(self, alert):
        return format_html(
            '<time datetime="{}">{} ago</time><br><span class="vigil-quiet">{}</span>',
            alert.first_triggered_at.isoformat(),
            timesince(alert.first_triggered_at, depth=1),
            short_time(alert.first_triggered_at, alert.patient.zone),
        )

    @admin.display(description="Cleared", boolean=True, ordering="condition_cleared_at")
    def condition_cleared(self, alert):
        return alert.condition_cleared_at is not None

    @admin.display(description="Status", ordering="status_rank")
    def status_column(self, alert):
        return alert.get_status_display()

    @admin.display(description="Assignee", ordering="assignee__username")
    def assignee_column(self, alert):
        return alert.assignee.get_username() if alert.assignee else "—"
