"""Nudges against the database (monitoring/nudges/decision.py): the nudge and its decision
log, when none is written, a critical plan's due dose, once per slot and purpose. Slots
are made directly (the reminder sweep is tested in test_sweeps.py); time is frozen and
passed explicitly."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from monitoring.models import Nudge, VariantPosterior
from monitoring.nudges import nudge_patient
from monitoring.nudges.policy import Candidate, choose_variant
from tests.factories import (
    MeasurementScheduleFactory,
    MedicationPlanFactory,
    NudgeFactory,
    PatientFactory,
    PushTokenFactory,
    ReadingFactory,
)
from tests.monitoring.conftest import QueuedTask
from tests.monitoring.nudges.helpers import (  # noqa: F401
    DELIVER,
    ENGLISH_REMINDERS,
    NOW,
    WEIGHT_TEXTS,
    candidate_log,
    clock,
    dose,
    patient,
    published,
    remind,
    weighing,
)

# --- The nudge and its decision log -------------------------------------------------------


# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


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
