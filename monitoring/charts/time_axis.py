"""The time axis: ticks at whole local days or hours of the patient's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The x axis gets at most this many ticks; steps are tried from the finest.
MAX_X_TICKS = 15
HOUR_STEPS = (1, 2, 3, 6, 12)
DAY_STEPS = (1, 2, 7, 14, 28)


def x_ticks(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """Tick instants and their labels in local time: whole local days ("8 Mar") or whole
    local hours ("06:00", the date at midnight), at most MAX_X_TICKS of them."""
    span = end - start
    for days in DAY_STEPS if span > timedelta(days=3) else ():
        ticks = _day_ticks(start, end, zone, days)
        if len(ticks) <= MAX_X_TICKS:
            return ticks
    for hours in HOUR_STEPS:
        if span / timedelta(hours=hours) <= MAX_X_TICKS:
            return _hour_ticks(start, end, zone, hours)
    return _day_ticks(start, end, zone, DAY_STEPS[-1])


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _day_label(at: datetime) -> str:
    return f"{at.day} {at:%b}"


def _day_ticks(start: datetime, end: datetime, zone: ZoneInfo, step: int) -> list:
    day = start.astimezone(zone).date()
    if _local_midnight(day, zone) < start:
        day += timedelta(days=1)
    ticks = []
    while (at := _local_midnight(day, zone)) <= end:
        ticks.append((at, _day_label(at)))
        day += timedelta(days=step)
    return ticks


def _hour_ticks(start: datetime, end: datetime, zone: ZoneInfo, step: int) -> list:
    # Walk real time in quarter hours and keep the instants whose local clock shows a whole
    # multiple of the step: correct across DST changes and in half-hour-offset zones.
    at = start.replace(second=0, microsecond=0)
    at -= timedelta(minutes=at.minute % 15)
    ticks = []
    while at <= end:
        local = at.astimezone(zone)
        if at >= start and local.minute == 0 and local.hour % step == 0:
            ticks.append((at, _day_label(local) if local.hour == 0 else f"{local:%H:%M}"))
        at += timedelta(minutes=15)
    return ticks


def zone_caption(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    first, last = start.astimezone(zone), end.astimezone(zone)
    names = first.tzname() if first.tzname() == last.tzname() else f"{first:%Z}/{last:%Z}"
    return (
        f"Patient's local time, {zone.key} ({names}): "
        f"{first:%d %b %Y %H:%M} – {last:%d %b %Y %H:%M}"
    )
