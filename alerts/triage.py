"""The triage queue: how unresolved alerts are ordered, filtered and shown to the care team.

The admin's Alert changelist is the queue (alerts/admin.py); this module holds its query,
its list filters, its columns and its changelist (QueueChangeList).

Order (QUEUE_ORDER): what a nurse must look at first comes first.
  1. Unresolved before resolved (the "All" filter lists the finished ones last).
  2. Severity: critical, warning, info — an acknowledged critical that is still there sits
     above an open info alert: the severity of the problem outranks whether someone has
     seen it.
  3. Open before acknowledged within a severity: an open alert has nobody on it yet.
  4. Age: the alert waiting longest (earliest first trigger) first; then the id, so the
     order is total and a page never repeats or skips a row.

Columns: the priority ones are always shown and fit 1024–1920 px (severity, patient,
problem, value, trend, since, status); the rest (metric, occurrences, condition cleared,
assignee, escalation level, where the latest reading came from) come on demand with
`?columns=all`, a query parameter the changelist keeps in every filter, sort and page link.

Each row's values, as a nurse reads them: the value that triggered the alert ("Triggered",
or "Worst of N" when it has absorbed later findings: the alert keeps its worst) and the
metric's latest reading ("Latest"), units as clinicians write them (monitoring.display);
a trend of the metric's last TREND_READINGS readings as a small server-rendered SVG with
its values as text; since when, on the patient's clock and the viewer's.

The latest reading and the trend come from correlated subqueries of the page's one query,
so the page costs the same few queries for 10 alerts or 100.

The page reloads itself every VIGIL_QUEUE_REFRESH_SECONDS (settings), at the same URL, so
the filters, the search, the sort and the page stay; it shows when it was updated and can
be paused (`?refresh=off`, kept like the filters). A nonce'd script reloads it, and waits
while the nurse has something on the page changed (rows selected, a search typed) so a
reload never throws away what she was doing; without script a <noscript> meta refresh does.
The script stops reloading once nobody has touched the page (key, pointer) for the session's
idle timeout (SESSION_COOKIE_AGE), and says so: each reload is a request that renews the
session, and an unattended screen must still sign itself out (one idle timeout later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
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
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from alerts.lifecycle import UNRESOLVED
from alerts.models import AlertStatus, CareTeam
from monitoring.display import display_unit as clinical_unit
from monitoring.display import format_clock, format_instant, format_instant_for
from monitoring.evaluation import unit_of
from monitoring.models import Entry, Metric, Reading, ReadingSource, Severity
from monitoring.rules import kind_of
from monitoring.rules.threshold import shown

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
RESOLVED_LAST = Case(
    When(status=AlertStatus.RESOLVED, then=Value(1)),
    default=Value(0),
    output_field=IntegerField(),
)
# The queue's default order (the module's docstring says why). Expressions rather than the
# annotations' names: the admin orders its base queryset before get_queryset() has annotated it.
QUEUE_ORDER = [
    RESOLVED_LAST.asc(),
    SEVERITY_RANK.asc(),
    STATUS_RANK.asc(),
    "first_triggered_at",
    "id",
]


def display_unit(metric: str) -> str:
    """The metric's unit as a clinician writes it (mmHg, °C, bpm; INR none)."""
    return clinical_unit(unit_of(metric))


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


# Where the queue looks for an alert's latest reading first, and how far back its trend
# reaches: a display period, not a clinical number (with_queue_annotations).
LATEST_READING_RECENT = timedelta(days=30)
# How many of the metric's readings a row's trend draws: a few days of twice-daily blood
# pressure or daily weight, an hour of 5-minute CGM. A display choice, not a clinical one.
TREND_READINGS = 12


class JSONArraySubquery(Subquery):
    """The rows of a subquery selecting one JSON object each (column `data`), as one JSON
    array in the outer row: several rows per outer row without a second query. NULL or []
    when there are none. The array's order is not guaranteed: callers sort its objects."""

    template = "(SELECT JSONB_AGG(_rows.data) FROM (%(subquery)s) _rows)"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            template="(SELECT JSON_GROUP_ARRAY(JSON(_rows.data)) FROM (%(subquery)s) _rows)",
            **extra_context,
        )


def with_queue_annotations(queryset: QuerySet) -> QuerySet:
    """The ranks the queue orders by, the latest reading of each alert's metric and its trend
    (the last TREND_READINGS readings).

    The latest reading is one correlated subquery per row, served by the index on
    (patient, metric, -measured_at); it comes back as one JSON object, so no second query.
    It is looked for in the last LATEST_READING_RECENT first, and in the whole history only
    when none is that recent (COALESCE runs the second subquery only then): on PostgreSQL an
    unbounded "latest" opens every monthly partition of the readings, one index descent
    each, a cost per row of the queue that grows with every month of history. The trend is
    one more correlated subquery on the same index, bounded by the same window, its rows
    gathered into one JSON array.
    """
    readings = Reading.objects.filter(
        patient_id=OuterRef("patient_id"), metric=OuterRef("metric")
    ).order_by("-measured_at", "-id")
    latest = readings.values(
        data=JSONObject(
            id="id",
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
    since = timezone.now() - LATEST_READING_RECENT
    recent = latest.filter(measured_at__gte=since)
    trend = readings.filter(measured_at__gte=since).values(
        data=JSONObject(
            id="id",
            value="value",
            systolic="systolic",
            diastolic="diastolic",
            measured_at="measured_at",
        )
    )[:TREND_READINGS]
    return queryset.select_related("patient", "assignee").annotate(
        status_rank=STATUS_RANK,
        severity_rank=SEVERITY_RANK,
        latest_reading=Coalesce(
            Subquery(recent[:1], output_field=JSONField()),
            Subquery(latest[:1], output_field=JSONField()),
            output_field=JSONField(),
        ),
        trend_readings=JSONArraySubquery(trend),
    )


def measured_at_of(reading: dict) -> datetime:
    """A reading's measured_at from the JSON the database built (SQLite writes it without
    its zone: the database's times are UTC)."""
    at = datetime.fromisoformat(reading["measured_at"])
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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


# --- Trend -----------------------------------------------------------------------------------

# The sparkline's size in CSS pixels, and its inner margin (room for the end dot).
SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 72, 24, 3


@dataclass(frozen=True)
class TrendPoint:
    id: int
    at: datetime
    values: tuple[float, ...]  # one per line: (value,) or (systolic, diastolic)


def trend_points(metric: str, readings: list[dict] | None) -> list[TrendPoint]:
    """The trend's readings, oldest first, each with the values its lines draw."""
    if metric == Metric.DOSE:
        return []  # doses are events, not values
    points = []
    for reading in readings or []:
        if metric == Metric.BLOOD_PRESSURE:
            values = (reading["systolic"], reading["diastolic"])
        else:
            values = (reading["value"],)
        if all(value is not None for value in values):
            points.append(TrendPoint(reading["id"], measured_at_of(reading), values))
    return sorted(points, key=lambda point: (point.at, point.id))


def trend_text(metric: str, points: list[TrendPoint]) -> str:
    """The trend as words, for screen readers and the tooltip: every value it draws."""
    unit = unit_of(metric)
    values = ", ".join("/".join(shown(v, unit) for v in point.values) for point in points)
    count = len(points)
    readings = "reading" if count == 1 else f"{count} readings (oldest first)"
    return f"{Metric(metric).label}, last {readings}: {values} {display_unit(metric)}".strip()


def sparkline(metric: str, points: list[TrendPoint], marked: set[int] = frozenset()) -> SafeString:
    """A small inline SVG of the readings: time across (as measured, so gaps show), value up,
    one line per component (blood pressure: systolic above diastolic), the latest reading a
    dot and the readings `marked` (those that triggered the alert) ringed. No axis: the
    values are in its text alternative and in the Value column."""
    if not points:
        return format_html('<span class="vigil-quiet">{}</span>', "No recent readings")
    start, end = points[0].at, points[-1].at
    span = (end - start).total_seconds()
    low = min(v for point in points for v in point.values)
    high = max(v for point in points for v in point.values)
    inner_w, inner_h = SPARK_WIDTH - 2 * SPARK_PAD, SPARK_HEIGHT - 2 * SPARK_PAD

    def x(point: TrendPoint) -> float:
        if span <= 0:
            return SPARK_WIDTH / 2
        return SPARK_PAD + (point.at - start).total_seconds() / span * inner_w

    def y(value: float) -> float:
        if high == low:
            return SPARK_HEIGHT / 2
        return SPARK_PAD + (high - value) / (high - low) * inner_h

    lines = []
    for component in range(len(points[0].values)):
        coordinates = " ".join(f"{x(p):.1f},{y(p.values[component]):.1f}" for p in points)
        lines.append(format_html('<polyline class="vigil-spark-line" points="{}"/>', coordinates))
    rings = [
        format_html(
            '<circle class="vigil-spark-trigger" cx="{}" cy="{}" r="3"/>',
            f"{x(point):.1f}",
            f"{y(point.values[0]):.1f}",
        )
        for point in points
        if point.id in marked
    ]
    last = points[-1]
    dots = [
        format_html(
            '<circle class="vigil-spark-last" cx="{}" cy="{}" r="2"/>',
            f"{x(last):.1f}",
            f"{y(v):.1f}",
        )
        for v in last.values
    ]
    text = trend_text(metric, points)
    return format_html(
        '<svg class="vigil-spark" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}"><title>{}</title>{}</svg>',
        SPARK_WIDTH,
        SPARK_HEIGHT,
        SPARK_WIDTH,
        SPARK_HEIGHT,
        text,
        text,
        # Each piece was built by format_html: escaped already.
        mark_safe("".join([*lines, *rings, *dots])),
    )


# --- Columns --------------------------------------------------------------------------------


def triggered_value(alert) -> str:
    """The value the alert is about, as the rule wrote it ("48 mg/dL", "186/118 mm[Hg]"),
    the unit as a clinician writes it; "" for kinds that have no single value (adherence,
    summaries, rates: the problem's title says what they saw)."""
    name = kind_of(alert).shown_value
    raw = alert.values.get(name) if name else None
    if raw is None or raw == "":
        return ""
    number, _, unit = str(raw).rpartition(" ")
    if number and unit == unit_of(alert.metric):
        return f"{number} {display_unit(alert.metric)}".strip()
    return str(raw)


def triggered_label(alert) -> str:
    """ "Triggered", or "Worst of 3" once the alert has absorbed later findings: it keeps
    the worst it has seen (alerts.lifecycle)."""
    label = "Triggered" if alert.occurrences <= 1 else f"Worst of {alert.occurrences}"
    if kind_of(alert).alerts_on_an_average:
        label += " (average)"
    return label


class QueueColumns:
    """The queue's columns, for AlertAdmin: PRIORITY_COLUMNS always, MORE_COLUMNS on demand."""

    PRIORITY_COLUMNS = [
        "severity_badge",
        "patient_column",
        "summary",
        "value_column",
        "trend_column",
        "since",
        "status_column",
    ]
    MORE_COLUMNS = [
        "metric_column",
        "occurrences",
        "condition_cleared",
        "assignee_column",
        "escalation_level",
        "source_column",
    ]

    @admin.display(description="Severity", ordering="severity_rank")
    def severity_badge(self, alert):
        return format_html(
            '<span class="vigil-severity vigil-severity-{}">{}</span>',
            alert.severity,
            alert.get_severity_display(),
        )

    @admin.display(description="Problem", ordering="title")
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

    @admin.display(description="Value")
    def value_column(self, alert):
        """What triggered it and what the metric reads now, each labelled; "same reading"
        when the latest reading is the one that triggered it."""
        rows = []
        triggered = triggered_value(alert)
        if triggered:
            rows.append((triggered_label(alert), triggered, ""))
        reading = alert.latest_reading
        if reading is None:
            if not triggered:
                return "—"
            rows.append(("Latest", "no reading", ""))
        elif reading.get("id") in set(alert.reading_ids or ()) and triggered:
            rows.append(("Latest", "same reading", ""))
        else:
            latest = format_value(
                alert.metric,
                value=reading["value"],
                systolic=reading["systolic"],
                diastolic=reading["diastolic"],
                medication=reading["medication"] or "",
                dose_status=reading["dose_status"] or "",
            )
            ago = f"{timesince(measured_at_of(reading), timezone.now(), depth=1)} ago"
            rows.append(("Latest", latest, ago))
        return format_html(
            '<dl class="vigil-values">{}</dl>',
            format_html_join(
                "",
                '<dt>{}</dt><dd><span class="vigil-value">{}</span>{}</dd>',
                (
                    (
                        label,
                        value,
                        format_html(' <span class="vigil-quiet">{}</span>', note) if note else "",
                    )
                    for label, value, note in rows
                ),
            ),
        )

    @admin.display(description="Trend")
    def trend_column(self, alert):
        if alert.metric == Metric.DOSE:
            return "—"  # doses are events, not values: no line to draw
        points = trend_points(alert.metric, getattr(alert, "trend_readings", None))
        return sparkline(alert.metric, points, marked=set(alert.reading_ids or ()))

    @admin.display(description="Latest from")
    def source_column(self, alert):
        # Where the latest reading came from (issue 12.4): app, device key, FHIR client,
        # Nightscout uploader.
        reading = alert.latest_reading
        if reading is None:
            return "—"
        return describe_provenance(
            source=reading.get("source") or "",
            entry=reading.get("entry") or "",
            device_serial=reading.get("device_serial") or "",
            trend=reading.get("trend") or "",
        )

    @admin.display(description="Since", ordering="first_triggered_at")
    def since(self, alert):
        """How long it has waited, then when it began on the patient's clock and, when the
        viewer's clock says otherwise, on theirs."""
        at, zone = alert.first_triggered_at, alert.patient.zone
        patient_side = format_instant(at, zone)
        both = format_instant_for(at, zone, getattr(alert, "viewer_zone", None))
        yours = both[len(patient_side) + len(" · ") :]
        return format_html(
            '<time datetime="{}">{} ago</time><br><span class="vigil-quiet">{}</span>{}',
            at.isoformat(),
            timesince(at, timezone.now(), depth=1),
            patient_side,
            format_html('<br><span class="vigil-quiet">{}</span>', yours) if yours else "",
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


# --- The changelist: columns on demand, refresh ----------------------------------------------

COLUMNS_VAR = "columns"  # ?columns=all: the on-demand columns too
REFRESH_VAR = "refresh"  # ?refresh=off: no automatic reload
# What the "More columns" link adds, in its own words.
MORE_COLUMNS_LABEL = "metric, occurrences, cleared, assignee, escalation, source"


@dataclass(frozen=True)
class QueueRefresh:
    seconds: int  # 0: never
    # The reloads stop after this long without a key or pointer on the page (the session's
    # idle timeout): a reload is a request, and would keep an unattended screen signed in.
    idle_seconds: int
    paused: bool
    updated_at: str  # on the viewer's clock
    url: str  # this page again, by GET, with its whole query string
    pause_query: str
    resume_query: str

    @property
    def every(self) -> str:
        if self.seconds % 60 == 0:
            minutes = self.seconds // 60
            return "every minute" if minutes == 1 else f"every {minutes} minutes"
        return f"every {self.seconds} seconds"


def all_columns_wanted(request) -> bool:
    return request.GET.get(COLUMNS_VAR) == "all"


class QueueChangeList(ChangeList):
    """The admin's changelist, plus the queue's own query parameters (columns, refresh):
    kept in every link the changelist builds (filters, sorting, pages) and never read as a
    filter of the alerts."""

    OWN_PARAMS = (COLUMNS_VAR, REFRESH_VAR)

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        for name in self.OWN_PARAMS:
            lookup_params.pop(name, None)
        return lookup_params

    def get_results(self, request):
        super().get_results(request)
        viewer_zone: tzinfo | None = getattr(request, "viewer_zone", None)
        # The columns see only the alert: the viewer's zone travels with it.
        for alert in self.result_list:
            alert.viewer_zone = viewer_zone
        # The page itself is not kept in the changelist's links: these stay on it.
        page = {PAGE_VAR: self.page_num} if self.page_num > 1 else {}
        self.all_columns = all_columns_wanted(request)
        self.more_columns = MORE_COLUMNS_LABEL
        self.columns_query = (
            self.get_query_string(page, remove=[COLUMNS_VAR])
            if self.all_columns
            else self.get_query_string({**page, COLUMNS_VAR: "all"})
        )
        now = timezone.now()
        self.refresh = QueueRefresh(
            seconds=max(int(settings.VIGIL_QUEUE_REFRESH_SECONDS), 0),
            idle_seconds=int(settings.SESSION_COOKIE_AGE),
            paused=request.GET.get(REFRESH_VAR) == "off",
            updated_at=format_clock(now, viewer_zone) if viewer_zone else f"{now:%H:%M} UTC",
            url=request.get_full_path(),
            pause_query=self.get_query_string({**page, REFRESH_VAR: "off"}),
            resume_query=self.get_query_string(page, remove=[REFRESH_VAR]),
        )
