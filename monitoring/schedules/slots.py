"""Slots in the patient's local time: which instants a schedule falls due at, DST-correct.

Pure functions (no database): the sweep, fulfilment, the API and the admin all ask here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError

from monitoring.models import MeasurementSchedule, MedicationPlan, Slot

CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_TIMES_PER_DAY = 24
# A weekly schedule may leave the patient days to measure (INR "by Wednesday"); a longer
# window would let one slot outlive the next week's.
MAX_WINDOW_MINUTES = 7 * 24 * 60
# The next slot of any schedule is at most a week away; a day more covers a DST shift.
LOOKAHEAD = timedelta(days=8)
# `end` of slots_between is exclusive; adding this makes "due at or before now" inclusive.
INSTANT = timedelta(microseconds=1)
# The instants slots are computed between: the local date a day either side of the range, a
# zone's offset and a week's window must stay inside datetime's years 1-9999 (a reading
# dated 0001-01-01 in Los Angeles overflowed them and failed every evaluation of its patient).
SLOT_MARGIN = timedelta(minutes=MAX_WINDOW_MINUTES) + timedelta(days=2)
FIRST_INSTANT = datetime.min.replace(tzinfo=UTC) + SLOT_MARGIN
LAST_INSTANT = datetime.max.replace(tzinfo=UTC) - SLOT_MARGIN

Owner = MeasurementSchedule | MedicationPlan


# --- Validation (shared by the staff API, the admin and schedules.yaml) -------------------


def clean_clock_times(value: object) -> list[str]:
    """Local times "HH:MM", each once, sorted. Raises ValidationError."""
    if not isinstance(value, list) or not value:
        raise ValidationError('Give a list of one or more local times "HH:MM", e.g. ["07:00"].')
    if len(value) > MAX_TIMES_PER_DAY:
        raise ValidationError(f"At most {MAX_TIMES_PER_DAY} times a day.")
    for item in value:
        if not isinstance(item, str) or not CLOCK_TIME.match(item):
            raise ValidationError(f'{item!r} is not a 24-hour local time "HH:MM", e.g. "07:00".')
    if len(set(value)) != len(value):
        raise ValidationError("Each time may be listed once.")
    return sorted(value)


def clean_days_of_week(value: object) -> list[int]:
    """Weekdays 0 (Monday) … 6 (Sunday), each once, sorted; empty means every day."""
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(
        isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6 for day in value
    ):
        raise ValidationError("Give a list of weekdays 0 (Monday) … 6 (Sunday), or [].")
    if len(set(value)) != len(value):
        raise ValidationError("Each weekday may be listed once.")
    return sorted(value)


def clean_window_minutes(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError("A whole number of minutes.")
    if not 1 <= value <= MAX_WINDOW_MINUTES:
        raise ValidationError(f"Between 1 and {MAX_WINDOW_MINUTES} minutes.")
    return value


# --- Slots ----------------------------------------------------------------------------------


def slots_between(
    *,
    times: list[str],
    days_of_week: list[int],
    window_minutes: int,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, datetime]]:
    """(due_at, closes_at) in UTC for every local occurrence with start <= due_at < end.

    A local time that does not exist (spring forward) moves to the first instant after the
    gap; an ambiguous one (fall back) is its first occurrence (fold=0). Weekdays are local.
    The window is elapsed time: closes_at = due_at + window_minutes. Two times landing on
    one instant are one slot.
    """
    # Compared in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
    start, end = _computable(start), _computable(end)
    if not times or start >= end:
        return []
    clock_times = sorted({time(int(t[:2]), int(t[3:])) for t in times})
    days = set(days_of_week)
    window = timedelta(minutes=window_minutes)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    due: set[datetime] = set()
    while day <= last:
        if not days or day.weekday() in days:
            for clock in clock_times:
                instant = local_instant(day, clock, zone)
                if start <= instant < end:
                    due.add(instant)
        day += timedelta(days=1)
    return [(instant, instant + window) for instant in sorted(due)]


def _computable(moment: datetime) -> datetime:
    """`moment` in UTC, brought inside the range slots are computed in."""
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00, before datetime's first instant
        return FIRST_INSTANT if moment.year == 1 else LAST_INSTANT
    return min(max(moment, FIRST_INSTANT), LAST_INSTANT)


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time on a local date (see slots_between)."""
    naive = datetime.combine(day, clock)
    instant = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first of two
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    return _end_of_gap(naive, zone)


def _end_of_gap(naive: datetime, zone: ZoneInfo) -> datetime:
    """The transition instant a non-existent wall time falls into, i.e. the first valid
    instant after the gap (02:30 on a 02:00→03:00 night is 03:00). Read with the offset after
    the transition the wall time is an earlier UTC instant, with the offset before a later
    one; the offset changes once between them: bisect to the second."""
    after = naive.replace(tzinfo=zone, fold=1).utcoffset()
    before = naive.replace(tzinfo=zone, fold=0).utcoffset()
    low = int((naive - after).replace(tzinfo=UTC).timestamp())
    high = int((naive - before).replace(tzinfo=UTC).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def may_answer_a_slot(moment: datetime, *, now: datetime) -> bool:
    """Whether a reading at `moment` could fall in any slot: not before the earliest
    measurement ingest accepts, nor further ahead than the next slot of any schedule can be.
    A reading outside (stored before ingest checked the range) answers none, and the slots
    around it need not be computed: years of them, or a date past datetime's range."""
    return settings.VIGIL_EARLIEST_MEASUREMENT <= moment <= now + LOOKAHEAD


def slots_of(owner: Owner, *, zone: ZoneInfo, start: datetime, end: datetime):
    """slots_between for a measurement schedule or a medication plan."""
    return slots_between(
        times=owner.dose_times if isinstance(owner, MedicationPlan) else owner.times,
        days_of_week=owner.days_of_week,
        window_minutes=owner.window_minutes,
        zone=zone,
        start=start,
        end=end,
    )


def first_due_at(owner: Owner, *, zone: ZoneInfo, at_or_after: datetime) -> datetime | None:
    slots = slots_of(owner, zone=zone, start=at_or_after, end=at_or_after + LOOKAHEAD)
    return slots[0][0] if slots else None


def reschedule(owner: Owner, *, zone: ZoneInfo, now: datetime) -> None:
    """Set `next_slot_at` for the owner's (new) times, without saving: None when inactive;
    else the first slot at or after now, or at or after the slot the sweep has not opened
    yet (a sweep a few seconds late must not lose today's slot to an unrelated edit)."""
    if not owner.active:
        owner.next_slot_at = None
        return
    start = now if owner.next_slot_at is None else min(now, owner.next_slot_at)
    owner.next_slot_at = first_due_at(owner, zone=zone, at_or_after=start)


def new_slot(owner: Owner, due_at: datetime, closes_at: datetime) -> Slot:
    """The (unsaved) slot of a schedule or plan due at `due_at`."""
    slot = Slot(patient_id=owner.patient_id, due_at=due_at, closes_at=closes_at)
    if isinstance(owner, MedicationPlan):
        slot.plan = owner
    else:
        slot.schedule = owner
    return slot
