"""The panel's first phase: where every patient of the teams stands, and the filters and
sorts that run on it (program.panel says what each flag means). Six queries whatever the
number of patients."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, IntegerField, Max, OuterRef, Q, Subquery, Sum, Value, When

from alerts.lifecycle import UNRESOLVED
from alerts.models import Alert, CareTeam
from monitoring.models import Metric, Patient, Reading, Severity
from program.codes import billing_reference
from program.models import Episode, Review, TimeEntry
from program.periods import DevicePeriod, PeriodStanding, period_on, period_standings

# Where the panel looks for a patient's data first: a display window, not a clinical number.
RECENT = timedelta(days=30)

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
    """Every patient of the user's teams (or of one team), with the panel's flags; six
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


def local_today(row: PatientStanding, now: datetime) -> date:
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
        today = local_today(row, now)
        period = period_on(start=start, end=end, day=today)
        if period is not None:
            running[patient_id] = (period, today)
    for patient_id, where in period_standings(running).items():
        by_id[patient_id].period = where


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
