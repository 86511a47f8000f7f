"""Constants, builders and fixtures shared by test_fulfilment.py, test_plans.py,
test_simulated_weeks.py, test_slots.py (imported by name: a fixture here applies only where a
test module imports it)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitoring.schedules import (
    slots_between,
)

NEW_YORK = ZoneInfo("America/New_York")


LOS_ANGELES = ZoneInfo("America/Los_Angeles")


BERLIN = ZoneInfo("Europe/Berlin")


DUE = {"measurement_due", "dose_due"}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def due_times(zone, times, start, end, days=()) -> list[datetime]:
    slots = slots_between(
        times=times, days_of_week=list(days), window_minutes=60, zone=zone, start=start, end=end
    )
    return [due_at for due_at, _ in slots]


DOSE_DUE = utc(2026, 3, 2, 23, 0)  # 18:00 in New York


def dose(status="taken", medication="warfarin-5mg", scheduled_for=DOSE_DUE) -> dict:
    return {
        "type": "dose",
        "medication": medication,
        "status": status,
        "scheduled_for": scheduled_for.isoformat(),
    }


# Monday 2 March 2026 in New York (EST, UTC-5): the 07:00 weighing is due at 12:00 UTC and
# its three-hour window closes at 15:00 UTC.
MIDNIGHT = utc(2026, 3, 2, 5, 0)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(MIDNIGHT, tick=False)
    return time_machine
