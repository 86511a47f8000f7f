"""monitoring/schedules (due.py) with the reminder sweep: simulated weeks under a controlled
clock.

Times are stored in UTC and interpreted in the patient's zone: a 07:00 slot is at 07:00 local
on both sides of each change; a 02:30 that does not exist (spring forward) moves to the end of
the gap, 03:00; a 01:30 that happens twice (fall back) is the first.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from monitoring.models import (
    MeasurementSchedule,
    Slot,
    SlotStatus,
)
from monitoring.nudges import run_reminder_sweep
from monitoring.schedules import (
    add_measurement_schedule,
    add_medication_plan,
    slots_between,
)
from tests.factories import PatientFactory, ReadingItemFactory
from tests.monitoring.schedules.helpers import (
    BERLIN,
    DUE,
    NEW_YORK,
    clock,  # noqa: F401
    dose,
    utc,
)

# --- Simulated weeks ------------------------------------------------------------------------

STEP = timedelta(minutes=30)  # the sweep runs every minute in production; every half hour here


def simulate(clock, start: datetime, end: datetime, events=None) -> None:
    """Run the reminder sweep at every STEP from `start` to `end` inclusive, the clock moved
    to each tick; `events` maps a tick to what happens just before that tick's sweep."""
    now = start
    while now <= end:
        clock.move_to(now, tick=False)
        for event in (events or {}).get(now, []):
            event(now)
        run_reminder_sweep(now=now)
        now += STEP


def local_clock_times(slots, zone) -> Counter:
    return Counter(slot.due_at.astimezone(zone).strftime("%H:%M") for slot in slots)


TRANSITIONS = [
    # (the zone that changes, its date, that night's three slots in UTC, its local times)
    pytest.param(
        NEW_YORK,
        utc(2026, 3, 8),
        [utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 11, 0)],
        {"01:30": 7, "02:30": 6, "03:00": 1, "07:00": 7},
        id="new-york-march",
    ),
    pytest.param(
        NEW_YORK,
        utc(2026, 11, 1),
        [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 1, 12, 0)],
        {"01:30": 7, "02:30": 7, "07:00": 7},
        id="new-york-november",
    ),
    pytest.param(
        BERLIN,
        utc(2026, 3, 29),
        [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 5, 0)],
        {"01:30": 7, "02:30": 6, "03:00": 1, "07:00": 7},
        id="berlin-march",
    ),
    pytest.param(
        BERLIN,
        utc(2026, 10, 25),
        [utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 6, 0)],
        {"01:30": 7, "02:30": 7, "07:00": 7},
        id="berlin-october",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("zone", "change", "night_of_change", "local_times"), TRANSITIONS)
def test_a_week_across_a_dst_change_reminds_each_slot_once_at_its_local_time_and_misses_it_once(
    team, time_machine, nudge_calls, zone, change, night_of_change, local_times
):
    # given: a patient in each zone, each with slots in the changing hours and at 07:00, and
    # a dose at 18:00; a week from 18:00 UTC three days before the change (no slot is near)
    start = change - timedelta(days=3) + timedelta(hours=18)
    end = start + timedelta(days=7)
    time_machine.move_to(start, tick=False)
    owners = {}
    for patient_zone in (NEW_YORK, BERLIN):
        patient = PatientFactory(care_team=team, timezone=patient_zone.key)
        owners[patient_zone] = [
            add_measurement_schedule(
                patient=patient,
                key="spo2",
                metric="spo2",
                times=["01:30", "02:30", "07:00"],
                window_minutes=30,
            ),
            add_medication_plan(
                patient=patient,
                medication="ramipril",
                name="Ramipril 5 mg",
                dose_times=["18:00"],
                window_minutes=60,
            ),
        ]

    # when
    simulate(time_machine, start, end)

    # then: the sweep made exactly the slots of the local times, in each patient's zone
    all_slots = []
    for patient_zone, patient_owners in owners.items():
        for owner in patient_owners:
            slots = list(owner.slots.order_by("due_at"))
            times = getattr(owner, "times", None) or owner.dose_times
            expected = slots_between(
                times=times,
                days_of_week=[],
                window_minutes=owner.window_minutes,
                zone=patient_zone,
                start=start,
                end=end,
            )
            assert [(s.due_at, s.closes_at) for s in slots] == expected
            all_slots += slots
    schedule = owners[zone][0]
    assert local_clock_times(schedule.slots.all(), zone) == local_times
    night = [
        s.due_at
        for s in schedule.slots.all()
        if s.due_at.astimezone(zone).date() == (night_of_change[0].astimezone(zone).date())
    ]
    assert sorted(night) == night_of_change
    assert local_clock_times(owners[zone][1].slots.all(), zone) == {"18:00": 7}

    # each reminded once at its due time, missed once when its window closed
    assert len(all_slots) == 2 * (3 * 7 + 7)
    assert all(s.reminded_at == s.due_at for s in all_slots)
    assert all(
        s.status == SlotStatus.MISSED and s.miss_handled_at == s.closes_at for s in all_slots
    )
    reminders = Counter(
        (c.slot_id, c.now)
        for c in nudge_calls
        if c.function == "nudge_patient" and c.purpose in DUE
    )
    misses = Counter((c.slot_id, c.now) for c in nudge_calls if c.function == "handle_missed_slot")
    assert reminders == {(s.pk, s.due_at): 1 for s in all_slots}
    assert misses == {(s.pk, s.closes_at): 1 for s in all_slots}


@pytest.mark.django_db
def test_a_week_of_readings_and_doses_reminds_only_what_is_not_done_yet(
    patient, time_machine, nudge_calls
):
    # given: the New York patient's weighing at 07:00 and warfarin at 18:00, the week of the
    # March change (Sunday 8 March: 07:00 EDT is 11:00 UTC from then on)
    start, end = utc(2026, 3, 5, 18), utc(2026, 3, 12, 18)
    time_machine.move_to(start, tick=False)
    weighing = add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00"], window_minutes=180
    )
    warfarin = add_medication_plan(
        patient=patient,
        medication="warfarin-5mg",
        name="Warfarin 5 mg",
        dose_times=["18:00"],
        window_minutes=120,
        critical=True,
    )

    def weigh(now):
        record_readings(
            patient=patient, items=[ReadingItemFactory(type="weight", measured_at=now.isoformat())]
        )
        evaluate_pending_readings(patient_id=patient.pk)

    def take_warfarin(scheduled_for):
        def take(now):
            item = ReadingItemFactory(
                measured_at=now.isoformat(), **dose(scheduled_for=scheduled_for)
            )
            record_readings(patient=patient, items=[item])
            evaluate_pending_readings(patient_id=patient.pk)

        return take

    events = {
        utc(2026, 3, 8, 10, 30): [weigh],  # 06:30 EDT: before the reminder
        utc(2026, 3, 9, 12, 0): [weigh],  # 08:00 EDT: after it
        utc(2026, 3, 8, 22, 30): [take_warfarin(utc(2026, 3, 8, 22, 0))],  # 18:30 EDT
        utc(2026, 3, 10, 21, 30): [take_warfarin(utc(2026, 3, 10, 22, 0))],  # 17:30 EDT
    }

    # when
    simulate(time_machine, start, end, events)

    # then
    def days(owner):
        return [
            (
                s.due_at.astimezone(NEW_YORK).strftime("%a %H:%M"),
                s.status,
                s.reminded_at is not None,
                s.miss_handled_at is not None,
            )
            for s in owner.slots.order_by("due_at")
        ]

    assert days(weighing) == [
        ("Fri 07:00", "missed", True, True),
        ("Sat 07:00", "missed", True, True),
        ("Sun 07:00", "done", False, False),
        ("Mon 07:00", "done", True, False),
        ("Tue 07:00", "missed", True, True),
        ("Wed 07:00", "missed", True, True),
        ("Thu 07:00", "missed", True, True),
    ]
    assert days(warfarin) == [
        ("Thu 18:00", "missed", True, True),
        ("Fri 18:00", "missed", True, True),
        ("Sat 18:00", "missed", True, True),
        ("Sun 18:00", "done", True, False),
        ("Mon 18:00", "missed", True, True),
        ("Tue 18:00", "done", False, False),
        ("Wed 18:00", "missed", True, True),
    ]
    assert [s.due_at for s in weighing.slots.order_by("due_at")][1:3] == [
        utc(2026, 3, 7, 12, 0),
        utc(2026, 3, 8, 11, 0),
    ]
    reminded = [
        c.slot_id for c in nudge_calls if c.function == "nudge_patient" and c.purpose in DUE
    ]
    assert sorted(reminded) == sorted(
        s.pk for s in Slot.objects.filter(patient=patient, reminded_at__isnull=False)
    )
    assert MeasurementSchedule.objects.get(pk=weighing.pk).next_slot_at == utc(2026, 3, 13, 11, 0)
