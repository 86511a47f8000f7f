"""Treatment management (99470, 99457 + 99458) per calendar month of an episode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from program.codes import billing_reference
from program.ledger.lines import (
    NO_CONSENT,
    NO_INTERACTIVE,
    PatientContext,
    Plan,
    PlannedLine,
    billed_elsewhere,
    frozen_lines,
    new_line,
)
from program.ledger.months import Month
from program.models import LedgerLine, LineStatus


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


def management_lines(
    month: Month, context: PatientContext, frozen: dict[tuple, list[LedgerLine]]
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
            planned.extend(frozen_lines(group, frozen))
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
            reason = billed_elsewhere(episode, billed_by, context, "the month")
        elif running:
            status, reason = LineStatus.ACCRUING, ""
        elif not codes:
            status = LineStatus.NOT_BILLABLE
            reason = f"fewer than {m.first_ten_min_minutes} approved minutes"
        elif m.requires_interactive and not time_.interactive:
            status, reason = LineStatus.NOT_BILLABLE, NO_INTERACTIVE
        elif billed_by is not None:
            status = LineStatus.NOT_BILLABLE
            reason = billed_elsewhere(episode, billed_by, context, "the month")
        else:
            status, reason = LineStatus.BILLABLE, ""
            billed_by = episode.pk
        evidence = time_.evidence(month)
        if reason.startswith("another "):
            evidence["billed_by_episode"] = billed_by
        # Under 10 minutes the month earns nothing: one 99470 line shows it (not earned).
        for code, units in codes or [(m.first_ten, 1)]:
            line = new_line(
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


def month_minutes(plan: Plan, context: PatientContext) -> None:
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
