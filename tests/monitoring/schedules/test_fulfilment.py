"""monitoring/schedules/fulfilment.py: fulfilling slots from readings.

Times are stored in UTC and interpreted in the patient's zone: a 07:00 slot is at 07:00 local
on both sides of each change; a 02:30 that does not exist (spring forward) moves to the end of
the gap, 03:00; a 01:30 that happens twice (fall back) is the first.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from monitoring.models import (
    Reading,
    Slot,
    SlotStatus,
)
from monitoring.nudges import run_reminder_sweep
from monitoring.schedules import (
    add_measurement_schedule,
    add_medication_plan,
    change_schedule,
    fulfil_slots,
)
from tests.factories import ReadingItemFactory
from tests.monitoring.schedules.helpers import (
    DOSE_DUE,
    clock,  # noqa: F401
    dose,
    utc,
)

# --- Fulfilling slots from readings ---------------------------------------------------------

WEIGHING_DUE = utc(2026, 3, 2, 12, 0)
WEIGHING_CLOSES = utc(2026, 3, 2, 15, 0)


@pytest.fixture
def weighing(patient, clock):
    """The New York patient's daily 07:00 weighing, due until 10:00."""
    return add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00"], window_minutes=180
    )


@pytest.fixture
def warfarin(patient, clock):
    """The New York patient's warfarin at 18:00 (23:00 UTC), taken by 20:00."""
    return add_medication_plan(
        patient=patient,
        medication="warfarin-5mg",
        name="Warfarin 5 mg",
        dose_times=["18:00"],
        window_minutes=120,
        critical=True,
    )


def post_and_evaluate(patient, clock, at: datetime, **item) -> Reading:
    """Upload one reading at `at` (the clock moves there) and evaluate it, as the worker does."""
    clock.move_to(at, tick=False)
    item = ReadingItemFactory(**({"type": "weight", "measured_at": at.isoformat()} | item))
    result = record_readings(patient=patient, items=[item])
    assert result.created == 1, result.as_dict()
    evaluate_pending_readings(patient_id=patient.pk)
    return Reading.objects.get(patient=patient, client_id=item["id"])


def sweep(clock, at: datetime) -> int:
    clock.move_to(at, tick=False)
    return run_reminder_sweep(now=at)


def slots_of(owner) -> list[tuple]:
    return list(
        owner.slots.order_by("due_at").values_list(
            "due_at", "status", "fulfilled_by_id", "reminded_at", "miss_handled_at"
        )
    )


@pytest.mark.django_db
def test_a_weighing_up_to_an_hour_early_marks_the_slot_done_and_no_reminder_or_miss_follows(
    patient, weighing, clock, nudge_calls
):
    # when: weighed 59 minutes before the reminder, then the sweeps at 07:00 and at 10:00
    reading = post_and_evaluate(patient, clock, WEIGHING_DUE - timedelta(minutes=59))
    acted = [sweep(clock, WEIGHING_DUE), sweep(clock, WEIGHING_CLOSES)]

    # then
    assert slots_of(weighing) == [(WEIGHING_DUE, SlotStatus.DONE, reading.pk, None, None)]
    assert acted == [0, 0]
    assert nudge_calls == []
    weighing.refresh_from_db()
    assert weighing.next_slot_at == utc(2026, 3, 3, 12, 0)


@pytest.mark.django_db
def test_a_weighing_more_than_an_hour_early_does_not_count_and_the_slot_is_reminded(
    patient, weighing, clock, nudge_calls
):
    post_and_evaluate(patient, clock, WEIGHING_DUE - timedelta(minutes=61))
    assert Slot.objects.count() == 0

    assert sweep(clock, WEIGHING_DUE) == 1

    assert slots_of(weighing) == [(WEIGHING_DUE, SlotStatus.OPEN, None, WEIGHING_DUE, None)]
    assert [(c.function, c.purpose) for c in nudge_calls] == [("nudge_patient", "measurement_due")]


@pytest.mark.django_db
def test_a_weighing_after_the_window_closed_leaves_the_slot_missed(
    patient, weighing, clock, nudge_calls
):
    sweep(clock, WEIGHING_DUE)
    sweep(clock, WEIGHING_CLOSES)

    post_and_evaluate(patient, clock, WEIGHING_CLOSES + timedelta(minutes=1))

    assert slots_of(weighing) == [
        (WEIGHING_DUE, SlotStatus.MISSED, None, WEIGHING_DUE, WEIGHING_CLOSES)
    ]


@pytest.mark.django_db
def test_an_in_time_weighing_uploaded_after_the_miss_makes_the_slot_done(
    patient, weighing, clock, nudge_calls
):
    # given: the slot was reminded and missed (the phone was offline)
    sweep(clock, WEIGHING_DUE)
    sweep(clock, WEIGHING_CLOSES)

    # when: the next day the app uploads the weighing made at 08:00 local
    clock.move_to(utc(2026, 3, 3, 9, 0), tick=False)
    item = ReadingItemFactory(type="weight", measured_at="2026-03-02T08:00:00-05:00")
    record_readings(patient=patient, items=[item])
    evaluate_pending_readings(patient_id=patient.pk)

    # then: the record follows what the patient did; the miss was handled once
    reading = Reading.objects.get(client_id=item["id"])
    assert slots_of(weighing) == [
        (WEIGHING_DUE, SlotStatus.DONE, reading.pk, WEIGHING_DUE, WEIGHING_CLOSES)
    ]
    assert [(c.function, c.slot_id) for c in nudge_calls if c.function == "handle_missed_slot"] == [
        ("handle_missed_slot", weighing.slots.get().pk)
    ]


@pytest.mark.django_db
def test_one_weighing_answers_one_slot_the_earliest_it_can(patient, clock, nudge_calls):
    # given: overlapping windows, 07:00 and 08:00 both until well after 08:00
    schedule = add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00", "08:00"], window_minutes=180
    )
    sweep(clock, WEIGHING_DUE)

    # when: one weighing at 07:30
    reading = post_and_evaluate(patient, clock, WEIGHING_DUE + timedelta(minutes=30))
    sweep(clock, WEIGHING_DUE + timedelta(hours=1))

    # then: the 07:00 slot is done; the 08:00 one is still to do and is reminded
    at_eight = WEIGHING_DUE + timedelta(hours=1)
    assert slots_of(schedule) == [
        (WEIGHING_DUE, SlotStatus.DONE, reading.pk, WEIGHING_DUE, None),
        (at_eight, SlotStatus.OPEN, None, at_eight, None),
    ]


@pytest.mark.django_db
def test_evaluating_the_same_readings_again_changes_nothing(patient, weighing, clock):
    reading = post_and_evaluate(patient, clock, WEIGHING_DUE + timedelta(minutes=5))
    before = slots_of(weighing)

    assert fulfil_slots(patient_id=patient.pk, readings=[reading]) == 0
    assert slots_of(weighing) == before == [(WEIGHING_DUE, SlotStatus.DONE, reading.pk, None, None)]


@pytest.mark.django_db
def test_a_reading_of_another_metric_or_for_an_inactive_schedule_answers_nothing(
    patient, weighing, clock
):
    post_and_evaluate(patient, clock, WEIGHING_DUE, type="glucose")
    change_schedule(owner=weighing, active=False)
    post_and_evaluate(patient, clock, WEIGHING_DUE + timedelta(minutes=1))

    assert Slot.objects.count() == 0


DOSE_CLOSES = utc(2026, 3, 3, 1, 0)


@pytest.mark.django_db
def test_a_taken_dose_naming_its_slot_marks_it_done_even_when_logged_late(
    patient, warfarin, clock, nudge_calls
):
    sweep(clock, DOSE_DUE)

    # when: logged at 21:00 local, after the window, for the 18:00 dose
    reading = post_and_evaluate(patient, clock, DOSE_CLOSES + timedelta(hours=1), **dose())
    sweep(clock, DOSE_CLOSES + timedelta(hours=1))

    assert slots_of(warfarin) == [(DOSE_DUE, SlotStatus.DONE, reading.pk, DOSE_DUE, None)]
    assert [c.purpose for c in nudge_calls] == ["dose_due"]


@pytest.mark.django_db
def test_a_taken_dose_without_the_slots_time_counts_by_when_it_was_taken(
    patient, warfarin, clock, nudge_calls
):
    # when: taken 40 minutes early, naming a time that is no slot
    taken_at = DOSE_DUE - timedelta(minutes=40)
    reading = post_and_evaluate(patient, clock, taken_at, **dose(scheduled_for=taken_at))
    sweep(clock, DOSE_DUE)
    sweep(clock, DOSE_CLOSES)

    assert slots_of(warfarin) == [(DOSE_DUE, SlotStatus.DONE, reading.pk, None, None)]
    assert nudge_calls == []


@pytest.mark.django_db
def test_a_skipped_dose_or_another_medication_leaves_the_slot_to_be_missed(
    patient, warfarin, clock, nudge_calls
):
    sweep(clock, DOSE_DUE)
    post_and_evaluate(patient, clock, DOSE_DUE + timedelta(minutes=5), **dose(status="skipped"))
    post_and_evaluate(
        patient, clock, DOSE_DUE + timedelta(minutes=6), **dose(medication="metformin")
    )

    sweep(clock, DOSE_CLOSES)

    assert slots_of(warfarin) == [(DOSE_DUE, SlotStatus.MISSED, None, DOSE_DUE, DOSE_CLOSES)]
    assert [(c.function, c.purpose) for c in nudge_calls][:2] == [
        ("nudge_patient", "dose_due"),
        ("handle_missed_slot", "dose_missed"),
    ]
