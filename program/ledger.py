"""The RPM billing ledger under the 2026 code set: what each episode may bill, and why.

Every threshold comes from program.codes.billing_reference() (monitoring/rpm_billing.yaml);
device periods and days with data from program.periods, so the panel, the outreach job and
the ledger agree. Lines (program.models.LedgerLine):

- device supply, per device period of an episode: the distinct days with device data
  (DeviceDay, the patient's zone) choose 99445 (2-15) or 99454 (16-30) — one line per period,
  so never both. A period with 0-1 days still gets a line (not billable, "fewer than 2 days
  with data") so the ledger shows every period and why it earns nothing.
- set-up (99453), once per episode: consent and >= setup min_days days with data in the
  episode's first device period. Billable as soon as both hold (nothing later undoes them).
- treatment management, per calendar month (the patient's zone) of an episode: approved
  minutes of the time entries started in the month and inside the episode -> 99470 (10-19),
  or 99457 + 99458 x each further full 20 minutes; never 99470 with 99457. One line per
  episode-month even below 10 minutes (a 99470 line: accruing, or not billable with the
  reason), so the month's standing is always shown. Unapproved minutes are in the evidence
  and do not count.

Statuses: accruing (the period or month is still running — its end is today or later in the
patient's zone — and nothing rules it out yet), billable (closed, or 99453 once met),
not_billable (+ reason), exported (frozen). Reasons, in the order they are checked: no
consent recorded; fewer than N days / minutes; no interactive communication; another
practitioner (or another episode of the patient) billed the overlapping device period / the
month.

Engineering choices (monitoring/rpm_billing.yaml `counting`, and docs for the closing note):
- Which month a line belongs to (the ledger's month, its export): device and set-up lines
  the month their period ends in; management lines their calendar month.
- Device supply once per patient per 30 days: two device periods of different episodes of
  one patient conflict when their 30-day windows from their starts overlap (the episode's
  end clips the period, not the 30 days the code covers). The earlier period bills; an
  exported line always holds. Treatment management once per patient per month: the
  episode that started first bills; an exported one always holds. The check looks at the
  episodes within two device periods before the month (a chain of three short episodes
  inside 60 days may be judged differently by two neighbouring months' runs).
- Exported lines are frozen by group: once any line of a device period, an episode's
  set-up or an episode-month is exported, later changes to the records do not re-bill that
  group (a correction is a manual matter with the billing system).
- Recomputation replaces the lines not exported, in one transaction per chunk of patients
  (all episodes of a patient in the same chunk), with the chunk's episodes locked
  (SELECT ... FOR NO KEY UPDATE, in id order) before anything is read: two runs, or a run
  and an export, never interleave on one episode. A constant number of queries per chunk.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from monitoring.models import Patient
from program.codes import BillingReference, billing_reference
from program.models import Episode, LedgerLine, LineStatus, TimeEntry
from program.periods import DevicePeriod, device_days, device_periods

# Patients recomputed per transaction: bounds how long their episodes stay locked (an
# episode's end cannot be changed meanwhile) while keeping the queries per patient near zero.
CHUNK_PATIENTS = 250
# What a recomputation rewrites of a line it finds stored (the key stays).
UPDATED_FIELDS = [
    "patient", "practitioner", "units", "period_end", "status", "reason", "evidence",
    "computed_at", "exported_at",
]  # fmt: skip

NO_CONSENT = "no consent recorded"
NO_INTERACTIVE = "no interactive communication"


# --- Months -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month; its days are local days of each patient's own zone."""

    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @classmethod
    def parse(cls, text: str) -> Month:
        """'2026-03' -> Month(2026, 3); ValueError otherwise."""
        year, _, month = text.partition("-")
        if len(year) != 4 or len(month) != 2 or not (year + month).isdigit():
            raise ValueError(text)
        return cls(date(int(year), int(month), 1).year, int(month))

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return self.next().first - timedelta(days=1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month.of(self.first - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


# --- The plan: what the records earn (no writes) ------------------------------------------


@dataclass
class PlannedLine:
    """A ledger line as the records have it now, and whether its counts earn its code
    (a 0-1 day period and a month under 10 minutes carry the lowest code without earning
    it)."""

    line: LedgerLine
    earned: bool
    group: tuple


@dataclass
class Plan:
    month: Month
    lines: list[PlannedLine] = field(default_factory=list)
    # The scope's patients whose month is over in their own zone (an export marks theirs).
    closed_patients: set[int] = field(default_factory=set)
    # Each patient's time in the month (all entries, any episode): the per-patient view.
    minutes: dict[int, int] = field(default_factory=dict)
    approved_minutes: dict[int, int] = field(default_factory=dict)
    interactive: dict[int, bool] = field(default_factory=dict)

    def month_lines(self) -> list[LedgerLine]:
        """The lines of the month's ledger: device and set-up lines whose period ends in the
        month, management lines of the month."""
        return sorted(
            (p.line for p in self.lines if in_month(p.line, self.month)),
            key=lambda line: (line.patient_id, line.period_start, line.code, line.episode_id),
        )


def in_month(line: LedgerLine, month: Month) -> bool:
    if line.code in _management_codes(billing_reference()):
        return line.period_start == month.first
    return month.first <= line.period_end <= month.last


def _management_codes(ref: BillingReference) -> tuple[str, str, str]:
    m = ref.management
    return (m.first_ten, m.first_twenty, m.add_on)


def _device_codes(ref: BillingReference) -> tuple[str, ...]:
    return tuple(code.code for code in ref.device_codes)


def context_start(month: Month) -> date:
    """The first day a device period that matters to `month` may start on: the periods
    overlapping the month, and the periods of another episode whose 30 days they may share."""
    return month.first - timedelta(days=2 * billing_reference().period_days)


@dataclass
class _Records:
    """Everything the plan reads, loaded in a constant number of queries."""

    patients: dict[int, str]  # id -> time zone
    episodes: list[Episode]
    days: dict[int, list[date]]
    entries: list[dict]
    exported: list[LedgerLine]


def _episodes(month: Month, patient_filter: Q, *, lock: bool) -> list[Episode]:
    """The episodes of the scope's patients running at some point from two device periods
    before the month to its end; locked (FOR NO KEY UPDATE, in id order, so that two runs
    never deadlock) when `lock`. NO KEY: readings, alerts and ledger lines referencing the
    rows may still be inserted meanwhile."""
    episodes = (
        _episode_scope(month, patient_filter)
        .select_related("patient", "billing_practitioner")
        .order_by("id")
    )
    if lock:
        episodes = episodes.select_for_update(no_key=True, of=("self",))
    return list(episodes)


def _episode_scope(month: Month, scope: Q):
    start = context_start(month)
    return Episode.objects.filter(scope, start__lte=month.last).filter(
        Q(end__isnull=True) | Q(end__gte=start)
    )


def _load(
    month: Month,
    episodes: list[Episode],
    *,
    setup_always: bool = False,
    patients: dict[int, str] | None = None,
) -> _Records:
    """The records the plan of `episodes` reads: 3 queries (days, time entries, exported
    lines), whatever the number of episodes. `patients` adds patients without an episode
    (their time in the month still shows)."""
    ref = billing_reference()
    zones = {episode.patient_id: episode.patient.timezone for episode in episodes}
    zones |= patients or {}
    if not zones:
        return _Records({}, [], {}, [], [])
    patient_ids = sorted(zones)
    first_day = context_start(month)
    if setup_always and episodes:
        first_day = min([first_day, *(episode.start for episode in episodes)])
    last_day = month.last + timedelta(days=ref.period_days)
    days = device_days(patient_ids, start=first_day, end=last_day) if episodes else {}
    # Every zone's local month lies within a day either side of the UTC month.
    entries = list(
        TimeEntry.objects.filter(
            patient_id__in=patient_ids,
            started_at__gte=datetime.combine(month.first - timedelta(days=1), time(), UTC),
            started_at__lt=datetime.combine(month.last + timedelta(days=2), time(), UTC),
            minutes__isnull=False,
        )
        .order_by("started_at", "id")
        .values("id", "patient_id", "started_at", "minutes", "interactive", "approved_at")
    )
    exported: list[LedgerLine] = []
    if episodes:
        exported_filter = Q(period_end__gte=first_day - timedelta(days=ref.period_days))
        if setup_always:
            exported_filter |= Q(code=ref.setup_code)
        exported = list(
            LedgerLine.objects.filter(
                exported_filter,
                episode_id__in=[episode.pk for episode in episodes],
                status=LineStatus.EXPORTED,
            ).select_related("practitioner", "episode__patient")
        )
    return _Records(zones, episodes, days, entries, exported)


def plan_ledger(
    *, month: Month, records: _Records, now: datetime, setup_always: bool = False
) -> Plan:
    """The lines the records earn for `month` (device periods overlapping it and the two
    periods before, set-up lines of episodes whose first period is among them — of every
    episode with `setup_always` — and the month's management lines), exported lines in
    place of their groups. Writes nothing."""
    plan = Plan(month)
    episodes: dict[int, list[Episode]] = defaultdict(list)
    for episode in records.episodes:
        episodes[episode.patient_id].append(episode)
    entries: dict[int, list[dict]] = defaultdict(list)
    for entry in records.entries:
        entries[entry["patient_id"]].append(entry)
    exported: dict[int, list[LedgerLine]] = defaultdict(list)
    for line in records.exported:
        exported[line.patient_id].append(line)
    for patient_id, zone_name in records.patients.items():
        zone = zoneinfo.ZoneInfo(zone_name)
        today = now.astimezone(zone).date()
        if today > month.last:
            plan.closed_patients.add(patient_id)
        context = _PatientContext(
            patient_id=patient_id,
            episodes=sorted(episodes[patient_id], key=lambda e: (e.start, e.pk)),
            days=records.days.get(patient_id, []),
            entries=entries[patient_id],
            exported=exported[patient_id],
            zone=zone,
            today=today,
            now=now,
            setup_always=setup_always,
        )
        frozen: dict[tuple, list[LedgerLine]] = defaultdict(list)
        for line in context.exported:
            frozen[_group_of(line)].append(line)
        plan.lines.extend(_device_lines(month, context, frozen))
        plan.lines.extend(_setup_lines(month, context, frozen))
        plan.lines.extend(_management_lines(month, context, frozen))
        _month_minutes(plan, context)
    return plan


@dataclass
class _PatientContext:
    patient_id: int
    episodes: list[Episode]
    days: list[date]
    entries: list[dict]
    exported: list[LedgerLine]
    zone: zoneinfo.ZoneInfo
    today: date
    now: datetime
    setup_always: bool

    def practitioner_of(self, episode_id: int) -> int | None:
        return next((e.billing_practitioner_id for e in self.episodes if e.pk == episode_id), None)


def _group_of(line: LedgerLine) -> tuple:
    ref = billing_reference()
    if line.code == ref.setup_code:
        return ("setup", line.episode_id)
    if line.code in _management_codes(ref):
        return ("management", line.episode_id, line.period_start)
    return ("device", line.episode_id, line.period_start)


def _frozen(group: tuple, frozen: dict[tuple, list[LedgerLine]]) -> list[PlannedLine]:
    """An exported group's lines, standing for the group (frozen)."""
    return [PlannedLine(line, earned=True, group=group) for line in frozen.get(group, [])]


def _line(episode: Episode, **values) -> LedgerLine:
    return LedgerLine(
        episode=episode,
        patient_id=episode.patient_id,
        practitioner=episode.billing_practitioner,
        **values,
    )


def _period_evidence(period: DevicePeriod, days: list[date]) -> dict:
    return {
        "period": {
            "index": period.index,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "days": [day.isoformat() for day in days],
        "days_with_data": len(days),
    }


@dataclass
class _DeviceCandidate:
    episode: Episode
    period: DevicePeriod
    days: list[date]

    @property
    def window(self) -> tuple[date, date]:
        """The 30 days the device code covers, from the period's start (the episode's end
        clips the period, not the days the code covers)."""
        return _window(self.period.start)


def _window(start: date) -> tuple[date, date]:
    return start, start + timedelta(days=billing_reference().period_days - 1)


def _overlaps(a: tuple[date, date], b: tuple[date, date]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _device_lines(
    month: Month, context: _PatientContext, frozen: dict[tuple, list[LedgerLine]]
) -> list[PlannedLine]:
    ref = billing_reference()
    start = context_start(month)
    candidates = []
    # Periods that have begun, in the patient's zone: a period not yet started shows nothing.
    until = min(month.last, context.today)
    for episode in context.episodes:
        for period in device_periods(start=episode.start, end=episode.end, until=until):
            if period.start >= start:
                days = [day for day in context.days if period.contains(day)]
                candidates.append(_DeviceCandidate(episode, period, days))
    # Device supply once per patient per 30 days: (window, episode id) already billed.
    taken = [
        (_window(line.period_start), line.episode_id)
        for line in context.exported
        if line.code in _device_codes(ref)
    ]
    planned = []
    for candidate in sorted(candidates, key=lambda c: (c.period.start, c.episode.pk)):
        episode, period = candidate.episode, candidate.period
        group = ("device", episode.pk, period.start)
        if group in frozen:
            planned.extend(_frozen(group, frozen))
            continue
        code = ref.device_code_for(len(candidate.days))
        status, reason = _device_status(candidate, code, taken, context)
        if status == LineStatus.BILLABLE:
            taken.append((candidate.window, episode.pk))
        line = _line(
            episode,
            # 0-1 days earn nothing; the line carries the lowest code, `earned` says so.
            code=code or ref.device_codes[0].code,
            period_start=period.start,
            period_end=period.end,
            units=1,
            status=status,
            reason=reason,
            evidence=_period_evidence(period, candidate.days),
            computed_at=context.now,
        )
        planned.append(PlannedLine(line, earned=code is not None, group=group))
    return planned


def _device_status(
    candidate: _DeviceCandidate,
    code: str | None,
    taken: list[tuple[tuple[date, date], int]],
    context: _PatientContext,
) -> tuple[str, str]:
    episode = candidate.episode
    if not episode.has_consent:
        return LineStatus.NOT_BILLABLE, NO_CONSENT
    billed_by = next(
        (
            other
            for window, other in taken
            if other != episode.pk and _overlaps(window, candidate.window)
        ),
        None,
    )
    running = candidate.period.end >= context.today
    if billed_by is None and running:
        return LineStatus.ACCRUING, ""
    if billed_by is None and code is None:
        min_days = billing_reference().device_codes[0].min_days
        return LineStatus.NOT_BILLABLE, f"fewer than {min_days} days with data"
    if billed_by is not None:
        return LineStatus.NOT_BILLABLE, _billed_elsewhere(
            episode, billed_by, context, "an overlapping device period"
        )
    return LineStatus.BILLABLE, ""


def _billed_elsewhere(episode: Episode, other_id: int, context: _PatientContext, what: str) -> str:
    same = context.practitioner_of(other_id) == episode.billing_practitioner_id
    return f"another {'episode' if same else 'practitioner'} billed {what}"


def _setup_lines(
    month: Month, context: _PatientContext, frozen: dict[tuple, list[LedgerLine]]
) -> list[PlannedLine]:
    ref = billing_reference()
    planned = []
    start = context_start(month)
    for episode in context.episodes:
        first = device_periods(start=episode.start, end=episode.end, until=episode.start)[0]
        if first.start > context.today:
            continue  # not begun
        if not context.setup_always and not (start <= first.start <= month.last):
            continue
        group = ("setup", episode.pk)
        if group in frozen:
            planned.extend(_frozen(group, frozen))
            continue
        days = [day for day in context.days if first.contains(day)]
        met = len(days) >= ref.setup_min_days
        if not episode.has_consent:
            status, reason = LineStatus.NOT_BILLABLE, NO_CONSENT
        elif met:
            status, reason = LineStatus.BILLABLE, ""
        elif first.end >= context.today:
            status, reason = LineStatus.ACCRUING, ""
        else:
            status = LineStatus.NOT_BILLABLE
            reason = f"fewer than {ref.setup_min_days} days with data in the first device period"
        evidence = _period_evidence(first, days) | {
            "min_days": ref.setup_min_days,
            "consent_at": episode.consent_at.isoformat() if episode.consent_at else None,
            "consent_method": episode.consent_method,
        }
        line = _line(
            episode,
            code=ref.setup_code,
            period_start=first.start,
            period_end=first.end,
            units=1,
            status=status,
            reason=reason,
            evidence=evidence,
            computed_at=context.now,
        )
        planned.append(PlannedLine(line, earned=met, group=group))
    return planned


def management_codes(approved_minutes: int) -> list[tuple[str, int]]:
    """The codes and units `approved_minutes` in a month earn: 99470 for 10-19, 99457 for
    the first 20 and 99458 for each further full 20 (never 99470 with 99457)."""
    m = billing_reference().management
    if approved_minutes >= m.first_twenty_min_minutes:
        codes = [(m.first_twenty, 1)]
        add_ons = (approved_minutes - m.first_twenty_min_minutes) // m.add_on_minutes
        if add_ons:
            codes.append((m.add_on, add_ons))
        return codes
    if approved_minutes >= m.first_ten_min_minutes:
        return [(m.first_ten, 1)]
    return []


@dataclass
class _MonthTime:
    """An episode's time in a month: what its management lines rest on."""

    window: tuple[date, date]
    entries: list[dict]

    @property
    def approved(self) -> list[dict]:
        return [entry for entry in self.entries if entry["approved_at"] is not None]

    @property
    def approved_minutes(self) -> int:
        return sum(entry["minutes"] for entry in self.approved)

    @property
    def interactive(self) -> list[int]:
        return [entry["id"] for entry in self.approved if entry["interactive"]]

    def evidence(self, month: Month) -> dict:
        minutes = sum(entry["minutes"] for entry in self.entries)
        return {
            "month": str(month),
            "window": {"start": self.window[0].isoformat(), "end": self.window[1].isoformat()},
            "minutes": minutes,
            "approved_minutes": self.approved_minutes,
            "unapproved_minutes": minutes - self.approved_minutes,
            "time_entries": [entry["id"] for entry in self.approved],
            "unapproved_entries": [e["id"] for e in self.entries if e["approved_at"] is None],
            "interactive_entries": self.interactive,
        }


def _management_lines(
    month: Month, context: _PatientContext, frozen: dict[tuple, list[LedgerLine]]
) -> list[PlannedLine]:
    m = billing_reference().management
    # Treatment management once per patient per month: an exported episode-month holds it.
    billed_by = next(
        (e.pk for e in context.episodes if ("management", e.pk, month.first) in frozen), None
    )
    planned = []
    for episode in context.episodes:  # by start: the episode that started first bills
        window = (max(month.first, episode.start), min(month.last, episode.end or month.last))
        group = ("management", episode.pk, month.first)
        if window[0] > window[1] or window[0] > context.today:
            continue  # no day of the episode in the month, or none begun yet
        if group in frozen:
            planned.extend(_frozen(group, frozen))
            continue
        time_ = _MonthTime(
            window,
            [
                entry
                for entry in context.entries
                if window[0] <= entry["started_at"].astimezone(context.zone).date() <= window[1]
            ],
        )
        codes = management_codes(time_.approved_minutes)
        running = window[1] >= context.today
        if not episode.has_consent:
            status, reason = LineStatus.NOT_BILLABLE, NO_CONSENT
        elif billed_by is not None and running:
            status = LineStatus.NOT_BILLABLE
            reason = _billed_elsewhere(episode, billed_by, context, "the month")
        elif running:
            status, reason = LineStatus.ACCRUING, ""
        elif not codes:
            status = LineStatus.NOT_BILLABLE
            reason = f"fewer than {m.first_ten_min_minutes} approved minutes"
        elif m.requires_interactive and not time_.interactive:
            status, reason = LineStatus.NOT_BILLABLE, NO_INTERACTIVE
        elif billed_by is not None:
            status = LineStatus.NOT_BILLABLE
            reason = _billed_elsewhere(episode, billed_by, context, "the month")
        else:
            status, reason = LineStatus.BILLABLE, ""
            billed_by = episode.pk
        evidence = time_.evidence(month)
        # Under 10 minutes the month earns nothing: one 99470 line shows it (not earned).
        for code, units in codes or [(m.first_ten, 1)]:
            line = _line(
                episode,
                code=code,
                period_start=month.first,
                period_end=month.last,
                units=units,
                status=status,
                reason=reason,
                evidence=evidence,
                computed_at=context.now,
            )
            planned.append(PlannedLine(line, earned=bool(codes), group=group))
    return planned


def _month_minutes(plan: Plan, context: _PatientContext) -> None:
    """The patient's time in the month, whatever the episode (the per-patient view)."""
    month = plan.month
    entries = [
        entry
        for entry in context.entries
        if Month.of(entry["started_at"].astimezone(context.zone).date()) == month
    ]
    approved = [entry for entry in entries if entry["approved_at"] is not None]
    plan.minutes[context.patient_id] = sum(entry["minutes"] for entry in entries)
    plan.approved_minutes[context.patient_id] = sum(entry["minutes"] for entry in approved)
    plan.interactive[context.patient_id] = any(entry["interactive"] for entry in approved)


# --- Reading the ledger (no writes) -------------------------------------------------------


def _scope(*, patient_ids: Sequence[int] | None = None, team_ids: Sequence[int] | None = None):
    scope = Q()
    if patient_ids is not None:
        scope &= Q(patient_id__in=list(patient_ids))
    if team_ids is not None:
        scope &= Q(patient__care_team_id__in=list(team_ids))
    return scope


def month_ledger(
    *, month: Month, team_ids: Sequence[int] | None = None, now: datetime | None = None
) -> list[LedgerLine]:
    """The month's ledger of the teams' patients (all patients without `team_ids`), as the
    records have it now, exported lines as exported; writes nothing."""
    now = now or timezone.now()
    episodes = _episodes(month, _scope(team_ids=team_ids), lock=False)
    records = _load(month, episodes, setup_always=False)
    return plan_ledger(month=month, records=records, now=now).month_lines()


@dataclass(frozen=True)
class DevicePeriodSummary:
    start: date
    end: date
    days_with_data: int
    code: str | None


@dataclass(frozen=True)
class PatientBilling:
    """One patient's month (docs/api.md, GET /patients/{id}/billing)."""

    device_periods: list[DevicePeriodSummary]
    minutes: int
    approved_minutes: int
    interactive: bool
    codes: list[tuple[str, int]]
    setup_billable: bool
    setup_reason: str
    lines: list[LedgerLine]


def patient_billing(
    *, patient: Patient, month: Month, now: datetime | None = None
) -> PatientBilling:
    """What one patient's records earn in `month`: the device periods overlapping it (their
    code is null when the period earns none, or is not billable), the month's minutes (all
    time logged, approved or not, whatever the episode) and the codes its episodes' approved
    minutes earn (accruing, billable or exported), and the set-up of the latest episode
    running in the month. Writes nothing."""
    ref = billing_reference()
    now = now or timezone.now()
    episodes = _episodes(month, Q(patient_id=patient.pk), lock=False)
    records = _load(month, episodes, setup_always=True, patients={patient.pk: patient.timezone})
    plan = plan_ledger(month=month, records=records, now=now, setup_always=True)
    counted = {LineStatus.ACCRUING, LineStatus.BILLABLE, LineStatus.EXPORTED}
    device = sorted(
        (
            p
            for p in plan.lines
            if p.line.code in _device_codes(ref)
            and p.line.period_start <= month.last
            and p.line.period_end >= month.first
        ),
        key=lambda p: p.line.period_start,
    )
    periods = [
        DevicePeriodSummary(
            start=p.line.period_start,
            end=p.line.period_end,
            days_with_data=p.line.evidence.get("days_with_data", 0),
            code=p.line.code if p.earned and p.line.status in counted else None,
        )
        for p in device
    ]
    codes: dict[str, int] = {}
    for p in plan.lines:
        line = p.line
        earns = p.earned and line.status in counted
        if earns and line.code in _management_codes(ref) and line.period_start == month.first:
            codes[line.code] = codes.get(line.code, 0) + line.units
    billable, reason = _setup_standing(plan, episodes, month)
    return PatientBilling(
        device_periods=periods,
        minutes=plan.minutes.get(patient.pk, 0),
        approved_minutes=plan.approved_minutes.get(patient.pk, 0),
        interactive=plan.interactive.get(patient.pk, False),
        codes=sorted(codes.items()),
        setup_billable=billable,
        setup_reason=reason,
        lines=[p.line for p in plan.lines],
    )


def _setup_standing(plan: Plan, episodes: list[Episode], month: Month) -> tuple[bool, str]:
    ref = billing_reference()
    running = [
        e for e in episodes if e.start <= month.last and (e.end is None or e.end >= month.first)
    ]
    if not running:
        return False, "no RPM episode in the month"
    episode = max(running, key=lambda e: (e.start, e.pk))
    line = next(
        p.line
        for p in plan.lines
        if p.line.code == ref.setup_code and p.line.episode_id == episode.pk
    )
    if line.status in (LineStatus.BILLABLE, LineStatus.EXPORTED):
        return True, ""
    if line.status == LineStatus.ACCRUING:
        days = len(line.evidence.get("days", []))
        return False, (
            f"the first device period is still running: {days} of {ref.setup_min_days} days "
            "with data"
        )
    return False, line.reason


# --- Writing the ledger -------------------------------------------------------------------


@dataclass
class LedgerRun:
    """What a recomputation wrote: the month's lines (stored) and those it marked exported."""

    month: Month
    lines: list[LedgerLine] = field(default_factory=list)
    exported: list[LedgerLine] = field(default_factory=list)
    patients: int = 0


def recompute_ledger(
    *,
    month: Month,
    team_ids: Sequence[int] | None = None,
    now: datetime | None = None,
    export: bool = False,
) -> LedgerRun:
    """Recomputes the month's ledger for the teams' patients (all patients without
    `team_ids`) and returns the month's stored lines.

    Writes: per chunk of patients, in one transaction with the chunk's episodes locked, the
    plan's lines — of the device periods overlapping the month and the two before, the
    set-ups of episodes whose first period is among them, the month's management lines —
    are upserted by key and the other lines not exported of that range deleted; exported
    lines stay as they are. With `export`, the month's billable lines of the patients
    whose month is over in their zone are then marked exported (status, exported_at), in the
    same transaction. Idempotent: a second run changes nothing but computed_at (the lines
    keep their ids).
    """
    now = now or timezone.now()
    patient_ids = sorted(
        set(_episode_scope(month, _scope(team_ids=team_ids)).values_list("patient_id", flat=True))
    )
    run = LedgerRun(month, patients=len(patient_ids))
    for offset in range(0, len(patient_ids), CHUNK_PATIENTS):
        chunk = patient_ids[offset : offset + CHUNK_PATIENTS]
        lines, exported = _recompute_chunk(month, chunk, now=now, export=export)
        run.lines.extend(lines)
        run.exported.extend(exported)
    run.lines.sort(
        key=lambda line: (line.patient_id, line.period_start, line.code, line.episode_id)
    )
    return run


def _recompute_chunk(
    month: Month, patient_ids: list[int], *, now: datetime, export: bool
) -> tuple[list[LedgerLine], list[LedgerLine]]:
    ref = billing_reference()
    with transaction.atomic():
        # The lock first: what is read below (exported lines above all) cannot change
        # under the plan until it is written.
        episodes = _episodes(month, Q(patient_id__in=patient_ids), lock=True)
        records = _load(month, episodes, setup_always=False)
        plan = plan_ledger(month=month, records=records, now=now)
        start = context_start(month)
        replaced = (
            Q(code__in=_device_codes(ref), period_start__gte=start, period_start__lte=month.last)
            | Q(code=ref.setup_code, period_start__gte=start, period_start__lte=month.last)
            | Q(code__in=_management_codes(ref), period_start=month.first)
        )
        # An upsert keeps a recomputed line's id (no computed line shares a key with an
        # exported one: an exported group is not recomputed), then what the plan no longer
        # has goes (an episode's end moved, a period's code changed).
        new = [p.line for p in plan.lines if p.line.pk is None]
        LedgerLine.objects.bulk_create(
            new,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["episode", "code", "period_start"],
            update_fields=UPDATED_FIELDS,
        )
        LedgerLine.objects.filter(replaced, patient_id__in=patient_ids).exclude(
            status=LineStatus.EXPORTED
        ).exclude(pk__in=[line.pk for line in new]).delete()
        marked: list[LedgerLine] = []
        if export:
            marked = [
                line
                for line in plan.month_lines()
                if line.status == LineStatus.BILLABLE and line.patient_id in plan.closed_patients
            ]
            LedgerLine.objects.filter(
                pk__in=[line.pk for line in marked], status=LineStatus.BILLABLE
            ).update(status=LineStatus.EXPORTED, exported_at=now)
            for line in marked:
                line.status, line.exported_at = LineStatus.EXPORTED, now
    return plan.month_lines(), marked


def export_ledger(
    *, month: Month, team_ids: Sequence[int], now: datetime | None = None
) -> LedgerRun:
    """The month's ledger of the teams for the billing system: recomputed, then its billable
    lines marked exported where the month is over in the patient's zone (see
    recompute_ledger). Lines of a month still running are returned and not marked."""
    return recompute_ledger(month=month, team_ids=team_ids, now=now, export=True)
