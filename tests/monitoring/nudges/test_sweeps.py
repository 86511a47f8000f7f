"""run_reminder_sweep: each slot is opened once, reminded once and missed once, whatever the
number of sweeps running at the same moment (two beats, a retried task), on PostgreSQL.

The concurrent tests run sweeps in threads, each on its own database connection, released
together (run_concurrently); they are transactional so each sweep commits for real.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db.models import Count

from config.celery import app as celery_app
from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from monitoring.models import MeasurementSchedule, Nudge, Slot, SlotStatus
from monitoring.nudges import run_reminder_sweep, sweeps
from monitoring.schedules import (
    add_measurement_schedule,
    add_medication_plan,
    change_schedule,
    slots_between,
)
from monitoring.tasks import run_reminder_sweep_task
from tests.factories import PatientFactory, ReadingItemFactory

DUE = {"measurement_due", "dose_due"}
# Monday 2 March 2026: 07:00 in New York and 13:00 in Berlin are both 12:00 UTC.
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


def reminders(calls) -> Counter:
    return Counter(c.slot_id for c in calls if c.function == "nudge_patient" and c.purpose in DUE)


def misses(calls) -> Counter:
    return Counter(c.slot_id for c in calls if c.function == "handle_missed_slot")


# --- Two sweeps at once ---------------------------------------------------------------------


@pytest.fixture
def crowd(team, time_machine):
    """Ten patients, half in New York and half in Berlin, each with a measurement and a dose
    falling due at 12:00 UTC every day, an hour each."""
    time_machine.move_to(at(0, 0), tick=False)
    owners = []
    for number in range(10):
        zone, local = ("America/New_York", "07:00") if number % 2 else ("Europe/Berlin", "13:00")
        patient = PatientFactory(care_team=team, timezone=zone)
        owners.append(
            add_measurement_schedule(
                patient=patient, key="bp", metric="blood_pressure", times=[local], window_minutes=60
            )
        )
        owners.append(
            add_medication_plan(
                patient=patient,
                medication="ramipril",
                name="Ramipril",
                dose_times=[local],
                window_minutes=60,
            )
        )
    return owners


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_open_remind_and_miss_every_slot_exactly_once(
    crowd, time_machine, run_concurrently, nudge_calls
):
    # when: three days of two sweeps racing at every tick around the slots' hour
    acted_per_tick = []
    for day in range(3):
        for now in (at(day, 11, 30), at(day, 12), at(day, 12, 30), at(day, 13)):
            time_machine.move_to(now, tick=False)
            acted = run_concurrently(
                lambda now=now: run_reminder_sweep(now=now),
                lambda now=now: run_reminder_sweep(now=now),
            )
            acted_per_tick.append(sum(acted))

    # then: one slot per owner and day, each reminded at 12:00 and missed at 13:00, once
    slots = list(Slot.objects.order_by("id"))
    assert len(slots) == len(crowd) * 3 == 60
    assert Counter((s.schedule_id, s.plan_id) for s in slots) == {
        (o.pk, None) if isinstance(o, MeasurementSchedule) else (None, o.pk): 3 for o in crowd
    }
    assert {(s.due_at, s.closes_at) for s in slots} == {
        (at(day, 12), at(day, 13)) for day in range(3)
    }
    assert all(s.reminded_at == s.due_at for s in slots)
    assert all(s.status == SlotStatus.MISSED and s.miss_handled_at == s.closes_at for s in slots)
    assert reminders(nudge_calls) == {s.pk: 1 for s in slots}
    assert misses(nudge_calls) == {s.pk: 1 for s in slots}
    # the sweeps together report each reminder (12:00) and each miss (13:00) once
    assert acted_per_tick == [0, 20, 0, 20] * 3
    # and the nudges the sweep asked for exist at most once per slot and purpose
    duplicates = Nudge.objects.values("slot", "purpose").annotate(n=Count("id")).filter(n__gt=1)
    assert list(duplicates) == []


@pytest.mark.django_db(transaction=True)
def test_a_sweep_racing_the_evaluation_of_an_early_reading_makes_one_slot_and_no_reminder(
    team, time_machine, run_concurrently, nudge_calls
):
    # given: a 07:00 weighing in New York, weighed at 06:50 and not yet evaluated
    now = at(0, 12)
    time_machine.move_to(at(0, 0), tick=False)
    patient = PatientFactory(care_team=team, timezone="America/New_York")
    schedule = add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00"], window_minutes=180
    )
    time_machine.move_to(now, tick=False)
    measured = (now - timedelta(minutes=10)).isoformat()
    record_readings(
        patient=patient, items=[ReadingItemFactory(type="weight", measured_at=measured)]
    )

    # when: the 07:00 sweep and the evaluation at the same moment
    run_concurrently(
        lambda: run_reminder_sweep(now=now),
        lambda: evaluate_pending_readings(patient_id=patient.pk, now=now),
    )

    # then: whichever came first, the slot exists once and ends done; nobody is nagged
    slot = Slot.objects.get()
    assert (slot.schedule_id, slot.due_at, slot.status) == (schedule.pk, now, SlotStatus.DONE)
    assert reminders(nudge_calls) in (Counter(), Counter({slot.pk: 1}))
    assert Nudge.objects.count() == 0


# --- One sweep ------------------------------------------------------------------------------


@pytest.fixture
def new_york_weighing(patient, time_machine):
    time_machine.move_to(at(0, 0), tick=False)
    return add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00"], window_minutes=60
    )


@pytest.mark.django_db
def test_a_second_sweep_at_the_same_moment_changes_nothing(new_york_weighing, nudge_calls):
    assert run_reminder_sweep(now=at(0, 12)) == 1
    before = list(Slot.objects.values())

    assert run_reminder_sweep(now=at(0, 12)) == 0
    assert list(Slot.objects.values()) == before
    assert len(nudge_calls) == 1


@pytest.mark.django_db
def test_a_slot_whose_window_closed_before_any_sweep_ran_is_not_opened(
    new_york_weighing, nudge_calls
):
    # when: beat was down from 06:00 to 09:00 local; the 07:00 window closed at 08:00
    assert run_reminder_sweep(now=at(0, 14)) == 0

    # then: no slot, no reminder, no miss; tomorrow's slot is next
    assert Slot.objects.count() == 0
    assert nudge_calls == []
    new_york_weighing.refresh_from_db()
    assert new_york_weighing.next_slot_at == at(1, 12)


@pytest.mark.django_db
def test_a_late_sweep_still_reminds_a_slot_inside_its_window(new_york_weighing, nudge_calls):
    assert run_reminder_sweep(now=at(0, 12, 40)) == 1

    slot = Slot.objects.get()
    assert (slot.due_at, slot.reminded_at) == (at(0, 12), at(0, 12, 40))


@pytest.mark.django_db
def test_an_inactive_schedule_opens_no_slots_until_it_is_active_again(
    new_york_weighing, time_machine, nudge_calls
):
    paused = change_schedule(owner=new_york_weighing, active=False)
    assert paused.next_slot_at is None
    assert run_reminder_sweep(now=at(0, 12)) == 0

    time_machine.move_to(at(0, 13), tick=False)
    resumed = change_schedule(owner=new_york_weighing, active=True)

    assert resumed.next_slot_at == at(1, 12)
    assert Slot.objects.count() == 0
    assert nudge_calls == []


@pytest.mark.django_db
def test_new_times_take_effect_from_the_next_slot_and_opened_slots_keep_theirs(
    new_york_weighing, time_machine, nudge_calls
):
    # given: today's 07:00 slot is open
    run_reminder_sweep(now=at(0, 12))

    # when: at 07:10 the clinic moves the weighing to 08:30
    time_machine.move_to(at(0, 12, 10), tick=False)
    changed = change_schedule(owner=new_york_weighing, times=["08:30"])
    run_reminder_sweep(now=at(0, 13, 30))

    # then
    assert changed.next_slot_at == at(0, 13, 30)
    assert list(Slot.objects.order_by("due_at").values_list("due_at", "closes_at")) == [
        (at(0, 12), at(0, 13)),
        (at(0, 13, 30), at(0, 14, 30)),
    ]


@pytest.mark.django_db
def test_an_edit_that_does_not_change_the_timing_keeps_a_slot_the_sweep_has_not_opened_yet(
    patient, time_machine
):
    time_machine.move_to(at(0, 0), tick=False)
    plan = add_medication_plan(
        patient=patient, medication="furosemide", name="Furosemide", dose_times=["07:00"],
        window_minutes=60,
    )  # fmt: skip

    # when: 20 seconds after 07:00, before the sweep got to it, the plan is renamed and its
    # window widened
    time_machine.move_to(at(0, 12) + timedelta(seconds=20), tick=False)
    renamed = change_schedule(owner=plan, name="Furosemide 40 mg", window_minutes=90)

    assert renamed.next_slot_at == at(0, 12)
    run_reminder_sweep(now=at(0, 12, 1))
    assert list(Slot.objects.values_list("due_at", "closes_at")) == [(at(0, 12), at(0, 13, 30))]


@pytest.mark.django_db
def test_a_full_batch_enqueues_the_sweep_again_after_commit(
    team, time_machine, settings, django_capture_on_commit_callbacks, nudge_calls
):
    # given: three schedules due, two a batch
    settings.VIGIL_SWEEP_BATCH = 2
    time_machine.move_to(at(0, 0), tick=False)
    for _ in range(3):
        add_measurement_schedule(
            patient=PatientFactory(care_team=team, timezone="UTC"),
            key="weight",
            metric="weight",
            times=["12:00"],
            window_minutes=60,
        )

    # when / then: the first sweep opens and reminds a full batch and asks for another run,
    # which does the rest and asks for none
    def sweep() -> tuple[list, int]:
        with django_capture_on_commit_callbacks() as callbacks:
            run_reminder_sweep(now=at(0, 12))
        again = [c.task for c in callbacks if getattr(c, "task", None) == run_reminder_sweep_task]
        return again, Slot.objects.filter(reminded_at=at(0, 12)).count()

    assert sweep() == ([run_reminder_sweep_task], 2)
    assert sweep() == ([], 3)


@pytest.mark.django_db
def test_a_reminder_that_fails_is_tried_again_by_the_next_sweep_without_holding_up_others(
    team, time_machine, monkeypatch, nudge_calls
):
    # given: two patients due at 12:00 UTC; the first reminder's nudge fails once
    time_machine.move_to(at(0, 0), tick=False)
    first, second = (
        add_measurement_schedule(
            patient=PatientFactory(care_team=team, timezone="UTC"),
            key="weight",
            metric="weight",
            times=["12:00"],
            window_minutes=60,
        )
        for _ in range(2)
    )
    spy, failures = sweeps.nudge_patient, []

    def fails_once_for_the_first(**kwargs):
        if kwargs["slot"].schedule_id == first.pk and not failures:
            failures.append(kwargs["slot"].pk)
            raise RuntimeError("channel exploded")
        return spy(**kwargs)

    monkeypatch.setattr(sweeps, "nudge_patient", fails_once_for_the_first)

    # when / then: the first sweep reminds the second patient only
    assert run_reminder_sweep(now=at(0, 12)) == 1
    assert dict(Slot.objects.values_list("schedule_id", "reminded_at")) == {
        first.pk: None,
        second.pk: at(0, 12),
    }
    # the next sweep, a minute later, reminds the first
    assert run_reminder_sweep(now=at(0, 12, 1)) == 1
    assert dict(Slot.objects.values_list("schedule_id", "reminded_at")) == {
        first.pk: at(0, 12, 1),
        second.pk: at(0, 12),
    }
    assert reminders(nudge_calls) == {s.pk: 1 for s in Slot.objects.all()}


# --- A critical plan's doses against the rails ---------------------------------------------


def sweep_every_minute(time_machine, start: datetime, end: datetime) -> None:
    now = start
    while now <= end:
        time_machine.move_to(now, tick=False)
        run_reminder_sweep(now=now)
        now += timedelta(minutes=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("critical", "reminded_at"),
    [
        # every due dose of a critical plan is reminded of: not thinned out by the 30-minute
        # gap, nor by the daily cap (3, the default)
        (True, [at(0, 12), at(0, 12, 10), at(0, 12, 20), at(0, 12, 30), at(0, 12, 40)]),
        # a non-critical plan keeps the spacing: the reminders 10 and 20 minutes after one
        # that went out are not sent
        (False, [at(0, 12), at(0, 12, 30)]),
    ],
)
def test_the_gap_and_the_cap_thin_out_dose_reminders_only_of_a_plan_not_critical(
    patient, time_machine, critical, reminded_at
):
    # given: five doses ten minutes apart from 07:00 in New York (12:00 UTC), an hour each
    time_machine.move_to(at(0, 0), tick=False)
    plan = add_medication_plan(
        patient=patient,
        medication="warfarin-1mg",
        name="Warfarin 1 mg",
        dose_times=["07:00", "07:10", "07:20", "07:30", "07:40"],
        window_minutes=60,
        critical=critical,
    )
    assert patient.daily_nudge_cap == 3
    assert settings.VIGIL_NUDGE_MIN_GAP_MINUTES == 30

    # when: beat sweeps every minute through the morning
    sweep_every_minute(time_machine, at(0, 11, 55), at(0, 12, 45))

    # then: every slot was due and claimed once; the nudges written are the reminders sent
    slots = list(Slot.objects.filter(plan=plan).order_by("due_at"))
    assert [(s.due_at, s.reminded_at) for s in slots] == [
        (at(0, 12, minute), at(0, 12, minute)) for minute in (0, 10, 20, 30, 40)
    ]
    assert list(
        Nudge.objects.filter(patient=patient)
        .order_by("created_at")
        .values_list("purpose", "slot__due_at", "created_at")
    ) == [("dose_due", moment, moment) for moment in reminded_at]


# --- Beat and task --------------------------------------------------------------------------


def test_beat_runs_the_reminder_sweep_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["run-reminder-sweep"]

    assert entry == {"task": "monitoring.tasks.run_reminder_sweep_task", "schedule": 60.0}
    assert entry["task"] in celery_app.tasks


@pytest.mark.django_db
def test_the_sweep_task_sweeps_at_the_current_time(new_york_weighing, time_machine, nudge_calls):
    time_machine.move_to(at(0, 12), tick=False)

    assert run_reminder_sweep_task.apply().get() == 1
    assert Slot.objects.get().reminded_at == at(0, 12)


def test_the_expected_slots_of_the_crowd_fixture_are_what_slots_between_says():
    # The crowd's local times are one UTC instant on the days the tests use.
    from zoneinfo import ZoneInfo

    for zone, local in (("America/New_York", "07:00"), ("Europe/Berlin", "13:00")):
        slots = slots_between(
            times=[local],
            days_of_week=[],
            window_minutes=60,
            zone=ZoneInfo(zone),
            start=at(0, 0),
            end=at(3, 0),
        )
        assert slots == [(at(day, 12), at(day, 13)) for day in range(3)]
