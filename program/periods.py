"""Device periods, days with data, and whether a patient can still reach the full period.

Shared by the ledger (what a closed period earns), the panel (where the running period
stands) and the outreach job (who is at risk), so the three agree by construction.

- A device period is one of the consecutive 30-day periods (monitoring/rpm_billing.yaml)
  counted from the episode's start; the episode's end (inclusive) closes the running one.
- A day with data is a monitoring DeviceDay: a local day (the patient's zone) with at least
  one device-measured physiologic reading.
- Reach: a period "cannot" reach the full-period days (16) when even a reading on every
  remaining day would fall short; it is "at risk" when the pace so far (days with data per
  day elapsed), kept over the remaining days, would fall short. No tuned constant: the
  patient's own pace decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from monitoring.models import DeviceDay
from program.codes import billing_reference


@dataclass(frozen=True)
class DevicePeriod:
    index: int  # 0 for the episode's first period
    start: date
    end: date  # inclusive; the episode's end when it ends inside the period

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def device_periods(*, start: date, end: date | None, until: date) -> list[DevicePeriod]:
    """The device periods of an episode from `start` (to `end`, inclusive, if it ended) that
    have begun by `until`, in order."""
    length = billing_reference().period_days
    periods = []
    index = 0
    while True:
        period_start = start + timedelta(days=index * length)
        if period_start > until or (end is not None and period_start > end):
            return periods
        period_end = period_start + timedelta(days=length - 1)
        if end is not None and end < period_end:
            period_end = end
        periods.append(DevicePeriod(index, period_start, period_end))
        index += 1


def period_on(*, start: date, end: date | None, day: date) -> DevicePeriod | None:
    """The device period of an episode that contains `day`, or None outside the episode."""
    if day < start or (end is not None and day > end):
        return None
    length = billing_reference().period_days
    index = (day - start).days // length
    period_start = start + timedelta(days=index * length)
    period_end = period_start + timedelta(days=length - 1)
    if end is not None and end < period_end:
        period_end = end
    return DevicePeriod(index, period_start, period_end)


def device_days(patient_ids: Iterable[int], *, start: date, end: date) -> dict[int, list[date]]:
    """Each patient's days with device data from `start` to `end` (inclusive), sorted; one
    query whatever the number of patients."""
    days: dict[int, list[date]] = defaultdict(list)
    rows = (
        DeviceDay.objects.filter(patient_id__in=list(patient_ids), day__gte=start, day__lte=end)
        .order_by("patient_id", "day")
        .values_list("patient_id", "day")
    )
    for patient_id, day in rows:
        days[patient_id].append(day)
    return days


class Reach:
    REACHED = "reached"
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    CANNOT = "cannot"


@dataclass(frozen=True)
class PeriodStanding:
    """Where a running period stands on `today` (a local date of the patient)."""

    period: DevicePeriod
    days_with_data: int
    remaining_days: int  # today included when today has no data yet
    reach: str

    @property
    def at_risk(self) -> bool:
        return self.reach in (Reach.AT_RISK, Reach.CANNOT)


def standing(*, period: DevicePeriod, days: Iterable[date], today: date) -> PeriodStanding:
    """How a period stands on `today`: days with data so far, the days left in which one may
    still be added (today counts while it has none), and the reach of the full-period days."""
    needed = billing_reference().full_period_days
    counted = {day for day in days if period.contains(day) and day <= today}
    with_data = len(counted)
    remaining = max((period.end - today).days, 0) + (
        1 if period.contains(today) and today not in counted else 0
    )
    if with_data >= needed:
        reach = Reach.REACHED
    elif with_data + remaining < needed:
        reach = Reach.CANNOT
    else:
        # The pace over the days already past (today is still open, so it is not a miss),
        # kept over the days left.
        past = (min(today, period.end + timedelta(days=1)) - period.start).days
        with_data_before = sum(1 for day in counted if day < today)
        if past <= 0:
            reach = Reach.ON_TRACK
        else:
            projected = with_data + with_data_before / past * remaining
            reach = Reach.ON_TRACK if projected >= needed else Reach.AT_RISK
    return PeriodStanding(period, with_data, remaining, reach)
