"""Whether the patient may be messaged now, and on which channel. Pure: no database.

Everything is judged in the patient's own time zone: quiet hours are local clock times (a
span like 22:00–07:00 runs across midnight), and the daily cap counts nudges per local
calendar day (23 or 25 hours long on a daylight-saving day).
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
) -> Unavailable | None:
    """Why the patient must not be messaged at `now`, or None when they may be.

    `nudged_at`: when the patient's earlier nudges were created (those that were or are
    being delivered), at least the last 25 hours' worth.
    """
    local_now = now.astimezone(zone)
    if in_quiet_hours(local=local_now.time(), start=quiet_start, end=quiet_end):
        return Unavailable.QUIET_HOURS
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
