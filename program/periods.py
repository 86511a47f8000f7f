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

from django.db import connection

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
    has_data_today: bool = False

    @property
    def at_risk(self) -> bool:
        return self.reach in (Reach.AT_RISK, Reach.CANNOT)


def standing(*, period: DevicePeriod, days: Iterable[date], today: date) -> PeriodStanding:
    """How a period stands on `today`: days with data so far, the days left in which one may
    still be added (today counts while it has none), and the reach of the full-period days."""
    counted = {day for day in days if period.contains(day) and day <= today}
    return standing_of(
        period=period, with_data=len(counted), today_counted=today in counted, today=today
    )


def standing_of(
    *, period: DevicePeriod, with_data: int, today_counted: bool, today: date
) -> PeriodStanding:
    """standing() from the counts alone: the days with data in the period up to `today`, and
    whether today is one of them (what period_counts() reads in one query)."""
    needed = billing_reference().full_period_days
    remaining = max((period.end - today).days, 0) + (
        1 if period.contains(today) and not today_counted else 0
    )
    if with_data >= needed:
        reach = Reach.REACHED
    elif with_data + remaining < needed:
        reach = Reach.CANNOT
    else:
        # The pace over the days already past (today is still open, so it is not a miss),
        # kept over the days left.
        past = (min(today, period.end + timedelta(days=1)) - period.start).days
        with_data_before = with_data - (1 if today_counted else 0)
        if past <= 0:
            reach = Reach.ON_TRACK
        else:
            projected = with_data + with_data_before / past * remaining
            reach = Reach.ON_TRACK if projected >= needed else Reach.AT_RISK
    return PeriodStanding(period, with_data, remaining, reach, today_counted)


def period_standings(running: dict[int, tuple[DevicePeriod, date]]) -> dict[int, PeriodStanding]:
    """Where each patient's running period stands on their own today ({patient id: (period,
    today)}): on PostgreSQL one aggregate query returning a row per patient (the days are
    counted in the database, each patient over their own period's index range); elsewhere
    from device_days()."""
    if not running:
        return {}
    if connection.vendor != "postgresql":
        days = device_days(
            running,
            start=min(period.start for period, _ in running.values()),
            end=max(today for _, today in running.values()),
        )
        return {
            patient_id: standing(period=period, days=days.get(patient_id, ()), today=today)
            for patient_id, (period, today) in running.items()
        }
    ids, starts, lasts, todays = [], [], [], []
    for patient_id, (period, today) in running.items():
        ids.append(patient_id)
        starts.append(period.start)
        lasts.append(min(period.end, today))
        todays.append(today)
    table = DeviceDay._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.patient_id, count(d.day), coalesce(bool_or(d.day = p.today), false) "
            "FROM unnest(%s::bigint[], %s::date[], %s::date[], %s::date[]) "
            "AS p(patient_id, first_day, last_day, today) "
            f"LEFT JOIN {table} d ON d.patient_id = p.patient_id "
            "AND d.day BETWEEN p.first_day AND p.last_day "
            "GROUP BY p.patient_id",
            [ids, starts, lasts, todays],
        )
        counts = {patient_id: (count, today_counted) for patient_id, count, today_counted in cursor}
    return {
        patient_id: standing_of(
            period=period,
            with_data=counts[patient_id][0],
            today_counted=counts[patient_id][1],
            today=today,
        )
        for patient_id, (period, today) in running.items()
    }
