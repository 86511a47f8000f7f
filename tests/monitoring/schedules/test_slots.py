"""monitoring/schedules/slots.py: slots in the patient's local time across daylight-saving
changes.

Times are stored in UTC and interpreted in the patient's zone: a 07:00 slot is at 07:00 local
on both sides of each change; a 02:30 that does not exist (spring forward) moves to the end of
the gap, 03:00; a 01:30 that happens twice (fall back) is the first.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from monitoring.schedules import (
    slots_between,
)
from monitoring.schedules.slots import FIRST_INSTANT, LOOKAHEAD, may_answer_a_slot
from tests.monitoring.schedules.helpers import BERLIN, LOS_ANGELES, NEW_YORK, due_times, utc

# --- slots_between ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "times", "days", "start", "end", "expected"),
    [
        pytest.param(
            NEW_YORK, ["02:30"], [], utc(2026, 3, 7), utc(2026, 3, 10),
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
            id="new-york-spring-forward-02:30-is-03:00-edt-that-night",
        ),
        pytest.param(
            NEW_YORK, ["07:00"], [], utc(2026, 3, 7), utc(2026, 3, 10),
            [utc(2026, 3, 7, 12, 0), utc(2026, 3, 8, 11, 0), utc(2026, 3, 9, 11, 0)],
            id="new-york-spring-forward-07:00",
        ),
        pytest.param(
            NEW_YORK, ["01:30"], [], utc(2026, 10, 31), utc(2026, 11, 3),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
            id="new-york-fall-back-01:30-is-the-first-edt-once",
        ),
        pytest.param(
            NEW_YORK, ["07:00"], [], utc(2026, 10, 31), utc(2026, 11, 3),
            [utc(2026, 10, 31, 11, 0), utc(2026, 11, 1, 12, 0), utc(2026, 11, 2, 12, 0)],
            id="new-york-fall-back-07:00",
        ),
        pytest.param(
            BERLIN, ["02:30"], [], utc(2026, 3, 28), utc(2026, 3, 31),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
            id="berlin-spring-forward-02:30-is-03:00-cest-that-night",
        ),
        pytest.param(
            BERLIN, ["07:00"], [], utc(2026, 3, 28), utc(2026, 3, 31),
            [utc(2026, 3, 28, 6, 0), utc(2026, 3, 29, 5, 0), utc(2026, 3, 30, 5, 0)],
            id="berlin-spring-forward-07:00",
        ),
        pytest.param(
            BERLIN, ["02:30"], [], utc(2026, 10, 24), utc(2026, 10, 27),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
            id="berlin-fall-back-02:30-is-the-first-cest-once",
        ),
        pytest.param(
            BERLIN, ["07:00"], [], utc(2026, 10, 24), utc(2026, 10, 27),
            [utc(2026, 10, 24, 5, 0), utc(2026, 10, 25, 6, 0), utc(2026, 10, 26, 6, 0)],
            id="berlin-fall-back-07:00",
        ),
        pytest.param(
            NEW_YORK, ["07:00"], [0, 3], utc(2026, 3, 2), utc(2026, 3, 16),
            [utc(2026, 3, 2, 12, 0), utc(2026, 3, 5, 12, 0), utc(2026, 3, 9, 11, 0),
             utc(2026, 3, 12, 11, 0)],
            id="new-york-mondays-and-thursdays-across-spring-forward",
        ),
        pytest.param(
            BERLIN, ["02:30"], [6], utc(2026, 3, 22), utc(2026, 4, 6),
            [utc(2026, 3, 22, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 4, 5, 0, 30)],
            id="berlin-sundays-including-the-sunday-of-the-change",
        ),
        pytest.param(
            NEW_YORK, ["23:30"], [5], utc(2026, 3, 7, 12), utc(2026, 3, 8, 12),
            [utc(2026, 3, 8, 4, 30)],
            id="weekday-of-the-local-date-not-the-utc-date",
        ),
        pytest.param(
            NEW_YORK, ["07:00"], [], utc(2026, 3, 7, 12, 0), utc(2026, 3, 8, 11, 0),
            [utc(2026, 3, 7, 12, 0)],
            id="start-inclusive-end-exclusive",
        ),
        pytest.param(
            NEW_YORK, ["02:30", "03:00"], [], utc(2026, 3, 8, 5), utc(2026, 3, 8, 9),
            [utc(2026, 3, 8, 7, 0)],
            id="two-times-on-one-instant-are-one-slot",
        ),
    ],
)  # fmt: skip
def test_slots_between_gives_each_local_occurrence_in_utc(zone, times, days, start, end, expected):
    assert due_times(zone, times, start, end, days) == expected


def test_a_slot_closes_its_window_in_elapsed_minutes_after_it_falls_due():
    slots = slots_between(
        times=["02:30", "07:00"],
        days_of_week=[],
        window_minutes=45,
        zone=NEW_YORK,
        start=utc(2026, 3, 8),
        end=utc(2026, 3, 9),
    )

    assert slots == [
        (utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 45)),
        (utc(2026, 3, 8, 11, 0), utc(2026, 3, 8, 11, 45)),
    ]


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        (NEW_YORK, utc(2026, 3, 8, 7)),
        (NEW_YORK, utc(2026, 11, 1, 6)),
        (BERLIN, utc(2026, 3, 29, 1)),
        (BERLIN, utc(2026, 10, 25, 1)),
    ],
    ids=["new-york-march", "new-york-november", "berlin-march", "berlin-october"],
)
def test_a_07_00_slot_is_at_07_00_local_on_both_sides_of_each_change(zone, change):
    # when: a fortnight around the change
    due = due_times(zone, ["07:00"], change - timedelta(days=7), change + timedelta(days=7))

    # then: every day once, at 07:00 local, whose UTC instant moved by an hour at the change
    assert [d.astimezone(zone).time() for d in due] == [time(7)] * 14
    dates = [d.astimezone(zone).date() for d in due]
    assert dates == [dates[0] + timedelta(days=i) for i in range(14)]
    before, after = [d for d in due if d < change], [d for d in due if d > change]
    assert len({d.time() for d in before}) == len({d.time() for d in after}) == 1
    assert abs(before[0].hour - after[0].hour) == 1


def test_no_times_or_an_empty_range_give_no_slots():
    assert due_times(NEW_YORK, [], utc(2026, 3, 1), utc(2026, 3, 9)) == []
    assert due_times(NEW_YORK, ["07:00"], utc(2026, 3, 9), utc(2026, 3, 9)) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # around 0001-01-01 in Los Angeles: the local date before it is year 0
        (utc(1, 1, 1, 6, 0), utc(1, 1, 1, 9, 0)),
        (datetime.min.replace(tzinfo=UTC), utc(1, 1, 2)),
        # around 9999-12-31: a slot's window would close in year 10000
        (
            datetime(9999, 12, 31, 12, 0, tzinfo=timezone(timedelta(hours=14))),
            datetime.max.replace(tzinfo=UTC),
        ),
    ],
)
def test_slots_at_the_ends_of_datetimes_range_are_none_instead_of_an_overflow(start, end):
    assert due_times(LOS_ANGELES, ["07:00"], start, end) == []
    assert due_times(ZoneInfo("Pacific/Kiritimati"), ["07:00"], start, end) == []


def test_a_range_reaching_past_datetimes_start_gives_the_slots_from_where_they_can_be_had():
    start = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))  # before 0001-01-01T00:00Z

    due = due_times(LOS_ANGELES, ["07:00"], start, FIRST_INSTANT + timedelta(days=2))

    # 07:00 in Los Angeles' local mean time then (UTC-7:52:58), from the first instant on
    seven_local = timedelta(hours=14, minutes=52, seconds=58)
    assert due == [FIRST_INSTANT + seven_local, FIRST_INSTANT + timedelta(days=1) + seven_local]


def test_a_reading_answers_a_slot_only_between_the_earliest_measurement_and_the_lookahead():
    now = utc(2026, 3, 1, 12)
    earliest = settings.VIGIL_EARLIEST_MEASUREMENT

    assert may_answer_a_slot(earliest, now=now)
    assert may_answer_a_slot(now + LOOKAHEAD, now=now)
    assert not may_answer_a_slot(earliest - timedelta(microseconds=1), now=now)
    assert not may_answer_a_slot(now + LOOKAHEAD + timedelta(microseconds=1), now=now)
    assert not may_answer_a_slot(datetime.min.replace(tzinfo=UTC), now=now)
