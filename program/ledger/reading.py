"""Reading the ledger as the records have it now, without writing: the month's ledger of
some teams, and one patient's month (the API's two GETs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Q
from django.utils import timezone

from monitoring.models import Patient
from program.codes import billing_reference
from program.ledger.lines import Plan, device_code_set, management_code_set
from program.ledger.months import Month
from program.ledger.plan import plan_ledger
from program.ledger.records import load_episodes, load_records, scope_filter
from program.models import Episode, LedgerLine, LineStatus


def month_ledger(
    *, month: Month, team_ids: Sequence[int] | None = None, now: datetime | None = None
) -> list[LedgerLine]:
    """The month's ledger of the teams' patients (all patients without `team_ids`), as the
    records have it now, exported lines as exported; writes nothing."""
    now = now or timezone.now()
    episodes = load_episodes(month, scope_filter(team_ids=team_ids), lock=False)
    records = load_records(month, episodes, setup_always=False)
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
    episodes = load_episodes(month, Q(patient_id=patient.pk), lock=False)
    zones = {patient.pk: patient.timezone}
    records = load_records(month, episodes, setup_always=True, patients=zones)
    plan = plan_ledger(month=month, records=records, now=now, setup_always=True)
    counted = {LineStatus.ACCRUING, LineStatus.BILLABLE, LineStatus.EXPORTED}
    device = sorted(
        (
            p
            for p in plan.lines
            if p.line.code in device_code_set(ref)
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
        if earns and line.code in management_code_set(ref) and line.period_start == month.first:
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
        (
            p.line
            for p in plan.lines
            if p.line.code == ref.setup_code and p.line.episode_id == episode.pk
        ),
        None,
    )
    if line is None:  # the plan has no line for an episode that has not begun
        return False, "the episode has not begun"
    if line.status in (LineStatus.BILLABLE, LineStatus.EXPORTED):
        return True, ""
    if line.status == LineStatus.ACCRUING:
        days = len(line.evidence.get("days", []))
        return False, (
            f"the first device period is still running: {days} of {ref.setup_min_days} days "
            "with data"
        )
    return False, line.reason
