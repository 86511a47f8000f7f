"""Nudges against the database: the nudge and its decision log, when none is written, once per
slot, outcomes into the patient's record, the population prior, streaks, and escalation of
persistent non-response. Slots are made directly (the reminder sweep is tested with
monitoring/schedules); time is frozen and passed explicitly."""

import importlib
import json
import random
from datetime import UTC, datetime, time, timedelta

import pytest

from alerts.lifecycle import resolve_alert
from alerts.models import Alert, AlertEvent
from monitoring.admin import NudgeVariantForm
from monitoring.models import Nudge, NudgePurpose, Reading, Rule, VariantKind, VariantPosterior
from monitoring.nudges import handle_missed_slot, nudge_patient, nudge_streaks, placeholders_of
from monitoring.nudges.outcomes import settle_nudge_outcomes
from monitoring.nudges.policy import Candidate, choose_variant
from monitoring.patient_rules import apply_protocols, change_rule
from tests.factories import (
    MeasurementScheduleFactory,
    MedicationPlanFactory,
    NudgeFactory,
    PatientFactory,
    PushTokenFactory,
    ReadingFactory,
    SlotFactory,
)
from tests.monitoring.conftest import QueuedTask
from tests.monitoring.rules.conftest import reference

# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


# Monday 2 March 2026, 08:00 in Berlin (CET): a weighing or a dose is due.
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
DELIVER = "monitoring.tasks.deliver_nudge_task"
MISSED_DOSE_FLAG = "medication_adherence.dose_level_adherence.missed_dose_flag"
# ">= 2 consecutive missed doses of a critical medication", warning
DEFAULTS = reference(f"{MISSED_DOSE_FLAG}.alert_defaults")
MISSED_IN_A_ROW = int(DEFAULTS[0]["rule"].split()[1])
ROUTE = "alerts.tasks.route_alert_event_task"
ENGLISH_REMINDERS = ["benefit", "care-team", "plain"]
WEIGHT_TEXTS = {
    "benefit": "Time for your weight check (08:00).",
    "care-team": "Your care team follows your weight check (08:00).",
    "plain": "Reminder: your weight check is due at 08:00.",
}


@pytest.fixture(autouse=True)
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def patient(team, variants):
    return PatientFactory(care_team=team, timezone="Europe/Berlin", language="en")


def weighing(patient, *, due=NOW, **fields):
    schedule = fields.pop("schedule", None) or MeasurementScheduleFactory(patient=patient)
    return SlotFactory(schedule=schedule, due_at=due, **fields)


def dose(plan, *, due=NOW, **fields):
    return SlotFactory(plan=plan, due_at=due, **fields)


def logged_dose(slot, status, *, after=timedelta(minutes=5)):
    """The dose the patient logged for the slot's scheduled time, `after` it."""
    return ReadingFactory(
        patient=slot.patient,
        metric="dose",
        value=None,
        unit="",
        medication=slot.plan.medication,
        dose_status=status,
        scheduled_for=slot.due_at,
        measured_at=slot.due_at + after,
    )


def remind(patient, slot, *, now=NOW, seed=1):
    purpose = "dose_due" if slot.plan_id else "measurement_due"
    return nudge_patient(
        patient=patient, purpose=purpose, slot=slot, now=now, rng=random.Random(seed)
    )


def published(callbacks) -> list[tuple[str, tuple]]:
    return [(callback.task.name, callback.args) for callback in callbacks]


def candidate_log(key, successes=0, failures=0, alpha=1.0, beta=1.0) -> dict:
    return {
        "key": key,
        "successes": successes,
        "failures": failures,
        "prior_alpha": alpha,
        "prior_beta": beta,
    }


# --- The nudge and its decision log -------------------------------------------------------


@pytest.mark.django_db
def test_a_reminder_writes_the_nudge_with_its_decision_log_and_enqueues_its_delivery(
    patient, django_capture_on_commit_callbacks, notifications_queue
):
    # given: a weighing due now, and a patient new to nudges (warm-up: uniform choice)
    slot = weighing(patient)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        nudge = remind(patient, slot, seed=1)
        assert len(notifications_queue) == 0  # not before the commit

    # then
    nudge.refresh_from_db()
    chosen = ENGLISH_REMINDERS[random.Random(1).randrange(3)]
    assert nudge.variant.key == chosen
    assert nudge.decision == {
        "policy": "warmup",
        "candidates": [candidate_log(key) for key in ENGLISH_REMINDERS],
        "samples": {},
        "chosen": chosen,
        "probability": 1 / 3,
        "decisions_so_far": 0,
    }
    assert (nudge.patient, nudge.slot, nudge.purpose) == (patient, slot, "measurement_due")
    assert (nudge.channel, nudge.status, nudge.text) == ("in_app", "pending", WEIGHT_TEXTS[chosen])
    assert nudge.created_at == NOW
    assert nudge.outcome_due_at == slot.closes_at == NOW + timedelta(hours=2)
    assert (nudge.acted, nudge.acted_at, nudge.sent_at) == (None, None, None)
    assert published(callbacks) == [(DELIVER, (nudge.pk,))]
    assert notifications_queue.tasks() == [QueuedTask(DELIVER, [nudge.pk], {})]


@pytest.mark.django_db
def test_a_dose_reminder_in_german_names_the_medication(team, variants):
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin", language="de-DE")
    slot = dose(MedicationPlanFactory(patient=patient))

    nudge = remind(patient, slot)

    # the only German candidate is chosen for certain
    assert nudge.variant.key == "plain-german"
    assert nudge.text == "Erinnerung: Ihre Dosis Warfarin 5 mg ist um 08:00 fällig."
    assert nudge.purpose == "dose_due"
    assert (nudge.decision["candidates"], nudge.decision["probability"]) == (
        [candidate_log("plain-german")],
        1.0,
    )


@pytest.mark.django_db
def test_a_patient_whose_language_has_no_variants_gets_english(team, variants):
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin", language="fr")

    nudge = remind(patient, weighing(patient))

    assert nudge.variant.key in ENGLISH_REMINDERS
    assert nudge.text == WEIGHT_TEXTS[nudge.variant.key]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("preference", "phone", "push_token", "channel"),
    [
        ("sms", "+4915112345678", False, "sms"),
        ("sms", "", True, "push"),
        ("sms", "", False, "in_app"),
        ("push", "", True, "push"),
        ("push", "", False, "in_app"),
    ],
)
def test_the_nudge_goes_out_on_the_patients_channel_when_it_can_reach_them(
    team, variants, preference, phone, push_token, channel
):
    patient = PatientFactory(
        care_team=team, timezone="Europe/Berlin", nudge_channel=preference, phone=phone
    )
    if push_token:
        PushTokenFactory(patient=patient)

    assert remind(patient, weighing(patient)).channel == channel


@pytest.mark.django_db
def test_the_population_prior_and_the_patients_record_are_in_the_decision_log(
    patient, variants, settings
):
    # given: past warm-up; the patient's own record with 'plain' (2 of 3 acted on), and
    # other patients' records: 'plain' 30 of 40, 'benefit' 1 of 4, 'care-team' none
    settings.VIGIL_NUDGE_WARMUP_DECISIONS = 0
    plain, benefit = variants["plain"], variants["benefit"]
    first, second = PatientFactory.create_batch(2, care_team=patient.care_team)
    for who, variant, successes, failures in [
        (patient, plain, 2, 1),
        (first, plain, 20, 10),
        (second, plain, 10, 0),
        (first, benefit, 1, 3),
    ]:
        VariantPosterior.objects.create(
            patient=who, variant=variant, successes=successes, failures=failures
        )

    # when
    nudge = remind(patient, weighing(patient), seed=5)

    # then: 40 outcomes weigh as 10 (Beta(1 + 7.5, 1 + 2.5)); 4 count in full (Beta(2, 4));
    # no data is Beta(1, 1); the patient's own record is not counted in their prior
    candidates = [
        Candidate("benefit", 0, 0, 2.0, 4.0),
        Candidate("care-team", 0, 0, 1.0, 1.0),
        Candidate("plain", 2, 1, 8.5, 3.5),
    ]
    expected = choose_variant(
        candidates,
        decisions_so_far=0,
        rng=random.Random(5),
        warmup=0,
        min_probability=0.1,
        max_probability=0.8,
    )
    nudge.refresh_from_db()
    assert nudge.decision == {
        "policy": "thompson",
        "candidates": [
            candidate_log("benefit", alpha=2.0, beta=4.0),
            candidate_log("care-team"),
            candidate_log("plain", 2, 1, alpha=8.5, beta=3.5),
        ],
        "samples": expected.samples,
        "chosen": expected.chosen,
        "probability": expected.probability,
        "decisions_so_far": 0,
    }
    assert nudge.variant.key == expected.chosen
    assert 0.1 <= expected.probability <= 0.8


@pytest.mark.django_db
def test_warm_up_ends_after_the_patients_first_decisions(patient):
    # given: five earlier nudges (warm-up is 5 decisions), days ago
    NudgeFactory.create_batch(5, patient=patient, created_at=NOW - timedelta(days=3))

    nudge = remind(patient, weighing(patient))

    assert nudge.decision["policy"] == "thompson"
    assert nudge.decision["decisions_so_far"] == 5
    assert set(nudge.decision["samples"]) == set(ENGLISH_REMINDERS)


# --- When no nudge is written -------------------------------------------------------------


def assert_nothing_written(result, callbacks):
    assert result is None
    assert Nudge.objects.count() == 0
    assert callbacks == []


@pytest.mark.django_db
def test_no_reminder_for_a_slot_already_done(patient, django_capture_on_commit_callbacks):
    reading = ReadingFactory(patient=patient, measured_at=NOW - timedelta(minutes=5))
    slot = weighing(patient, status="done", fulfilled_by=reading)

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, slot)

    assert_nothing_written(result, callbacks)


@pytest.mark.django_db
def test_no_reminder_for_a_measurement_taken_but_not_yet_evaluated(
    patient, django_capture_on_commit_callbacks
):
    # given: weighed 10 minutes before the slot; evaluation has not fulfilled the slot yet
    ReadingFactory(patient=patient, metric="weight", measured_at=NOW - timedelta(minutes=10))
    slot = weighing(patient)

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, slot)

    assert_nothing_written(result, callbacks)
    assert slot.status == "open"


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["taken", "skipped"])
def test_no_reminder_for_a_dose_already_logged(patient, django_capture_on_commit_callbacks, status):
    plan = MedicationPlanFactory(patient=patient)
    ReadingFactory(
        patient=patient,
        metric="dose",
        value=None,
        unit="",
        medication=plan.medication,
        dose_status=status,
        scheduled_for=NOW,
        measured_at=NOW - timedelta(minutes=3),
    )

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, dose(plan))

    assert_nothing_written(result, callbacks)


@pytest.mark.django_db
def test_a_reading_of_another_metric_or_answering_an_earlier_slot_does_not_count(patient):
    # given: a blood pressure an hour ago, and a weighing that answered the 07:30 slot
    schedule = MeasurementScheduleFactory(patient=patient, times=["07:30", "08:00"])
    ReadingFactory(patient=patient, metric="blood_pressure", systolic=120, diastolic=80)
    earlier = ReadingFactory(patient=patient, measured_at=NOW - timedelta(minutes=25))
    weighing(
        patient,
        schedule=schedule,
        due=NOW - timedelta(minutes=30),
        status="done",
        fulfilled_by=earlier,
    )

    nudge = remind(patient, weighing(patient, schedule=schedule))

    assert nudge is not None


@pytest.mark.django_db
def test_no_nudge_in_quiet_hours(team, variants, django_capture_on_commit_callbacks):
    patient = PatientFactory(
        care_team=team,
        timezone="Europe/Berlin",
        quiet_hours_start=time(22, 0),
        quiet_hours_end=time(7, 0),
    )
    early = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)  # 06:30 CET
    slot = weighing(patient, due=early)

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, slot, now=early)

    assert_nothing_written(result, callbacks)


@pytest.mark.django_db
def test_no_nudge_once_the_daily_cap_is_reached(team, variants, django_capture_on_commit_callbacks):
    # given: a cap of 2, reached at 05:00 and 06:00 this morning
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin", daily_nudge_cap=2)
    for hours in (3, 2):
        NudgeFactory(patient=patient, created_at=NOW - timedelta(hours=hours))

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, weighing(patient))

    assert result is None
    assert Nudge.objects.count() == 2
    assert callbacks == []


@pytest.mark.django_db
def test_no_nudge_when_the_patient_was_just_messaged(patient, django_capture_on_commit_callbacks):
    NudgeFactory(patient=patient, created_at=NOW - timedelta(minutes=29))

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, weighing(patient))

    assert result is None
    assert Nudge.objects.count() == 1
    assert callbacks == []


# --- A due dose of a critical plan: the rails pace encouragement, not the schedule --------


def statin_of(patient):
    return MedicationPlanFactory(
        patient=patient, medication="atorvastatin-20mg", name="Atorvastatin", critical=False
    )


@pytest.mark.django_db
def test_a_critical_dose_is_reminded_of_just_after_a_nudge_and_past_the_daily_cap(
    team, variants, django_capture_on_commit_callbacks
):
    # given: a cap of 2, reached at 07:00 and 07:55 this morning (the last 5 minutes ago)
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin", daily_nudge_cap=2)
    for minutes in (60, 5):
        NudgeFactory(patient=patient, created_at=NOW - timedelta(minutes=minutes))
    warfarin = MedicationPlanFactory(patient=patient)
    assert warfarin.critical is True
    slot = dose(warfarin)

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        nudge = remind(patient, slot)

    # then: the reminder is written and its delivery enqueued
    assert (nudge.purpose, nudge.slot_id, nudge.created_at) == ("dose_due", slot.pk, NOW)
    assert Nudge.objects.count() == 3
    assert published(callbacks) == [(DELIVER, (nudge.pk,))]


@pytest.mark.django_db
@pytest.mark.parametrize("rail", ["daily_cap", "just_messaged"])
def test_a_dose_of_a_non_critical_plan_keeps_the_cap_and_the_gap(
    team, variants, rail, django_capture_on_commit_callbacks
):
    patient = PatientFactory(
        care_team=team, timezone="Europe/Berlin", daily_nudge_cap=1 if rail == "daily_cap" else 3
    )
    NudgeFactory(
        patient=patient,
        created_at=NOW - (timedelta(hours=2) if rail == "daily_cap" else timedelta(minutes=5)),
    )

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, dose(statin_of(patient)))

    assert result is None
    assert Nudge.objects.count() == 1
    assert callbacks == []


@pytest.mark.django_db
def test_the_supportive_nudge_after_a_missed_critical_dose_keeps_the_gap(
    patient, django_capture_on_commit_callbacks
):
    NudgeFactory(patient=patient, created_at=NOW - timedelta(minutes=5))
    missed = dose(MedicationPlanFactory(patient=patient), due=NOW - timedelta(hours=2))
    missed.status = "missed"
    missed.save()

    with django_capture_on_commit_callbacks() as callbacks:
        result = nudge_patient(patient=patient, purpose="dose_missed", slot=missed, now=NOW)

    assert result is None
    assert Nudge.objects.count() == 1
    assert callbacks == []


@pytest.mark.django_db
def test_a_patient_who_wants_no_nudges_gets_no_critical_dose_reminder_either(
    team, variants, django_capture_on_commit_callbacks
):
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin", daily_nudge_cap=0)

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, dose(MedicationPlanFactory(patient=patient)))

    assert_nothing_written(result, callbacks)


@pytest.mark.django_db
def test_a_critical_dose_scheduled_in_the_quiet_hours_is_reminded_of_at_its_time(
    team, variants, django_capture_on_commit_callbacks
):
    # given: quiet from 22:00 to 07:00; warfarin at 23:00 CET, a statin at the same time
    patient = PatientFactory(
        care_team=team,
        timezone="Europe/Berlin",
        quiet_hours_start=time(22, 0),
        quiet_hours_end=time(7, 0),
    )
    late = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 23:00 CET
    warfarin = MedicationPlanFactory(patient=patient, dose_times=["23:00"])
    statin = statin_of(patient)

    # when
    warfarin_slot, statin_slot = dose(warfarin, due=late), dose(statin, due=late)
    with django_capture_on_commit_callbacks() as callbacks:
        critical = remind(patient, warfarin_slot, now=late)
        other = remind(patient, statin_slot, now=late)

    # then: the patient evidently takes the warfarin then and is reminded of it; the
    # statin's reminder keeps the quiet hours
    assert (critical.purpose, critical.slot_id) == ("dose_due", warfarin_slot.pk)
    assert "your Warfarin 5 mg dose" in critical.text and "23:00" in critical.text
    assert other is None
    assert list(Nudge.objects.values_list("pk", flat=True)) == [critical.pk]
    assert published(callbacks) == [(DELIVER, (critical.pk,))]


@pytest.mark.django_db
def test_a_critical_dose_reminder_a_late_sweep_would_send_into_the_quiet_hours_waits(
    team, variants, django_capture_on_commit_callbacks
):
    # given: quiet from 22:00; a 21:45 CET warfarin dose, reminded of at 22:05 (late)
    patient = PatientFactory(
        care_team=team,
        timezone="Europe/Berlin",
        quiet_hours_start=time(22, 0),
        quiet_hours_end=time(7, 0),
    )
    due = datetime(2026, 3, 2, 20, 45, tzinfo=UTC)
    slot = dose(MedicationPlanFactory(patient=patient, dose_times=["21:45"]), due=due)

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, slot, now=due + timedelta(minutes=20))

    assert_nothing_written(result, callbacks)


@pytest.mark.django_db
def test_a_nudge_that_failed_to_deliver_neither_caps_nor_blocks(patient):
    NudgeFactory(patient=patient, created_at=NOW - timedelta(minutes=5), status="failed")

    assert remind(patient, weighing(patient)) is not None


@pytest.mark.django_db
def test_no_reminder_for_a_slot_whose_window_has_closed(
    patient, django_capture_on_commit_callbacks
):
    slot = weighing(patient, due=NOW - timedelta(hours=2))

    with django_capture_on_commit_callbacks() as callbacks:
        result = remind(patient, slot)

    assert_nothing_written(result, callbacks)


@pytest.mark.django_db
def test_no_nudge_without_an_active_variant_for_the_purpose(
    patient, variants, django_capture_on_commit_callbacks
):
    variants["supportive"].active = False
    variants["supportive"].save()
    slot = weighing(patient, due=NOW - timedelta(hours=2), status="missed")

    with django_capture_on_commit_callbacks() as callbacks:
        result = nudge_patient(
            patient=patient, purpose="measurement_missed", slot=slot, now=slot.closes_at
        )

    assert_nothing_written(result, callbacks)


# --- Once per slot and purpose ------------------------------------------------------------


@pytest.mark.django_db
def test_a_second_call_for_the_same_slot_and_purpose_writes_nothing(
    patient, django_capture_on_commit_callbacks
):
    slot = weighing(patient)

    with django_capture_on_commit_callbacks() as callbacks:
        first = remind(patient, slot)
        second = remind(patient, slot, now=NOW + timedelta(hours=1))

    assert first is not None
    assert second is None
    assert list(Nudge.objects.values_list("pk", flat=True)) == [first.pk]
    assert published(callbacks) == [(DELIVER, (first.pk,))]


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_for_one_slot_write_one_nudge(
    team, variants, run_concurrently, notifications_queue
):
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin")
    slot = weighing(patient)

    results = run_concurrently(
        lambda: remind(patient, slot, seed=1), lambda: remind(patient, slot, seed=2)
    )

    written = [nudge for nudge in results if nudge is not None]
    assert len(written) == 1
    assert list(Nudge.objects.values_list("pk", flat=True)) == [written[0].pk]
    assert notifications_queue.tasks() == [QueuedTask(DELIVER, [written[0].pk], {})]


# --- Outcomes -----------------------------------------------------------------------------


def delivered(nudge):
    Nudge.objects.filter(pk=nudge.pk).update(status="sent", sent_at=nudge.created_at)
    return nudge


def weigh_for(slot, *, at):
    reading = ReadingFactory(patient=slot.patient, measured_at=at)
    slot.status, slot.fulfilled_by = "done", reading
    slot.save()
    return reading


@pytest.mark.django_db
def test_settling_counts_an_acted_on_nudge_once_as_a_success(patient):
    # given: a delivered reminder, and the weighing 20 minutes later
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))
    reading = weigh_for(slot, at=NOW + timedelta(minutes=20))

    # when: the window closes, and a second sweep runs
    first = settle_nudge_outcomes(now=slot.closes_at)
    second = settle_nudge_outcomes(now=slot.closes_at + timedelta(minutes=5))

    # then
    assert (first, second) == (1, 0)
    nudge.refresh_from_db()
    assert (nudge.acted, nudge.acted_at) == (True, reading.measured_at)
    assert list(
        VariantPosterior.objects.values_list("patient", "variant", "successes", "failures")
    ) == [(patient.pk, nudge.variant_id, 1, 0)]


@pytest.mark.django_db
def test_settling_counts_an_ignored_nudge_once_as_a_failure(patient):
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))

    assert settle_nudge_outcomes(now=slot.closes_at) == 1
    assert settle_nudge_outcomes(now=slot.closes_at) == 0

    nudge.refresh_from_db()
    assert (nudge.acted, nudge.acted_at) == (False, None)
    assert list(
        VariantPosterior.objects.values_list("patient", "variant", "successes", "failures")
    ) == [(patient.pk, nudge.variant_id, 0, 1)]


@pytest.mark.django_db
def test_outcomes_add_to_the_patients_existing_record(patient):
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))
    VariantPosterior.objects.create(patient=patient, variant=nudge.variant, successes=4, failures=2)
    weigh_for(slot, at=NOW + timedelta(minutes=5))

    settle_nudge_outcomes(now=slot.closes_at)

    posterior = VariantPosterior.objects.get(patient=patient, variant=nudge.variant)
    assert (posterior.successes, posterior.failures) == (5, 2)


@pytest.mark.django_db
def test_nothing_settles_before_the_window_closes(patient):
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))

    assert settle_nudge_outcomes(now=slot.closes_at - timedelta(seconds=1)) == 0

    nudge.refresh_from_db()
    assert nudge.acted is None
    assert VariantPosterior.objects.count() == 0


@pytest.mark.django_db
def test_a_nudge_that_never_reached_the_patient_teaches_nothing(patient):
    # given: delivery still pending when the window closed; the patient weighed anyway
    slot = weighing(patient)
    nudge = remind(patient, slot)
    weigh_for(slot, at=NOW + timedelta(minutes=20))

    assert settle_nudge_outcomes(now=slot.closes_at) == 1

    nudge.refresh_from_db()
    assert nudge.acted is True
    assert VariantPosterior.objects.count() == 0


# --- Streaks ------------------------------------------------------------------------------


def day_at_eight(day: int) -> datetime:
    """08:00 CET on the given day of March 2026."""
    return datetime(2026, 3, day, 7, 0, tzinfo=UTC)


def late_morning(day: int, minute: int = 30) -> datetime:
    """10:<minute> CET on the given day of March 2026."""
    return datetime(2026, 3, day, 9, minute, tzinfo=UTC)


@pytest.fixture
def schedule(patient):
    return MeasurementScheduleFactory(patient=patient)


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


# --- Escalation ---------------------------------------------------------------------------


def miss(slot):
    """What the reminder sweep does when the slot's window closes without an answer."""
    slot.status = "missed"
    slot.save()
    handle_missed_slot(slot=slot, now=slot.closes_at)


@pytest.fixture
def warfarin(patient):
    return MedicationPlanFactory(patient=patient, critical=True)


@pytest.mark.django_db
def test_two_consecutive_missed_critical_doses_raise_one_adherence_alert(
    patient, warfarin, django_capture_on_commit_callbacks
):
    # given: missed doses on 2 and 3 March; the patient has no adherence rule yet
    first, second = dose(warfarin, due=day_at_eight(2)), dose(warfarin, due=day_at_eight(3))

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        miss(first)
        assert Alert.objects.count() == 0
        miss(second)

    # then: one warning alert for the care team, through the reference's missed-dose rule,
    # given to the patient on demand
    alert = Alert.objects.get()
    rule = Rule.objects.get(patient=patient)
    assert (rule.key, rule.kind, rule.metric, rule.group, rule.severity) == (
        "doses_missed_consecutively",
        "adherence",
        "dose",
        "dose_missed",
        DEFAULTS[0]["severity"],
    )
    assert rule.parameters == {
        "mode": "consecutive_missed",
        "count": MISSED_IN_A_ROW,
        "medications": [],
    }
    assert rule.reference == f"{MISSED_DOSE_FLAG}.alert_defaults.0"
    assert rule.revisions.get().note == (
        "Given at the first missed dose of a critical plan (warfarin-5mg)."
    )
    assert (alert.rule, alert.dedupe_key, alert.kind, alert.severity, alert.status) == (
        rule,
        "dose_missed",
        "adherence",
        "warning",
        "open",
    )
    assert alert.title == "Consecutive missed doses"
    assert alert.detail == (
        "Warfarin 5 mg: 2 consecutive scheduled doses not logged; last due 2026-03-03 08:00 CET"
    )
    assert alert.occurrences == 1
    assert (alert.first_triggered_at, alert.last_triggered_at) == (
        first.closes_at,
        second.closes_at,
    )
    assert alert.values == {
        "plan_id": warfarin.pk,
        "medication": "warfarin-5mg",
        "missed": 2,
        "slot_ids": [first.pk, second.pk],
    }
    event = AlertEvent.objects.get()
    missed_nudges = list(Nudge.objects.order_by("created_at"))
    assert [n.purpose for n in missed_nudges] == ["dose_missed", "dose_missed"]
    assert published(callbacks) == [
        (DELIVER, (missed_nudges[0].pk,)),
        (DELIVER, (missed_nudges[1].pk,)),
        (ROUTE, (event.pk,)),
    ]


def missed_dose_alerts():
    """The patients' consecutive-missed-doses alerts (a protocol's taking-rate rule may raise
    its own alongside)."""
    return Alert.objects.filter(dedupe_key="dose_missed")


@pytest.mark.django_db
def test_a_protocol_rule_tailored_to_three_misses_waits_for_the_third(patient, warfarin, physician):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = Rule.objects.get(patient=patient, key="doses_missed_consecutively")
    change_rule(rule=rule, user=physician, parameters=rule.parameters | {"count": 3})
    slots = [dose(warfarin, due=day_at_eight(day)) for day in (2, 3, 4)]

    miss(slots[0])
    miss(slots[1])
    assert missed_dose_alerts().count() == 0

    miss(slots[2])
    alert = missed_dose_alerts().get()
    assert (alert.rule_id, alert.rule_version, alert.values["missed"]) == (rule.pk, 2, 3)
    assert Rule.objects.filter(patient=patient, kind="adherence").count() == 2  # no new rule


@pytest.mark.django_db
def test_a_deactivated_missed_dose_rule_stays_off(patient, warfarin, physician):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = Rule.objects.get(patient=patient, key="doses_missed_consecutively")
    change_rule(rule=rule, user=physician, active=False, note="Family gives the doses.")
    rules_before = set(Rule.objects.values_list("pk", "version"))

    for day in (2, 3, 4):
        miss(dose(warfarin, due=day_at_eight(day)))

    assert missed_dose_alerts().count() == 0
    assert set(Rule.objects.values_list("pk", "version")) == rules_before


@pytest.mark.django_db
def test_a_rule_listing_its_medications_watches_only_those(patient, physician):
    # given: the clinician watches the (non-critical) statin by name, not the insulin
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = Rule.objects.get(patient=patient, key="doses_missed_consecutively")
    watched = rule.parameters | {"medications": ["atorvastatin-20mg"]}
    change_rule(rule=rule, user=physician, parameters=watched)
    statin = MedicationPlanFactory(
        patient=patient, medication="atorvastatin-20mg", name="Atorvastatin", critical=False
    )
    insulin = MedicationPlanFactory(
        patient=patient, medication="insulin-glargine", name="Insulin glargine", critical=True
    )

    for day in (2, 3):
        miss(dose(insulin, due=day_at_eight(day)))
    assert missed_dose_alerts().count() == 0
    for day in (2, 3):
        miss(dose(statin, due=day_at_eight(day)))

    alert = missed_dose_alerts().get()
    assert (alert.rule_id, alert.values["medication"]) == (rule.pk, "atorvastatin-20mg")


@pytest.mark.django_db
def test_doses_never_logged_lower_the_taking_rate_without_any_reading(
    patient, warfarin, django_capture_on_commit_callbacks
):
    # given: a 7-day taking-rate rule (anticoagulation) and four doses taken on time
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = Rule.objects.get(patient=patient, key="dose_taking_rate_7_days")
    for day in (2, 3, 4, 5):
        dose(warfarin, due=day_at_eight(day), status="done")

    # when: the next dose's window closes with nothing logged (4 of 5 = 80 %: not below)
    miss(dose(warfarin, due=day_at_eight(6)))
    assert Alert.objects.filter(dedupe_key="dose_adherence").count() == 0

    # and the one after (4 of 6)
    last = dose(warfarin, due=day_at_eight(7))
    miss(last)

    # then: the info alert, from the slots alone
    alert = Alert.objects.get(dedupe_key="dose_adherence")
    assert (alert.rule_id, alert.severity, alert.values) == (
        rule.pk,
        "info",
        {"taking_percent": 66.7, "doses": 6},
    )
    assert alert.detail == "4 of 6 doses taken in 7 days (67 %, below 80 %)"
    assert alert.last_triggered_at == last.closes_at
    assert Reading.objects.count() == 0


@pytest.mark.django_db
def test_doses_logged_as_skipped_count_against_the_taking_rate_when_their_window_closes(
    patient, warfarin
):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    for day in (2, 3, 4, 5):
        dose(warfarin, due=day_at_eight(day), status="done")
    skipped = [dose(warfarin, due=day_at_eight(day)) for day in (6, 7)]
    for slot in skipped:
        logged_dose(slot, "skipped")

    miss(skipped[0])  # 4 of 5: not below 80 %
    assert Alert.objects.count() == 0
    miss(skipped[1])  # 4 of 6

    alert = Alert.objects.get()
    assert (alert.dedupe_key, alert.values) == (
        "dose_adherence",
        {"taking_percent": 66.7, "doses": 6},
    )
    # skipping is an answer: no 'missed' message, no missed-dose alert
    assert Nudge.objects.count() == 0


@pytest.mark.django_db
def test_a_dose_taken_but_not_yet_evaluated_is_left_to_its_evaluation(patient, warfarin):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    slot = dose(warfarin, due=day_at_eight(2))
    logged_dose(slot, "taken")

    miss(slot)

    # counted now it would be 0 of 1, below 80 %
    assert (Alert.objects.count(), Nudge.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_two_critical_plans_share_the_one_reference_rule_and_alert(patient, warfarin):
    insulin = MedicationPlanFactory(
        patient=patient, medication="insulin-glargine", name="Insulin glargine", critical=True
    )

    for day in (2, 3):
        miss(dose(warfarin, due=day_at_eight(day)))
        miss(dose(insulin, due=day_at_eight(day)))

    rule = Rule.objects.get(patient=patient)
    alert = Alert.objects.get()
    assert (rule.key, alert.rule_id, alert.occurrences) == (
        "doses_missed_consecutively",
        rule.pk,
        2,
    )


@pytest.mark.django_db
def test_further_misses_count_as_occurrences_of_the_same_alert(patient, warfarin):
    slots = [dose(warfarin, due=day_at_eight(day)) for day in (2, 3, 4, 5)]

    for slot in slots:
        miss(slot)

    alert = Alert.objects.get()
    assert alert.occurrences == 3
    assert alert.last_triggered_at == slots[-1].closes_at
    # the lifecycle keeps the title and detail of the first finding (same severity) and
    # the values of the latest
    assert alert.values["missed"] == 4
    assert alert.values["slot_ids"] == [slot.pk for slot in slots]
    assert AlertEvent.objects.count() == 1


@pytest.mark.django_db
def test_missed_doses_of_a_non_critical_medication_raise_no_alert(patient):
    statin = MedicationPlanFactory(
        patient=patient, medication="atorvastatin-20mg", name="Atorvastatin", critical=False
    )

    for day in (2, 3, 4):
        miss(dose(statin, due=day_at_eight(day)))

    assert Alert.objects.count() == 0
    assert Rule.objects.filter(patient=patient).count() == 0  # none given for it
    # the patient still got a supportive message after each miss
    assert list(Nudge.objects.values_list("purpose", flat=True)) == ["dose_missed"] * 3


@pytest.mark.django_db
def test_missed_measurements_escalate_too(patient, schedule):
    miss(weighing(patient, schedule=schedule, due=day_at_eight(2)))
    miss(weighing(patient, schedule=schedule, due=day_at_eight(3)))

    alert = Alert.objects.get()
    assert alert.rule.key == "reminders_unanswered_weight"
    assert alert.title == "Body weight reminders unanswered"
    assert alert.detail == (
        "Body weight: 2 consecutive measurements not logged; last due 2026-03-03 08:00 CET"
    )


@pytest.mark.django_db
def test_a_done_slot_between_misses_restarts_the_count(patient, warfarin):
    miss(dose(warfarin, due=day_at_eight(2)))
    dose(warfarin, due=day_at_eight(3), status="done")
    miss(dose(warfarin, due=day_at_eight(4)))

    assert Alert.objects.count() == 0


@pytest.mark.django_db
def test_a_dose_logged_as_skipped_is_an_answer_not_silence(patient, warfarin):
    miss(dose(warfarin, due=day_at_eight(2)))
    skipped = dose(warfarin, due=day_at_eight(3))
    logged_dose(skipped, "skipped", after=timedelta(minutes=10))

    miss(skipped)

    assert Alert.objects.count() == 0
    assert Nudge.objects.filter(slot=skipped).count() == 0


@pytest.mark.django_db
def test_after_the_alert_is_resolved_it_takes_fresh_misses_to_raise_another(
    patient, warfarin, nurse, clock
):
    for day in (2, 3):
        miss(dose(warfarin, due=day_at_eight(day)))
    clock.move_to(day_at_eight(3) + timedelta(hours=4), tick=False)
    resolve_alert(alert=Alert.objects.get(), user=nurse, note="Called the patient.")

    miss(dose(warfarin, due=day_at_eight(4)))
    assert Alert.objects.filter(status="open").count() == 0

    miss(dose(warfarin, due=day_at_eight(5)))
    assert Alert.objects.filter(status="open").count() == 1
    assert Alert.objects.count() == 2


@pytest.mark.django_db
def test_a_missed_slot_that_was_answered_after_all_changes_nothing(patient, warfarin):
    # given: the dose was logged in time, the upload arrived after the window closed
    slot = dose(warfarin, due=day_at_eight(2))
    logged_dose(slot, "taken", after=timedelta(minutes=30))

    miss(slot)
    later = dose(warfarin, due=day_at_eight(3))
    miss(later)

    # no supportive message for it, and it breaks the run of misses
    assert Alert.objects.count() == 0
    assert [nudge.slot for nudge in Nudge.objects.all()] == [later]


# --- Variants as data ---------------------------------------------------------------------


def test_the_default_variants_cover_every_kind_in_english_and_german():
    migration = importlib.import_module("monitoring.migrations.0007_default_nudge_variants")
    rows = migration.DEFAULT_VARIANTS

    kinds = {(kind, language) for _, kind, _, language, _ in rows}
    assert kinds == {(kind, language) for kind in VariantKind.values for language in ("en", "de")}
    assert len({key for key, *_ in rows}) == len(rows)
    for key, _, purposes, _, text in rows:
        allowed = {"streak"} if purposes == ["streak"] else {"what", "time"}
        assert placeholders_of(text) <= allowed, key
        assert set(purposes) <= set(NudgePurpose.values), key
    # every purpose has a message in both languages
    for purpose in NudgePurpose.values:
        for language in ("en", "de"):
            assert any(purpose in p and lang == language for _, _, p, lang, _ in rows)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("purposes", "text", "errors"),
    [
        (["measurement_due"], "Reminder: {what} at {time}.", set()),
        (["streak"], "{streak} days!", set()),
        (["measurement_due"], "{streak} days!", {"text"}),
        (["streak"], "Reminder: {what}.", {"text"}),
        (["measurement_due"], "Reminder: {waht}.", {"text"}),
        (["measurement_due"], "Reminder: {what.upper}.", {"text"}),
        (["measurement_due"], "Reminder: {what", {"text"}),
        (["measurement_due", "streak"], "Well done!", {"purposes"}),
        (["measurement_later"], "Reminder.", {"purposes"}),
        ([], "Reminder.", {"purposes"}),
    ],
)
def test_the_variant_admin_accepts_only_texts_monitoring_can_fill_in(purposes, text, errors):
    form = NudgeVariantForm(
        data={
            "key": "reminder-test",
            "kind": "plain",
            "purposes": json.dumps(purposes),
            "language": "EN",
            "text": text,
            "active": True,
        }
    )

    assert set(form.errors) == errors
    if not errors:
        assert form.cleaned_data["language"] == "en"


@pytest.mark.django_db
def test_the_nudge_and_variant_admin_pages_show(client, superuser, patient, variants):
    nudge = remind(patient, weighing(patient))
    client.force_login(superuser)

    for url in [
        "/admin/monitoring/nudgevariant/",
        f"/admin/monitoring/nudgevariant/{variants['plain'].pk}/change/",
        "/admin/monitoring/nudge/",
        f"/admin/monitoring/nudge/{nudge.pk}/change/",
    ]:
        assert client.get(url).status_code == 200, url
