"""Whether the patient may be messaged now, and on which channel. Pure: no database.

Everything is judged in the patient's own time zone: quiet hours are local clock times (a
span like 22:00–07:00 runs across midnight), and the daily cap counts nudges per local
calendar day (23 or 25 hours long on a daylight-saving day).

The rails pace encouragement; they do not thin out a prescribed schedule. What a nudge is
(`Urgency`) decides which hold it back:
- encouragement (measurement reminders, a dose of a non-critical plan, the supportive nudge
  after a miss, streaks): quiet hours, the daily cap and the minimum gap;
- the reminder of a due dose of a critical medication plan (anticoagulant, insulin …): one
  per scheduled dose, however close together the doses or many a day, so neither the gap nor
  the cap holds it back. A cap of 0 is the patient's "no nudges at all" and still does. Quiet
  hours hold it back unless the dose time itself is inside them: a dose scheduled then is
  evidently taken then (the patient is awake for it). It still counts, as every nudge sent,
  towards the cap and the gap of the encouragement that follows.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


class Unavailable(enum.StrEnum):
    QUIET_HOURS = "quiet_hours"
    DAILY_CAP = "daily_cap"
    JUST_MESSAGED = "just_messaged"


class Urgency(enum.StrEnum):
    """What a nudge is, for the rails (see the module docstring)."""

    ENCOURAGEMENT = "encouragement"
    CRITICAL_DOSE = "critical_dose"


def in_quiet_hours(*, local: time, start: time | None, end: time | None) -> bool:
    """Quiet from `start` (inclusive) to `end` (exclusive), across midnight when end <= start.

    No quiet hours unless both are set; start == end means none (an empty span), not all day
    (a patient who wants no nudges at all has a daily cap of 0).
    """
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def unavailable_reason(
    *,
    now: datetime,
    zone: ZoneInfo,
    quiet_start: time | None,
    quiet_end: time | None,
    daily_cap: int,
    nudged_at: Iterable[datetime],
    min_gap: timedelta,
    urgency: Urgency = Urgency.ENCOURAGEMENT,
    due_at: datetime | None = None,
) -> Unavailable | None:
    """Why the patient must not be messaged at `now`, or None when they may be.

    `nudged_at`: when the patient's earlier nudges were created (those that were or are
    being delivered), at least the last 25 hours' worth. `due_at`: the dose time a
    CRITICAL_DOSE reminder is about (needed for it).
    """
    if urgency == Urgency.CRITICAL_DOSE and due_at is None:
        raise ValueError("a critical dose reminder needs the dose time (due_at)")
    local_now = now.astimezone(zone)
    if in_quiet_hours(local=local_now.time(), start=quiet_start, end=quiet_end) and not (
        urgency == Urgency.CRITICAL_DOSE
        and in_quiet_hours(local=due_at.astimezone(zone).time(), start=quiet_start, end=quiet_end)
    ):
        return Unavailable.QUIET_HOURS
    if urgency == Urgency.CRITICAL_DOSE:
        return Unavailable.DAILY_CAP if daily_cap <= 0 else None
    earlier = [moment for moment in nudged_at if moment <= now]
    today = local_now.date()
    if sum(1 for moment in earlier if moment.astimezone(zone).date() == today) >= daily_cap:
        return Unavailable.DAILY_CAP
    if any(now - moment < min_gap for moment in earlier):
        return Unavailable.JUST_MESSAGED
    return None


# When the patient's own channel cannot reach them (no phone number for SMS, no app install
# registered for push), the nudge goes to the next channel that can, ending in the app's
# inbox, which always can.
FALLBACKS = {
    "sms": ["push", "in_app"],
    "email": ["push", "in_app"],
    "push": ["in_app"],
    "in_app": [],
}


def resolve_channel(*, preferred: str, reachable: set[str]) -> str:
    """The patient's chosen channel if it can reach them, else the first fallback that can."""
    for channel in [preferred, *FALLBACKS.get(preferred, [])]:
        if channel == "in_app" or channel in reachable:
            return channel
    return "in_app"
