"""monitoring/schedules: slots in the patient's local time across daylight-saving changes,
protocol default schedules, fulfilling slots from readings, and weeks of the reminder sweep
under a controlled clock.

Times are stored in UTC and interpreted in the patient's zone: a 07:00 slot is at 07:00 local
on both sides of each change; a 02:30 that does not exist (spring forward) moves to the end of
the gap, 03:00; a 01:30 that happens twice (fall back) is the first.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta, timezone
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command

from monitoring.enrolment import enrol_patient
from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from monitoring.models import (
    MeasurementSchedule,
    Patient,
    ProtocolCode,
    Reading,
    Slot,
    SlotStatus,
)
from monitoring.nudges import run_reminder_sweep
from monitoring.schedules import (
    add_measurement_schedule,
    add_medication_plan,
    apply_protocol_schedules,
    change_schedule,
    fulfil_slots,
    schedule_templates,
    slots_between,
)
from monitoring.schedules.slots import FIRST_INSTANT, LOOKAHEAD, may_answer_a_slot
from tests.factories import PatientFactory, ReadingItemFactory

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


# --- Protocol defaults ----------------------------------------------------------------------


def test_each_protocol_has_its_default_measurement_schedule():
    defaults = {
        code: [(t.key, t.metric, t.times, t.days_of_week, t.window_minutes) for t in templates]
        for code, templates in schedule_templates().items()
    }

    assert set(defaults) == set(ProtocolCode.values)
    assert defaults == {
        "heart_failure": [("weight_morning", "weight", ("07:00",), (), 180)],
        "hypertension": [
            ("blood_pressure_morning_evening", "blood_pressure", ("07:00", "19:00"), (), 120)
        ],
        "diabetes": [("glucose_fasting", "glucose", ("07:00",), (), 120)],
        "anticoagulation": [("inr_weekly", "inr", ("08:00",), (0,), 720)],
        "copd": [("spo2_daily", "spo2", ("09:00",), (), 180)],
    }


@pytest.mark.django_db
def test_enrolment_gives_the_patient_the_protocols_default_schedules_with_their_first_slot(
    team, time_machine
):
    # given: 08:00 in New York
    time_machine.move_to(utc(2026, 3, 2, 13, 0), tick=False)

    # when
    patient = enrol_patient(
        external_id="MRN-7",
        name="Ada",
        timezone="America/New_York",
        care_team=team,
        protocols=["heart_failure", "hypertension"],
    )

    # then: today's 07:00 weighing has passed; the 19:00 blood pressure has not
    assert list(
        patient.measurement_schedules.order_by("key").values_list(
            "key", "protocol__code", "metric", "times", "window_minutes", "next_slot_at"
        )
    ) == [
        (
            "blood_pressure_morning_evening",
            "hypertension",
            "blood_pressure",
            ["07:00", "19:00"],
            120,
            utc(2026, 3, 3, 0, 0),
        ),
        ("weight_morning", "heart_failure", "weight", ["07:00"], 180, utc(2026, 3, 3, 12, 0)),
    ]


@pytest.mark.django_db
def test_applying_protocol_schedules_again_adds_nothing_and_keeps_the_clinics_changes(patient):
    apply_protocol_schedules(patient=patient, codes=["heart_failure"])
    schedule = patient.measurement_schedules.get()
    change_schedule(owner=schedule, times=["06:30"])

    added = apply_protocol_schedules(patient=patient, codes=["heart_failure", "copd"])

    assert added == 1
    assert list(patient.measurement_schedules.order_by("key").values_list("key", "times")) == [
        ("spo2_daily", ["09:00"]),
        ("weight_morning", ["06:30"]),
    ]


@pytest.mark.django_db
def test_the_demo_clinic_has_its_protocols_schedules_after_one_run_or_two():
    for _ in range(2):
        call_command("seed_demo", stdout=StringIO())

    schedules = {
        patient.external_id: sorted(s.key for s in patient.measurement_schedules.all())
        for patient in Patient.objects.filter(external_id__startswith="DEMO-")
    }
    assert schedules == {
        "DEMO-001": ["blood_pressure_morning_evening", "weight_morning"],
        "DEMO-002": ["glucose_fasting"],
        "DEMO-003": ["inr_weekly"],
        "DEMO-004": ["spo2_daily"],
    }


# --- Fulfilling slots from readings ---------------------------------------------------------

# Monday 2 March 2026 in New York (EST, UTC-5): the 07:00 weighing is due at 12:00 UTC and
# its three-hour window closes at 15:00 UTC.
MIDNIGHT = utc(2026, 3, 2, 5, 0)
WEIGHING_DUE = utc(2026, 3, 2, 12, 0)
WEIGHING_CLOSES = utc(2026, 3, 2, 15, 0)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(MIDNIGHT, tick=False)
    return time_machine


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


DOSE_DUE = utc(2026, 3, 2, 23, 0)  # 18:00 in New York
DOSE_CLOSES = utc(2026, 3, 3, 1, 0)


def dose(status="taken", medication="warfarin-5mg", scheduled_for=DOSE_DUE) -> dict:
    return {
        "type": "dose",
        "medication": medication,
        "status": status,
        "scheduled_for": scheduled_for.isoformat(),
    }


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
