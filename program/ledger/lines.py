"""What every rule of the ledger shares: a planned line, the plan, one patient's context,
the groups an export freezes, and the reasons."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime

from program.codes import BillingReference, billing_reference
from program.ledger.months import Month
from program.models import Episode, LedgerLine

NO_CONSENT = "no consent recorded"


NO_INTERACTIVE = "no interactive communication"


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
    """The planned lines of a month (with the periods before it that its rules look at),
    and each patient's time in the month."""

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
    if line.code in management_code_set(billing_reference()):
        return line.period_start == month.first
    return month.first <= line.period_end <= month.last


def management_code_set(ref: BillingReference) -> tuple[str, str, str]:
    m = ref.management
    return (m.first_ten, m.first_twenty, m.add_on)


def device_code_set(ref: BillingReference) -> tuple[str, ...]:
    return tuple(code.code for code in ref.device_codes)


@dataclass
class PatientContext:
    """One patient's records, as the rules read them; `today` is the patient's local date."""

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


def group_of(line: LedgerLine) -> tuple:
    ref = billing_reference()
    if line.code == ref.setup_code:
        return ("setup", line.episode_id)
    if line.code in management_code_set(ref):
        return ("management", line.episode_id, line.period_start)
    return ("device", line.episode_id, line.period_start)


def frozen_lines(group: tuple, frozen: dict[tuple, list[LedgerLine]]) -> list[PlannedLine]:
    """An exported group's lines, standing for the group (frozen)."""
    return [PlannedLine(line, earned=True, group=group) for line in frozen.get(group, [])]


def new_line(episode: Episode, **values) -> LedgerLine:
    return LedgerLine(
        episode=episode,
        patient_id=episode.patient_id,
        practitioner=episode.billing_practitioner,
        **values,
    )


def billed_elsewhere(episode: Episode, other_id: int, context: PatientContext, what: str) -> str:
    same = context.practitioner_of(other_id) == episode.billing_practitioner_id
    return f"another {'episode' if same else 'practitioner'} billed {what}"
