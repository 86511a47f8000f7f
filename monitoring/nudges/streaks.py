"""Streaks: runs of consecutive local days on which the patient did every slot.

A streak ends yesterday in the patient's zone (today is not over) and counts the days that
had slots, every one done; days without slots (a weekday without schedules) neither count
nor break it. Milestones earn a streak nudge once per streak (monitoring/nudges/sweeps.py
decides when it goes out).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitoring.models import Nudge, NudgePurpose, Patient, Slot, SlotStatus

STREAK_MILESTONES = (3, 7, 14, 30, 60, 90)
# Enough history to see the longest milestone.
STREAK_LOOKBACK_DAYS = 91


def streak_length(*, patient: Patient, now: datetime) -> tuple[int, date | None]:
    """(days, first day) of the streak ending yesterday in the patient's zone: consecutive
    local days with slots, every one done; days without slots are skipped."""
    zone = patient.zone
    today = now.astimezone(zone).date()
    slots = Slot.objects.filter(
        patient=patient,
        due_at__gte=_local_midnight(today - timedelta(days=STREAK_LOOKBACK_DAYS), zone),
        due_at__lt=_local_midnight(today, zone),
    ).values_list("due_at", "status")
    complete: dict[date, bool] = {}
    for due_at, status in slots:
        day = due_at.astimezone(zone).date()
        complete[day] = complete.get(day, True) and status == SlotStatus.DONE
    length, first = 0, None
    for day in sorted(complete, reverse=True):
        if not complete[day]:
            break
        length, first = length + 1, day
    return length, first


def streak_to_celebrate(*, patient: Patient, now: datetime) -> int | None:
    """The streak's length when it is a milestone not yet celebrated in this streak."""
    length, first = streak_length(patient=patient, now=now)
    if length not in STREAK_MILESTONES:
        return None
    celebrated = Nudge.objects.filter(
        patient=patient,
        purpose=NudgePurpose.STREAK,
        created_at__gte=_local_midnight(first, patient.zone),
        decision__streak=length,
    ).exists()
    return None if celebrated else length


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)
