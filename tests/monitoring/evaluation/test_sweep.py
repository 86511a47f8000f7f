from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from monitoring.evaluation import enqueue_unevaluated_readings, evaluate_pending_readings
from monitoring.models import Reading
from monitoring.tasks import enqueue_unevaluated_readings_task, evaluate_patient_readings_task
from tests.factories import PatientFactory, ReadingFactory
from tests.monitoring.conftest import QueuedTask

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVALUATE = evaluate_patient_readings_task.name
SWEEP = enqueue_unevaluated_readings_task.name


def evaluate(patient) -> QueuedTask:
    return QueuedTask(name=EVALUATE, args=[patient.pk], kwargs={})


def evaluated_at(*readings) -> list[datetime | None]:
    return [Reading.objects.get(pk=reading.pk).evaluated_at for reading in readings]


# --- evaluate_pending_readings ------------------------------------------------------------


def test_evaluating_a_patient_marks_only_that_patients_pending_readings():
    # given
    patient, other_patient = PatientFactory(), PatientFactory()
    pending = ReadingFactory.create_batch(3, patient=patient)
    earlier = ReadingFactory(patient=patient, evaluated_at=NOW - timedelta(hours=2))
    others = ReadingFactory.create_batch(2, patient=other_patient)

    # when
    count = evaluate_pending_readings(patient_id=patient.pk, now=NOW)

    # then
    assert count == 3
    assert evaluated_at(*pending) == [NOW, NOW, NOW]
    assert evaluated_at(earlier) == [NOW - timedelta(hours=2)]
    assert evaluated_at(*others) == [None, None]


def test_evaluating_a_patient_twice_changes_nothing_the_second_time():
    # given
    patient, other_patient = PatientFactory(), PatientFactory()
    readings = ReadingFactory.create_batch(2, patient=patient)
    other = ReadingFactory(patient=other_patient)
    evaluate_pending_readings(patient_id=patient.pk, now=NOW)

    # when
    count = evaluate_pending_readings(patient_id=patient.pk, now=NOW + timedelta(minutes=5))

    # then
    assert count == 0
    assert evaluated_at(*readings) == [NOW, NOW]
    assert evaluated_at(other) == [None]


def test_evaluating_a_patient_with_nothing_pending_returns_zero():
    patient = PatientFactory()
    ReadingFactory(patient=patient, evaluated_at=NOW)

    assert evaluate_pending_readings(patient_id=patient.pk, now=NOW) == 0


def test_evaluating_uses_the_current_time_when_none_is_given(time_machine):
    time_machine.move_to(NOW, tick=False)
    reading = ReadingFactory()

    assert evaluate_pending_readings(patient_id=reading.patient_id) == 1
    assert evaluated_at(reading) == [NOW]


# --- enqueue_unevaluated_readings (the sweep) ---------------------------------------------


def received(seconds_before_now: float) -> datetime:
    return NOW - timedelta(seconds=seconds_before_now)


def test_the_sweep_enqueues_one_task_per_patient_whose_readings_outwaited_the_grace(
    time_machine, evaluation_queue, django_capture_on_commit_callbacks
):
    # given
    grace = settings.VIGIL_EVALUATION_GRACE.total_seconds()
    stale_twice, stale_once, fresh, evaluated = PatientFactory.create_batch(4)
    ReadingFactory.create_batch(2, patient=stale_twice, received_at=received(grace + 1))
    ReadingFactory(patient=stale_once, received_at=received(grace + 3600))
    ReadingFactory(patient=fresh, received_at=received(grace - 1))
    ReadingFactory(patient=evaluated, received_at=received(grace + 1), evaluated_at=NOW)
    time_machine.move_to(NOW, tick=False)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_unevaluated_readings()

    # then
    assert count == 2
    assert evaluation_queue.tasks() == [evaluate(stale_twice), evaluate(stale_once)]


def test_the_sweep_leaves_a_reading_received_exactly_one_grace_ago(
    time_machine, evaluation_queue, django_capture_on_commit_callbacks
):
    grace = settings.VIGIL_EVALUATION_GRACE.total_seconds()
    ReadingFactory(received_at=received(grace))
    time_machine.move_to(NOW, tick=False)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        count = enqueue_unevaluated_readings()

    assert count == 0
    assert callbacks == []
    assert len(evaluation_queue) == 0


def test_the_sweep_with_nothing_pending_enqueues_nothing(
    evaluation_queue, django_capture_on_commit_callbacks
):
    ReadingFactory(received_at=received(3600), evaluated_at=NOW)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        count = enqueue_unevaluated_readings(now=NOW)

    assert count == 0
    assert callbacks == []
    assert len(evaluation_queue) == 0


def test_the_sweep_enqueues_nothing_until_its_transaction_commits(
    evaluation_queue, django_capture_on_commit_callbacks
):
    patient = PatientFactory()
    ReadingFactory(patient=patient, received_at=received(3600))

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_unevaluated_readings(now=NOW)
        assert len(evaluation_queue) == 0

    assert evaluation_queue.tasks() == [evaluate(patient)]


def test_the_sweep_takes_a_bounded_batch_and_re_enqueues_itself_for_the_rest(
    settings, time_machine, evaluation_queue, django_capture_on_commit_callbacks
):
    # given: three patients waiting, a batch of two
    settings.VIGIL_SWEEP_BATCH = 2
    first, second, third = PatientFactory.create_batch(3)
    for patient in (third, first, second):
        ReadingFactory(patient=patient, received_at=received(3600))
    time_machine.move_to(NOW, tick=False)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_unevaluated_readings()

    # then: two patients, and the sweep again to carry on after the second
    assert count == 2
    assert evaluation_queue.tasks() == [
        evaluate(first),
        evaluate(second),
        QueuedTask(name=SWEEP, args=[], kwargs={"after_patient_id": second.pk}),
    ]


def test_the_re_enqueued_sweep_carries_on_where_the_batch_ended(
    settings, time_machine, evaluation_queue, django_capture_on_commit_callbacks
):
    # given: the first batch enqueued but not evaluated yet (in flight, or failing)
    settings.VIGIL_SWEEP_BATCH = 2
    first, second, third = PatientFactory.create_batch(3)
    for patient in (first, second, third):
        ReadingFactory(patient=patient, received_at=received(3600))
    time_machine.move_to(NOW, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_unevaluated_readings()
    continuation = evaluation_queue.tasks()[-1]
    evaluation_queue.purge()

    # when: the worker runs the re-enqueued sweep as queued
    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_unevaluated_readings_task(*continuation.args, **continuation.kwargs)

    # then: the rest, not the same batch again, and no further sweep
    assert count == 1
    assert evaluation_queue.tasks() == [evaluate(third)]


def test_a_sweep_of_exactly_one_batch_does_not_re_enqueue_itself(
    settings, evaluation_queue, django_capture_on_commit_callbacks
):
    settings.VIGIL_SWEEP_BATCH = 2
    first, second = PatientFactory.create_batch(2)
    for patient in (first, second):
        ReadingFactory(patient=patient, received_at=received(3600))

    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_unevaluated_readings(now=NOW)

    assert count == 2
    assert evaluation_queue.tasks() == [evaluate(first), evaluate(second)]


def test_readings_the_sweep_enqueued_are_marked_when_their_tasks_run(
    evaluation_queue, django_capture_on_commit_callbacks
):
    # given
    patients = PatientFactory.create_batch(2)
    readings = [ReadingFactory(patient=p, received_at=received(3600)) for p in patients]
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_unevaluated_readings(now=NOW)

    # when: each queued task runs in this process, as a worker would run it
    counts = [
        evaluate_patient_readings_task.apply(args=task.args, kwargs=task.kwargs).get()
        for task in evaluation_queue.tasks()
    ]

    # then
    assert counts == [1, 1]
    assert None not in evaluated_at(*readings)
    assert Reading.objects.filter(evaluated_at__isnull=True).count() == 0
