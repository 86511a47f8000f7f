"""Streaks (monitoring/nudges/streaks.py and the streak sweep). Slots are made directly;
time is frozen and passed explicitly."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import Nudge
from monitoring.nudges import nudge_streaks
from tests.factories import (
    MeasurementScheduleFactory,
    PatientFactory,
    SlotFactory,
)
from tests.monitoring.nudges.helpers import (  # noqa: F401
    DELIVER,
    clock,
    day_at_eight,
    patient,
    published,
    schedule,
)

# --- Streaks ------------------------------------------------------------------------------


# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


def late_morning(day: int, minute: int = 30) -> datetime:
    """10:<minute> CET on the given day of March 2026."""
    return datetime(2026, 3, day, 9, minute, tzinfo=UTC)


def days_done(schedule, *days, status="done"):
    for day in days:
        SlotFactory(schedule=schedule, due_at=day_at_eight(day), status=status)


@pytest.mark.django_db
def test_three_days_with_every_slot_done_earn_one_streak_nudge(
    patient, schedule, django_capture_on_commit_callbacks
):
    # given: the weighings of 2, 3 and 4 March done
    days_done(schedule, 2, 3, 4)

    # when: the sweep runs on the 5th at 10:30 local, and again at 11:45
    with django_capture_on_commit_callbacks() as callbacks:
        first = nudge_streaks(now=late_morning(5))
        second = nudge_streaks(now=late_morning(5) + timedelta(minutes=75))

    # then: one streak nudge
    assert (first, second) == ((1, None), (0, None))
    nudge = Nudge.objects.get()
    assert (nudge.purpose, nudge.slot, nudge.variant.key) == ("streak", None, "streak")
    assert nudge.text == "3 days in a row with everything logged. Well done!"
    assert nudge.decision["streak"] == 3
    assert nudge.outcome_due_at == late_morning(5) + timedelta(hours=24)
    assert published(callbacks) == [(DELIVER, (nudge.pk,))]


@pytest.mark.django_db
def test_only_milestones_earn_a_streak_nudge(patient, schedule):
    days_done(schedule, 2, 3, 4, 5)

    assert nudge_streaks(now=late_morning(6)) == (0, None)  # four days
    assert Nudge.objects.count() == 0


@pytest.mark.django_db
def test_a_missed_slot_breaks_the_streak(patient, schedule):
    days_done(schedule, 1, 3, 4)
    days_done(schedule, 2, status="missed")

    assert nudge_streaks(now=late_morning(5)) == (0, None)  # two days since the miss
    assert Nudge.objects.count() == 0


@pytest.mark.django_db
def test_a_day_is_complete_only_when_every_one_of_its_slots_is_done(patient, schedule):
    days_done(schedule, 2, 3, 4)
    evening = MeasurementScheduleFactory(patient=patient, times=["20:00"])
    SlotFactory(schedule=evening, due_at=day_at_eight(4) + timedelta(hours=12), status="missed")

    assert nudge_streaks(now=late_morning(5)) == (0, None)


@pytest.mark.django_db
def test_streak_nudges_wait_for_the_patients_late_morning(patient, schedule):
    days_done(schedule, 2, 3, 4)

    assert nudge_streaks(now=datetime(2026, 3, 5, 8, 30, tzinfo=UTC)) == (0, None)  # 09:30
    assert nudge_streaks(now=datetime(2026, 3, 5, 11, 0, tzinfo=UTC)) == (0, None)  # 12:00
    assert Nudge.objects.count() == 0


@pytest.mark.django_db
def test_streaks_are_celebrated_in_each_patients_own_late_morning(patient, schedule, team):
    # given: three-day streaks in Berlin (08:00 CET) and in New York (08:00 EST, 13:00 UTC)
    days_done(schedule, 2, 3, 4)
    new_yorker = PatientFactory(care_team=team, timezone="America/New_York")
    there = MeasurementScheduleFactory(patient=new_yorker)
    for day in (2, 3, 4):
        SlotFactory(schedule=there, due_at=day_at_eight(day) + timedelta(hours=6), status="done")

    # when: 10:30 in Berlin is 04:30 in New York; 10:30 in New York is 15:30 UTC
    berlin_morning = nudge_streaks(now=late_morning(5))
    new_york_morning = nudge_streaks(now=datetime(2026, 3, 5, 15, 30, tzinfo=UTC))

    # then
    assert (berlin_morning, new_york_morning) == ((1, None), (1, None))
    assert list(Nudge.objects.order_by("created_at").values_list("patient", flat=True)) == [
        patient.pk,
        new_yorker.pk,
    ]


@pytest.mark.django_db
def test_the_streak_sweep_takes_patients_in_batches(patient, schedule, team):
    other = PatientFactory(care_team=team, timezone="Europe/Berlin")
    days_done(schedule, 2, 3, 4)
    days_done(MeasurementScheduleFactory(patient=other), 2, 3, 4)

    first = nudge_streaks(now=late_morning(5), limit=1)
    second = nudge_streaks(now=late_morning(5), after_patient_id=first[1], limit=1)
    third = nudge_streaks(now=late_morning(5), after_patient_id=second[1], limit=1)

    assert (first, second, third) == ((1, patient.pk), (1, other.pk), (0, None))
    assert Nudge.objects.filter(purpose="streak").count() == 2
