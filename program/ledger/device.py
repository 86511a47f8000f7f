"""Device supply (99445 / 99454) per device period, and the set-up (99453) per episode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from program.codes import billing_reference
from program.ledger.lines import (
    NO_CONSENT,
    PatientContext,
    PlannedLine,
    billed_elsewhere,
    device_code_set,
    frozen_lines,
    new_line,
)
from program.ledger.months import Month
from program.ledger.records import context_start
from program.models import Episode, LedgerLine, LineStatus
from program.periods import DevicePeriod, device_periods


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


def device_lines(
    month: Month, context: PatientContext, frozen: dict[tuple, list[LedgerLine]]
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
        if line.code in device_code_set(ref)
    ]
    planned = []
    for candidate in sorted(candidates, key=lambda c: (c.period.start, c.episode.pk)):
        episode, period = candidate.episode, candidate.period
        group = ("device", episode.pk, period.start)
        if group in frozen:
            planned.extend(frozen_lines(group, frozen))
            continue
        code = ref.device_code_for(len(candidate.days))
        status, reason, billed_by = _device_status(candidate, code, taken, context)
        if status == LineStatus.BILLABLE:
            taken.append((candidate.window, episode.pk))
        evidence = _period_evidence(period, candidate.days)
        if billed_by is not None:
            evidence["billed_by_episode"] = billed_by
        line = new_line(
            episode,
            # 0-1 days earn nothing; the line carries the lowest code, `earned` says so.
            code=code or ref.device_codes[0].code,
            period_start=period.start,
            period_end=period.end,
            units=1,
            status=status,
            reason=reason,
            evidence=evidence,
            computed_at=context.now,
        )
        planned.append(PlannedLine(line, earned=code is not None, group=group))
    return planned


def _device_status(
    candidate: _DeviceCandidate,
    code: str | None,
    taken: list[tuple[tuple[date, date], int]],
    context: PatientContext,
) -> tuple[str, str, int | None]:
    """(status, reason, the episode that billed the overlapping 30 days or None)."""
    episode = candidate.episode
    if not episode.has_consent:
        return LineStatus.NOT_BILLABLE, NO_CONSENT, None
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
        return LineStatus.ACCRUING, "", None
    if not running and code is None:
        min_days = billing_reference().device_codes[0].min_days
        return LineStatus.NOT_BILLABLE, f"fewer than {min_days} days with data", None
    if billed_by is not None:
        reason = billed_elsewhere(episode, billed_by, context, "an overlapping device period")
        return LineStatus.NOT_BILLABLE, reason, billed_by
    return LineStatus.BILLABLE, "", None


def setup_lines(
    month: Month, context: PatientContext, frozen: dict[tuple, list[LedgerLine]]
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
            planned.extend(frozen_lines(group, frozen))
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
        line = new_line(
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
