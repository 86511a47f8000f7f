"""Availability, pure: quiet hours (across midnight, across daylight-saving changes), the daily
cap per local day, the minimum gap, and the channel fallback."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitoring.nudges.availability import (
    Unavailable,
    Urgency,
    in_quiet_hours,
    resolve_channel,
    unavailable_reason,
)

# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = {"quiet_start": time(22, 0), "quiet_end": time(7, 0)}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def reason(now: datetime, zone: ZoneInfo, **overrides) -> Unavailable | None:
    preferences = {
        "quiet_start": None,
        "quiet_end": None,
        "daily_cap": 3,
        "nudged_at": [],
        "min_gap": timedelta(minutes=30),
    }
    return unavailable_reason(now=now, zone=zone, **(preferences | overrides))


# --- Quiet hours --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 1, 15, 20, 59), None),  # 21:59 CET
        (utc(2026, 1, 15, 21, 0), Unavailable.QUIET_HOURS),  # 22:00
        (utc(2026, 1, 15, 22, 30), Unavailable.QUIET_HOURS),  # 23:30
        (utc(2026, 1, 15, 23, 30), Unavailable.QUIET_HOURS),  # 00:30 the next local day
        (utc(2026, 1, 16, 5, 59), Unavailable.QUIET_HOURS),  # 06:59
        (utc(2026, 1, 16, 6, 0), None),  # 07:00
    ],
)
def test_quiet_hours_from_22_to_7_run_across_midnight_in_berlin(now, expected):
    assert reason(now, BERLIN, **NIGHT) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # The day before clocks spring forward: 07:00 CET is 06:00 UTC.
        (utc(2026, 3, 28, 5, 59), Unavailable.QUIET_HOURS),
        (utc(2026, 3, 28, 6, 0), None),
        # 29 March 2026, 02:00 CET -> 03:00 CEST: 07:00 CEST is 05:00 UTC.
        (utc(2026, 3, 29, 4, 59), Unavailable.QUIET_HOURS),
        (utc(2026, 3, 29, 5, 0), None),
        (utc(2026, 3, 29, 19, 59), None),  # 21:59 CEST
        (utc(2026, 3, 29, 20, 0), Unavailable.QUIET_HOURS),  # 22:00 CEST
        # 25 October 2026, 03:00 CEST -> 02:00 CET: 07:00 CET is 06:00 UTC again.
        (utc(2026, 10, 25, 5, 59), Unavailable.QUIET_HOURS),
        (utc(2026, 10, 25, 6, 0), None),
    ],
)
def test_quiet_hours_follow_berlins_clock_across_daylight_saving_changes(now, expected):
    assert reason(now, BERLIN, **NIGHT) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 8 March 2026, 02:00 EST -> 03:00 EDT: 07:00 EDT is 11:00 UTC, 22:00 EDT is 02:00 UTC.
        (utc(2026, 3, 8, 10, 59), Unavailable.QUIET_HOURS),
        (utc(2026, 3, 8, 11, 0), None),
        (utc(2026, 3, 9, 1, 59), None),  # 21:59 EDT on the 8th
        (utc(2026, 3, 9, 2, 0), Unavailable.QUIET_HOURS),  # 22:00 EDT
        # The day before, 07:00 EST is 12:00 UTC.
        (utc(2026, 3, 7, 11, 0), Unavailable.QUIET_HOURS),
        (utc(2026, 3, 7, 12, 0), None),
    ],
)
def test_quiet_hours_follow_new_yorks_clock_across_daylight_saving_changes(now, expected):
    assert reason(now, NEW_YORK, **NIGHT) == expected


def test_quiet_hours_within_one_day_and_none_at_all():
    assert in_quiet_hours(local=time(13, 0), start=time(13, 0), end=time(15, 0))
    assert in_quiet_hours(local=time(14, 59), start=time(13, 0), end=time(15, 0))
    assert not in_quiet_hours(local=time(15, 0), start=time(13, 0), end=time(15, 0))
    assert not in_quiet_hours(local=time(12, 59), start=time(13, 0), end=time(15, 0))
    # an empty span, or a missing end, is no quiet hours
    assert not in_quiet_hours(local=time(3, 0), start=time(22, 0), end=time(22, 0))
    assert not in_quiet_hours(local=time(3, 0), start=time(22, 0), end=None)
    assert not in_quiet_hours(local=time(3, 0), start=None, end=None)


# --- The daily cap ------------------------------------------------------------------------


def test_the_cap_counts_the_nudges_of_the_patients_local_day():
    # given: New York, 8 March 2026 (a 23-hour day); two nudges at 00:10 EST and 09:00 EDT
    nudged_at = [utc(2026, 3, 8, 5, 10), utc(2026, 3, 8, 13, 0)]
    evening = utc(2026, 3, 9, 0, 0)  # 20:00 EDT on the 8th (already the 9th in UTC)

    assert reason(evening, NEW_YORK, daily_cap=2, nudged_at=nudged_at) == Unavailable.DAILY_CAP
    assert reason(evening, NEW_YORK, daily_cap=3, nudged_at=nudged_at) is None


def test_a_nudge_before_local_midnight_counts_for_the_day_before():
    # given: 23:50 EST on the 7th and 09:00 EDT on the 8th (both on the 8th in UTC)
    nudged_at = [utc(2026, 3, 8, 4, 50), utc(2026, 3, 8, 13, 0)]
    evening = utc(2026, 3, 9, 0, 0)  # 20:00 EDT on the 8th

    assert reason(evening, NEW_YORK, daily_cap=2, nudged_at=nudged_at) is None
    # and the next local day starts from zero again
    assert reason(utc(2026, 3, 9, 13, 0), NEW_YORK, daily_cap=1, nudged_at=nudged_at) is None


def test_a_cap_of_zero_means_no_nudges():
    assert reason(utc(2026, 3, 2, 12, 0), BERLIN, daily_cap=0) == Unavailable.DAILY_CAP


# --- The minimum gap ----------------------------------------------------------------------


def test_no_nudge_within_the_minimum_gap_of_the_last_one():
    now = utc(2026, 3, 2, 12, 0)

    just = [now - timedelta(minutes=29, seconds=59)]
    assert reason(now, BERLIN, nudged_at=just) == Unavailable.JUST_MESSAGED
    assert reason(now, BERLIN, nudged_at=[now - timedelta(minutes=30)]) is None
    # a nudge created after `now` (another decision racing ahead) does not count
    assert reason(now, BERLIN, nudged_at=[now + timedelta(minutes=5)]) is None


def test_quiet_hours_are_reported_before_the_cap_and_the_cap_before_the_gap():
    night = utc(2026, 1, 15, 23, 0)  # 00:00 CET
    recent = [night - timedelta(minutes=5)]

    assert reason(night, BERLIN, **NIGHT, daily_cap=0, nudged_at=recent) == (
        Unavailable.QUIET_HOURS
    )
    noon = utc(2026, 1, 15, 11, 0)
    recent = [noon - timedelta(minutes=5)]
    assert reason(noon, BERLIN, daily_cap=1, nudged_at=recent) == Unavailable.DAILY_CAP
    assert reason(noon, BERLIN, daily_cap=2, nudged_at=recent) == Unavailable.JUST_MESSAGED


# --- A due dose of a critical plan: the schedule itself, not encouragement ----------------

CRITICAL = {"urgency": Urgency.CRITICAL_DOSE}


def test_a_critical_dose_reminder_passes_the_gap_and_the_cap_that_hold_encouragement_back():
    # given: Berlin at 13:00, the patient messaged 5 minutes ago and 3 times today (cap 3)
    now = utc(2026, 3, 2, 12, 0)
    earlier = [now - timedelta(hours=3), now - timedelta(hours=1), now - timedelta(minutes=5)]

    # then: encouragement waits; the reminder of a critical dose due now does not
    assert reason(now, BERLIN, nudged_at=earlier) == Unavailable.DAILY_CAP
    assert reason(now, BERLIN, nudged_at=earlier[2:], daily_cap=5) == Unavailable.JUST_MESSAGED
    assert reason(now, BERLIN, nudged_at=earlier, **CRITICAL, due_at=now) is None
    assert reason(now, BERLIN, nudged_at=earlier, daily_cap=1, **CRITICAL, due_at=now) is None


def test_a_cap_of_zero_holds_back_critical_dose_reminders_too():
    # A cap of 0 is the patient's "no nudges at all".
    now = utc(2026, 3, 2, 12, 0)

    assert reason(now, BERLIN, daily_cap=0, **CRITICAL, due_at=now) == Unavailable.DAILY_CAP


QUIET = Unavailable.QUIET_HOURS


@pytest.mark.parametrize(
    ("dose_time", "now", "critical", "encouragement"),
    [
        # a 23:00 CET dose, inside the patient's 22:00–07:00 quiet hours: they take it then
        (utc(2026, 1, 15, 22, 0), utc(2026, 1, 15, 22, 0), None, QUIET),
        (utc(2026, 1, 15, 22, 0), utc(2026, 1, 15, 22, 20), None, QUIET),  # a late sweep
        # a 06:30 CET dose (before the quiet hours end), likewise
        (utc(2026, 1, 16, 5, 30), utc(2026, 1, 16, 5, 30), None, QUIET),
        # a 21:50 CET dose whose reminder would go out after 22:00 (a late sweep): not
        # scheduled in the quiet hours, so they hold
        (utc(2026, 1, 15, 20, 50), utc(2026, 1, 15, 21, 5), QUIET, QUIET),
        # a 20:00 CET dose, outside the quiet hours
        (utc(2026, 1, 15, 19, 0), utc(2026, 1, 15, 19, 0), None, None),
    ],
)
def test_quiet_hours_hold_a_critical_dose_reminder_unless_the_dose_is_scheduled_in_them(
    dose_time, now, critical, encouragement
):
    assert reason(now, BERLIN, **NIGHT, **CRITICAL, due_at=dose_time) == critical
    assert reason(now, BERLIN, **NIGHT) == encouragement


def test_a_critical_dose_reminder_needs_its_dose_time():
    with pytest.raises(ValueError, match="due_at"):
        reason(utc(2026, 3, 2, 12, 0), BERLIN, **CRITICAL)


# --- Channels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preferred", "reachable", "expected"),
    [
        ("sms", {"sms", "push"}, "sms"),
        ("sms", {"push"}, "push"),
        ("sms", set(), "in_app"),
        ("email", {"email"}, "email"),
        ("email", {"sms"}, "in_app"),
        ("push", {"push"}, "push"),
        ("push", {"sms", "email"}, "in_app"),
        ("in_app", set(), "in_app"),
    ],
)
def test_a_channel_that_cannot_reach_the_patient_falls_back(preferred, reachable, expected):
    assert resolve_channel(preferred=preferred, reachable=reachable) == expected
