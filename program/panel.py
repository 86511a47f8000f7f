"""The panel: every patient of a care-team member's teams on one page (issue 13, item 1).

    panel_page(*, user, team_id=None, filters=PanelFilters(), sort=DEFAULT_SORT, page=1,
               page_size=PAGE_SIZE, now=None) -> PanelPage

`user` sees the patients of their care teams (every team for a superuser), or of one of
them (`team_id`; another team raises UnknownTeam). `filters` narrows the rows (all must
hold), `sort` is one of SORTS, optionally with a leading "-" to reverse it (ties by name).
`page` counts from 1 (past the last: EmptyPage). `now` is for tests and benchmarks.
The API (program/views/panel.py) and the admin page (program/admin/panel.py) both call
`panel_standings` → `select` → one page → `panel_rows`, which is all panel_page does.

A constant number of queries whatever the panel's size, in two phases:

1. `panel_standings`, for every patient of the teams (5 queries): the teams; the patients
   with their newest physiologic reading, last review and reviewer (correlated subqueries,
   each one index descent); unresolved alerts grouped by patient; the episodes running
   today; the device days of the running periods (program.periods.device_days); the care
   time of the calendar month grouped by patient. Filters and sorts run on these, in Python.
2. `panel_rows`, for the page's patients only (2 queries): their protocols; their last
   reading of each watched metric and the trend of the main one, as annotations.

Decisions (docs of the panel's columns):

- Open alerts are the unresolved ones, open or acknowledged: what the triage queue shows
  by default (alerts.lifecycle.UNRESOLVED). `highest_severity` is the worst of them.
- Watched metrics: those the rules of the patient's protocols (monitoring/protocols.yaml)
  watch, in protocol order, doses left out (a dose is an event, not a value with a unit;
  adherence has its own alerts). The main metric is the first of them (the first rule's
  metric of the patient's first protocol in ProtocolCode order: weight for heart failure,
  blood pressure for hypertension, glucose for diabetes, INR, SpO2 for COPD).
- Last reading of a metric: the newest by measured_at, looked for in the last RECENT first
  and in the whole history only when none is that recent (the readings are partitioned by
  month: an unbounded "newest" opens every partition). Blood pressure gives systolic and
  diastolic (value null); the unit is the stored canonical one.
- Trend: the last TREND_POINTS values of the main metric within RECENT, oldest first
  (systolic for blood pressure). A display choice, not a clinical number.
- Data (for "no data" and "needs review"): a physiologic reading of any entry (device or
  manual; doses are not data), by measured_at, looked for within RECENT. "No data for N
  days": none measured in the last N × 24 hours, N = settings.VIGIL_PANEL_NO_DATA_DAYS.
- Needs review: an unresolved alert, or data measured after the last review (never
  reviewed: any data within RECENT). No interval of its own: a review covers what it saw.
- Days with data, period end, reach: the device period of the episode running on the
  patient's local today, through program.periods (period_on, device_days, standing), as
  the ledger and the outreach job count them. No running episode: null days, no period,
  `at_risk` false.
- Minutes: the calendar month in the patient's zone; `minutes_this_month` all logged time
  (running timers have none yet), `approved_minutes_this_month` the approved part;
  `interactive_this_month` whether any entry of the month was an interactive
  communication. "Minutes short of 10 / 20" (the 99470 / 99457 minimums of
  program.codes.billing_reference()) looks at the logged minutes of patients with a running
  episode: the team's to-do is the time, approval follows.
"""

from __future__ import annotations

import json
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    JSONField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, JSONObject
from django.utils import timezone

from alerts.lifecycle import UNRESOLVED
from alerts.models import Alert, CareTeam
from monitoring.models import Metric, Patient, ProtocolCode, Reading, Severity
from monitoring.protocols import protocol_templates
from program.codes import billing_reference
from program.models import Episode, Review, TimeEntry
from program.periods import DevicePeriod, PeriodStanding, device_days, period_on, standing

# Where the panel looks for a patient's data first: a display window, not a clinical number.
RECENT = timedelta(days=30)
# How many of the main metric's last values the trend shows: a display choice.
TREND_POINTS = 10
# Rows per page (the API's page_size may ask for another, up to MAX_PAGE_SIZE).
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

SORTS = ("severity", "name", "needs_review", "no_data", "at_risk", "minutes", "last_reviewed")
DEFAULT_SORT = "severity"


class UnknownTeam(Exception):
    """The team asked for is not one of the user's (or does not exist: the same answer)."""


def no_data_days() -> int:
    return settings.VIGIL_PANEL_NO_DATA_DAYS


def minutes_thresholds() -> tuple[int, int]:
    """The minutes the "short of" filter offers: the first-ten and first-twenty codes'."""
    management = billing_reference().management
    return management.first_ten_min_minutes, management.first_twenty_min_minutes


# --- Protocols: which metrics a patient's panel row shows -------------------------------


def watched_metrics(protocol_codes: list[str]) -> list[str]:
    """The physiologic metrics the rules of these protocols watch, protocol by protocol in
    ProtocolCode order, each rule's metric in the order protocols.yaml lists them."""
    templates = protocol_templates()
    metrics: list[str] = []
    for code in ProtocolCode.values:
        if code not in protocol_codes:
            continue
        for template in templates.get(code, ()):
            if template.metric != Metric.DOSE and template.metric not in metrics:
                metrics.append(template.metric)
    return metrics


# --- Phase 1: where every patient of the teams stands -----------------------------------


@dataclass
class PatientStanding:
    """One patient's panel flags: enough to filter and sort the whole panel."""

    patient_id: int
    name: str
    external_id: str
    timezone: str
    care_team_id: int
    highest_severity: str | None = None
    open_alerts: int = 0
    last_data_at: datetime | None = None
    last_reviewed_at: datetime | None = None
    last_reviewed_by: str | None = None
    period: PeriodStanding | None = None
    minutes_this_month: int = 0
    approved_minutes_this_month: int = 0
    interactive_this_month: bool = False
    needs_review: bool = False
    no_data: bool = False

    @property
    def in_program(self) -> bool:
        """Whether an RPM episode runs on the patient's local today."""
        return self.period is not None

    @property
    def days_with_data(self) -> int | None:
        return self.period.days_with_data if self.period else None

    @property
    def period_end(self) -> date | None:
        return self.period.period.end if self.period else None

    @property
    def reach(self) -> str | None:
        return self.period.reach if self.period else None

    @property
    def at_risk(self) -> bool:
        return bool(self.period and self.period.at_risk)


def visible_team_ids(user, team_id: int | None = None) -> list[int]:
    """The user's teams (all for a superuser), or the one asked for; UnknownTeam when it is
    not theirs."""
    teams = CareTeam.objects.visible_to(user)
    if team_id is not None:
        teams = teams.filter(pk=team_id)
    ids = list(teams.order_by().values_list("pk", flat=True))
    if team_id is not None and not ids:
        raise UnknownTeam(team_id)
    return ids


def panel_standings(*, user, team_id: int | None = None, now: datetime) -> list[PatientStanding]:
    """Every patient of the user's teams (or of one team), with the panel's flags; five
    queries whatever the number of patients. Ordered by name."""
    team_ids = visible_team_ids(user, team_id)
    standings = _patients(team_ids, now=now)
    if not standings:
        return []
    by_id = {row.patient_id: row for row in standings}
    _add_alerts(by_id, team_ids)
    _add_periods(by_id, team_ids, now=now)
    _add_care_time(by_id, team_ids, now=now)
    quiet_since = now - timedelta(days=no_data_days())
    for row in standings:
        row.no_data = row.last_data_at is None or row.last_data_at < quiet_since
        unseen = row.last_data_at is not None and (
            row.last_reviewed_at is None or row.last_data_at > row.last_reviewed_at
        )
        row.needs_review = row.open_alerts > 0 or unseen
    return standings


def _patients(team_ids: list[int], *, now: datetime) -> list[PatientStanding]:
    # The newest physiologic reading within RECENT: one descent of reading_patient_time
    # per patient in the recent partitions only.
    newest = (
        Reading.objects.filter(patient_id=OuterRef("pk"), measured_at__gte=now - RECENT)
        .exclude(metric=Metric.DOSE)
        .order_by("-measured_at", "-id")
        .values("measured_at")[:1]
    )
    # The last review and its reviewer: review_patient_at.
    review = Review.objects.filter(patient_id=OuterRef("pk")).order_by("-at", "-id")
    rows = (
        Patient.objects.filter(care_team_id__in=team_ids)
        .annotate(
            last_data_at=Subquery(newest),
            last_reviewed_at=Subquery(review.values("at")[:1]),
            last_reviewed_by=Subquery(review.values("reviewer__username")[:1]),
        )
        .order_by("name", "pk")
        .values_list(
            "pk",
            "name",
            "external_id",
            "timezone",
            "care_team_id",
            "last_data_at",
            "last_reviewed_at",
            "last_reviewed_by",
        )
    )
    return [
        PatientStanding(
            patient_id=pk,
            name=name,
            external_id=external_id,
            timezone=zone,
            care_team_id=team,
            last_data_at=data_at,
            last_reviewed_at=reviewed_at,
            last_reviewed_by=reviewed_by,
        )
        for pk, name, external_id, zone, team, data_at, reviewed_at, reviewed_by in rows
    ]


SEVERITY_RANK = Case(
    *(When(severity=value, then=Value(Severity.rank(value))) for value in Severity.values),
    output_field=IntegerField(),
)


def _add_alerts(by_id: dict[int, PatientStanding], team_ids: list[int]) -> None:
    rows = (
        Alert.objects.filter(patient__care_team_id__in=team_ids, status__in=UNRESOLVED)
        .order_by()
        .values("patient_id")
        .annotate(count=Count("id"), worst=Max(SEVERITY_RANK))
        .values_list("patient_id", "count", "worst")
    )
    for patient_id, count, worst in rows:
        row = by_id.get(patient_id)
        if row is not None:
            row.open_alerts = count
            row.highest_severity = Severity.values[worst]


def _local_today(row: PatientStanding, now: datetime) -> date:
    return now.astimezone(zoneinfo.ZoneInfo(row.timezone)).date()


def _add_periods(by_id: dict[int, PatientStanding], team_ids: list[int], *, now: datetime) -> None:
    """The running device period of each patient's episode, and where it stands today."""
    # Every local today lies within a day of the UTC one.
    utc_today = now.astimezone(zoneinfo.ZoneInfo("UTC")).date()
    episodes = (
        Episode.objects.filter(
            Q(end__isnull=True) | Q(end__gte=utc_today - timedelta(days=1)),
            patient__care_team_id__in=team_ids,
            start__lte=utc_today + timedelta(days=1),
        )
        .order_by("patient_id", "-start")
        .values_list("patient_id", "start", "end")
    )
    running: dict[int, tuple[DevicePeriod, date]] = {}
    for patient_id, start, end in episodes:
        row = by_id.get(patient_id)
        if row is None or patient_id in running:
            continue
        today = _local_today(row, now)
        period = period_on(start=start, end=end, day=today)
        if period is not None:
            running[patient_id] = (period, today)
    if not running:
        return
    days = device_days(
        running,
        start=min(period.start for period, _ in running.values()),
        end=max(today for _, today in running.values()),
    )
    for patient_id, (period, today) in running.items():
        by_id[patient_id].period = standing(
            period=period, days=days.get(patient_id, ()), today=today
        )


def month_bounds(zone: str, now: datetime) -> tuple[datetime, datetime]:
    """The calendar month of `now` in `zone`, as aware datetimes [start, next month's)."""
    tz = zoneinfo.ZoneInfo(zone)
    local = now.astimezone(tz)
    start = datetime(local.year, local.month, 1, tzinfo=tz)
    following = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=tz)
    return start, following


def _add_care_time(
    by_id: dict[int, PatientStanding], team_ids: list[int], *, now: datetime
) -> None:
    """The month's minutes in each patient's own zone: one condition per zone on the panel
    (a handful), each served by time_entry_patient_start."""
    zones = sorted({row.timezone for row in by_id.values()})
    in_month = Q()
    for zone in zones:
        start, following = month_bounds(zone, now)
        in_month |= Q(patient__timezone=zone, started_at__gte=start, started_at__lt=following)
    rows = (
        TimeEntry.objects.filter(in_month, patient__care_team_id__in=team_ids)
        .order_by()
        .values("patient_id")
        .annotate(
            logged=Sum("minutes"),
            approved=Sum("minutes", filter=Q(approved_at__isnull=False)),
            interactions=Count("id", filter=Q(interactive=True)),
        )
        .values_list("patient_id", "logged", "approved", "interactions")
    )
    for patient_id, minutes, approved, interactive in rows:
        row = by_id.get(patient_id)
        if row is not None:
            row.minutes_this_month = minutes or 0
            row.approved_minutes_this_month = approved or 0
            row.interactive_this_month = interactive > 0


# --- Filters and sorts (in Python, on the standings) ------------------------------------


@dataclass(frozen=True)
class PanelFilters:
    needs_review: bool = False
    no_data: bool = False
    at_risk: bool = False
    # One of minutes_thresholds(): patients in the program with fewer logged minutes.
    minutes_below: int | None = None

    def keep(self, row: PatientStanding) -> bool:
        return (
            (not self.needs_review or row.needs_review)
            and (not self.no_data or row.no_data)
            and (not self.at_risk or row.at_risk)
            and (
                self.minutes_below is None
                or (row.in_program and row.minutes_this_month < self.minutes_below)
            )
        )


_REACH_ORDER = {"cannot": 0, "at_risk": 1, "on_track": 2, "reached": 3, None: 4}
_OLDEST = datetime.min.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))


def _severity_key(row: PatientStanding) -> tuple:
    rank = Severity.rank(row.highest_severity) if row.highest_severity else -1
    return (-rank, -row.open_alerts)


# Each sort's key, "first" first: the worst severity, those needing review, the longest
# without data, the furthest from the full period, the fewest minutes, the longest unreviewed.
SORT_KEYS = {
    "severity": _severity_key,
    "name": lambda row: (row.name.casefold(),),
    "needs_review": lambda row: (not row.needs_review, *_severity_key(row)),
    "no_data": lambda row: (row.last_data_at is not None, row.last_data_at or _OLDEST),
    "at_risk": lambda row: (
        _REACH_ORDER[row.reach],
        row.days_with_data if row.days_with_data is not None else 0,
    ),
    "minutes": lambda row: (not row.in_program, row.minutes_this_month),
    "last_reviewed": lambda row: (
        row.last_reviewed_at is not None,
        row.last_reviewed_at or _OLDEST,
    ),
}


def select(
    standings: list[PatientStanding], *, filters: PanelFilters, sort: str = DEFAULT_SORT
) -> list[PatientStanding]:
    """The rows `filters` keeps, in `sort`'s order ("-" reverses it); ties stay by name."""
    reverse = sort.startswith("-")
    key = SORT_KEYS[sort.removeprefix("-")]
    kept = [row for row in standings if filters.keep(row)]
    kept.sort(key=lambda row: (row.name.casefold(), row.patient_id))
    kept.sort(key=key, reverse=reverse)  # stable: equal keys keep the name order
    return kept


# --- Phase 2: the page's rows -------------------------------------------------------------


@dataclass(frozen=True)
class LastReading:
    metric: str
    value: float | None
    systolic: float | None
    diastolic: float | None
    unit: str
    measured_at: datetime

    def age(self, now: datetime) -> timedelta:
        return max(now - self.measured_at, timedelta(0))


@dataclass
class PanelRow:
    standing: PatientStanding
    # Each watched metric, in order, with its last reading (None: never measured).
    last_readings: dict[str, LastReading | None] = field(default_factory=dict)
    main_metric: str | None = None
    trend: list[float] = field(default_factory=list)  # oldest first


class ValuesArray(Subquery):
    """A subquery's `v` column as one JSON array, newest (`n`) first, as the subquery orders
    its rows: one value per row of the outer query, on PostgreSQL or SQLite."""

    output_field = JSONField()

    def as_sql(self, compiler, connection, template=None, **extra):
        if connection.vendor == "postgresql":
            template = (
                "(SELECT COALESCE(jsonb_agg(t.v ORDER BY t.n DESC), '[]') FROM (%(subquery)s) t)"
            )
        else:
            template = "(SELECT json_group_array(t.v) FROM (%(subquery)s) t)"
        return super().as_sql(compiler, connection, template=template, **extra)


def _last_reading(metric: str, *, now: datetime) -> Coalesce:
    """The newest reading of `metric` as a JSON object: within RECENT first, and in the
    whole history only when there is none that recent (COALESCE runs the second subquery
    only then). Each one descent of reading_patient_metric_time."""
    newest = (
        Reading.objects.filter(patient_id=OuterRef("pk"), metric=metric)
        .order_by("-measured_at")
        .values(
            data=JSONObject(
                value="value",
                systolic="systolic",
                diastolic="diastolic",
                unit="unit",
                measured_at="measured_at",
            )
        )
    )
    recent = newest.filter(measured_at__gte=now - RECENT)
    return Coalesce(
        Subquery(recent[:1], output_field=JSONField()),
        Subquery(newest[:1], output_field=JSONField()),
        output_field=JSONField(),
    )


def _trend(metric: str, *, now: datetime) -> ValuesArray:
    shown = "systolic" if metric == Metric.BLOOD_PRESSURE else "value"
    newest = (
        Reading.objects.filter(
            patient_id=OuterRef("pk"), metric=metric, measured_at__gte=now - RECENT
        )
        .order_by("-measured_at")
        .values(v=F(shown), n=F("measured_at"))[:TREND_POINTS]
    )
    return ValuesArray(newest)


def _json(value: Any) -> Any:
    # SQLite hands JSON back as text where PostgreSQL's driver has decoded it.
    return json.loads(value) if isinstance(value, str) else value


def _moment(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))


def panel_rows(standings: list[PatientStanding], *, now: datetime) -> list[PanelRow]:
    """The page's rows: each patient's last reading of every watched metric and the trend
    of the main one. Two queries whatever the page's size (none for an empty page)."""
    if not standings:
        return []
    ids = [row.patient_id for row in standings]
    codes: dict[int, list[str]] = defaultdict(list)
    through = Patient.protocols.through.objects.filter(patient_id__in=ids)
    for patient_id, code in through.values_list("patient_id", "protocol__code"):
        codes[patient_id].append(code)
    watched = {patient_id: watched_metrics(codes[patient_id]) for patient_id in ids}
    # Only the watched (patient, metric) pairs are looked up: CASE runs a subquery only
    # where its condition holds.
    annotations: dict[str, Any] = {}
    for metric in Metric.values:
        watching = [pk for pk in ids if metric in watched[pk]]
        if watching:
            annotations[f"last_{metric}"] = Case(
                When(pk__in=watching, then=_last_reading(metric, now=now)),
                default=Value(None, output_field=JSONField()),
                output_field=JSONField(),
            )
    mains: dict[str, list[int]] = defaultdict(list)
    for pk in ids:
        if watched[pk]:
            mains[watched[pk][0]].append(pk)
    if mains:
        annotations["trend"] = Case(
            *(When(pk__in=pks, then=_trend(metric, now=now)) for metric, pks in mains.items()),
            default=Value(None, output_field=JSONField()),
            output_field=JSONField(),
        )
    found = {
        values["pk"]: values
        for values in Patient.objects.filter(pk__in=ids)
        .annotate(**annotations)
        .values("pk", *annotations)
    }
    rows = []
    for standing_row in standings:
        values = found.get(standing_row.patient_id, {})
        metrics = watched[standing_row.patient_id]
        row = PanelRow(standing=standing_row, main_metric=metrics[0] if metrics else None)
        for metric in metrics:
            data = _json(values.get(f"last_{metric}"))
            row.last_readings[metric] = (
                LastReading(
                    metric=metric,
                    value=data["value"],
                    systolic=data["systolic"],
                    diastolic=data["diastolic"],
                    unit=data["unit"] or "",
                    measured_at=_moment(data["measured_at"]),
                )
                if data
                else None
            )
        row.trend = list(reversed(_json(values.get("trend")) or []))
        rows.append(row)
    return rows


# --- One page -----------------------------------------------------------------------------


@dataclass
class PanelPage:
    rows: list[PanelRow]
    count: int  # rows the filters keep, on every page
    number: int
    num_pages: int
    page_size: int

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def panel_page(
    *,
    user,
    team_id: int | None = None,
    filters: PanelFilters = PanelFilters(),
    sort: str = DEFAULT_SORT,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    now: datetime | None = None,
) -> PanelPage:
    """One page of the panel (the module's docstring): raises UnknownTeam for a team that
    is not the user's, django.core.paginator.EmptyPage past the last page."""
    now = now or timezone.now()
    kept = select(panel_standings(user=user, team_id=team_id, now=now), filters=filters, sort=sort)
    paginator = Paginator(kept, page_size, allow_empty_first_page=True)
    current = paginator.page(page)
    return PanelPage(
        rows=panel_rows(list(current.object_list), now=now),
        count=paginator.count,
        number=current.number,
        num_pages=paginator.num_pages,
        page_size=page_size,
    )
