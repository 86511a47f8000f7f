import contextlib
import signal
import time
from datetime import timedelta

import pytest
from celery.signals import worker_process_init
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from monitoring.evaluation import enqueue_unevaluated_readings
from monitoring.ingest import record_readings
from monitoring.models import Reading
from monitoring.problems import problem_table
from monitoring.tasks import (
    drain_pending_readings_task,
    enqueue_unevaluated_readings_task,
    evaluate_patient_readings_task,
)
from monitoring.units import load_reference, metric_units
from tests.factories import ReadingFactory, ReadingItemFactory
from tests.monitoring.conftest import QueuedTask

EVALUATE = evaluate_patient_readings_task.name


def evaluate(patient) -> QueuedTask:
    return QueuedTask(name=EVALUATE, args=[patient.pk], kwargs={})


def wake(patient) -> QueuedTask:
    """Ingest's coalesced wake-up of the evaluation drain (monitoring/evaluation/drain.py)."""
    return QueuedTask(name=drain_pending_readings_task.name, args=[patient.pk], kwargs={})


def post_readings(client, items):
    return client.post("/api/v1/readings", {"readings": items}, format="json")


# --- One wake-up after commit, shared by the uploads before a drain starts ---------------


@pytest.mark.django_db
def test_a_committed_batch_wakes_the_evaluation_drain_for_its_patient(
    patient, patient_client, evaluation_queue, django_capture_on_commit_callbacks
):
    # given: three items, one a blood pressure whose pulse becomes a fourth row
    items = [
        ReadingItemFactory(type="glucose"),
        ReadingItemFactory(type="weight"),
        ReadingItemFactory(type="blood_pressure", pulse=72),
    ]

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_readings(patient_client, items)
        assert len(evaluation_queue) == 0  # not before the commit

    # then
    assert response.status_code == 201
    assert response.json()["created"] == 3
    assert Reading.objects.filter(patient=patient).count() == 4
    assert len(callbacks) == 1
    assert evaluation_queue.tasks() == [wake(patient)]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {patient.pk}


@pytest.mark.django_db
def test_batches_of_two_patients_before_a_drain_starts_share_one_wake_up(
    patient,
    patient_client,
    other_patient,
    other_patient_client,
    evaluation_queue,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        post_readings(patient_client, ReadingItemFactory.create_batch(2))
    with django_capture_on_commit_callbacks(execute=True):
        post_readings(other_patient_client, ReadingItemFactory.create_batch(3))

    # then: one message; both patients wait in its set
    assert evaluation_queue.tasks() == [wake(patient)]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {patient.pk, other_patient.pk}


@pytest.mark.django_db
def test_a_batch_of_only_duplicates_wakes_nothing(
    patient_client, evaluation_queue, django_capture_on_commit_callbacks
):
    # given: a batch already stored and its evaluation enqueued
    items = ReadingItemFactory.create_batch(2)
    with django_capture_on_commit_callbacks(execute=True):
        post_readings(patient_client, items)
    evaluation_queue.purge()

    # when: the app retries it
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_readings(patient_client, items)

    # then
    assert response.status_code == 200
    assert (response.json()["created"], response.json()["duplicates"]) == (0, 2)
    assert callbacks == []
    assert len(evaluation_queue) == 0


@pytest.mark.django_db
def test_a_batch_of_only_rejected_readings_wakes_nothing(
    patient, patient_client, evaluation_queue, django_capture_on_commit_callbacks
):
    items = [ReadingItemFactory(value=-5), ReadingItemFactory(type="weight", unit="stone")]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_readings(patient_client, items)

    assert response.status_code == 200
    assert (response.json()["created"], response.json()["rejected"]) == (0, 2)
    assert Reading.objects.filter(patient=patient).count() == 0
    assert callbacks == []
    assert len(evaluation_queue) == 0


@pytest.mark.django_db
def test_a_mixed_batch_wakes_the_drain_for_what_it_created(
    patient, patient_client, evaluation_queue, django_capture_on_commit_callbacks
):
    # given
    stored = ReadingItemFactory()
    with django_capture_on_commit_callbacks(execute=True):
        post_readings(patient_client, [stored])
    evaluation_queue.purge()
    items = [stored, ReadingItemFactory(), ReadingItemFactory(), ReadingItemFactory(value=-5)]

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_readings(patient_client, items)

    # then
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (2, 1, 1)
    assert len(callbacks) == 1
    assert evaluation_queue.tasks() == [wake(patient)]


@pytest.mark.django_db
def test_readings_recorded_in_a_transaction_that_rolls_back_wake_nothing(
    patient, evaluation_queue, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        contextlib.suppress(RuntimeError),
        transaction.atomic(),
    ):
        record_readings(patient=patient, items=ReadingItemFactory.create_batch(2))
        raise RuntimeError("the caller's transaction fails after the insert")

    assert Reading.objects.filter(patient=patient).count() == 0
    assert callbacks == []
    assert len(evaluation_queue) == 0


@pytest.mark.django_db(transaction=True)
def test_the_wake_up_is_in_the_queue_when_the_response_arrives(
    patient, patient_client, evaluation_queue
):
    # A real commit, no test transaction around the request: the hook runs inside it.
    response = post_readings(patient_client, ReadingItemFactory.create_batch(2))

    assert response.status_code == 201
    assert evaluation_queue.tasks() == [wake(patient)]


# --- The broker is down when the batch commits --------------------------------------------


class Hung(BaseException):
    """Not an Exception, so neither kombu's retries nor robust on_commit can swallow it."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail the test instead of hanging when the block takes longer than `seconds`."""

    def give_up(signum, frame):
        raise Hung(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def post_while_the_broker_is_down(broker_down, client, items, *, within: float):
    with broker_down(), deadline(30):
        started = time.monotonic()
        response = post_readings(client, items)
        elapsed = time.monotonic() - started
    assert elapsed < within, f"the upload took {elapsed:.1f} s with the broker down"
    return response


def sweep_and_run_what_it_enqueued(evaluation_queue, time_machine) -> list[QueuedTask]:
    """The beat sweep past the grace, then each queued task run as a worker would run it."""
    time_machine.move_to(timezone.now() + settings.VIGIL_EVALUATION_GRACE + timedelta(seconds=1))
    enqueue_unevaluated_readings()
    queued = evaluation_queue.tasks()
    for task in queued:
        celery_app.tasks[task.name].apply(args=task.args, kwargs=task.kwargs)
    return queued


@pytest.mark.django_db(transaction=True)
def test_a_reading_posted_while_the_broker_refuses_connections_is_stored_and_evaluated_later(
    patient, patient_client, evaluation_queue, refused_broker, time_machine
):
    # given
    item = ReadingItemFactory()

    # when: the broker refuses connections at commit
    response = post_while_the_broker_is_down(refused_broker, patient_client, [item], within=2)

    # then: stored, acknowledged, not evaluated, nothing queued
    assert response.status_code == 201
    assert response.json()["results"] == [{"id": item["id"], "status": "created"}]
    reading = Reading.objects.get(patient=patient)
    assert str(reading.client_id) == item["id"]
    assert reading.evaluated_at is None
    assert len(evaluation_queue) == 0

    # when: the broker is back and the sweep runs
    queued = sweep_and_run_what_it_enqueued(evaluation_queue, time_machine)

    # then
    assert queued == [evaluate(patient)]
    reading.refresh_from_db()
    assert reading.evaluated_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_reading_posted_while_the_broker_never_answers_is_stored_without_hanging(
    patient, patient_client, evaluation_queue, silent_broker, time_machine
):
    # given
    items = ReadingItemFactory.create_batch(2)

    # when: the broker accepts the connection and then says nothing
    response = post_while_the_broker_is_down(silent_broker, patient_client, items, within=8)

    # then
    assert response.status_code == 201
    assert response.json()["created"] == 2
    assert Reading.objects.filter(patient=patient, evaluated_at__isnull=True).count() == 2
    assert len(evaluation_queue) == 0

    # when: the broker is back and the sweep runs
    queued = sweep_and_run_what_it_enqueued(evaluation_queue, time_machine)

    # then
    assert queued == [evaluate(patient)]
    assert Reading.objects.filter(patient=patient, evaluated_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_a_sweep_while_the_broker_is_down_leaves_the_readings_for_the_next_sweep(
    refused_broker, evaluation_queue, django_capture_on_commit_callbacks
):
    # given
    readings = [ReadingFactory(received_at=timezone.now() - timedelta(hours=1)) for _ in "ab"]

    # when
    with refused_broker(), django_capture_on_commit_callbacks(execute=True):
        count = enqueue_unevaluated_readings()

    # then: nothing raised, nothing queued, still pending; the next sweep enqueues both
    assert count == 2
    assert len(evaluation_queue) == 0
    assert Reading.objects.filter(evaluated_at__isnull=True).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_unevaluated_readings()
    assert evaluation_queue.tasks() == [evaluate(r.patient) for r in readings]


# --- The tasks ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_evaluation_task_marks_the_patients_pending_readings(patient, other_patient):
    ReadingFactory.create_batch(2, patient=patient)
    ReadingFactory(patient=other_patient)

    assert evaluate_patient_readings_task(patient.pk) == 2
    assert evaluate_patient_readings_task(patient.pk) == 0
    assert Reading.objects.filter(evaluated_at__isnull=True).get().patient == other_patient


def test_evaluation_tasks_and_the_sweep_go_to_the_evaluation_queue():
    router = celery_app.amqp.router
    for task in (evaluate_patient_readings_task, enqueue_unevaluated_readings_task):
        assert router.route({}, task.name)["queue"].name == "evaluation"


def test_the_evaluation_task_retries_only_database_errors_with_a_bounded_backoff():
    from django.db import OperationalError

    task = evaluate_patient_readings_task
    assert task.autoretry_for == (OperationalError,)
    assert (task.max_retries, task.retry_backoff, task.retry_backoff_max) == (5, True, 60)


# --- Celery configuration (docs/architecture.md, "Reliability facts we measured") ---------


def test_a_task_is_acknowledged_only_after_it_ran_and_requeued_if_its_process_dies():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_messages_are_json_only():
    conf = celery_app.conf
    assert (conf.task_serializer, conf.result_serializer) == ("json", "json")
    assert conf.accept_content == ["json"]


def test_tasks_have_time_limits():
    assert (celery_app.conf.task_soft_time_limit, celery_app.conf.task_time_limit) == (120, 180)


def test_the_redis_visibility_timeout_outlasts_the_longest_task_and_retry_countdown():
    # A message still unacknowledged after visibility_timeout is delivered again, to
    # another worker, while the first may still be running it.
    options = celery_app.conf.broker_transport_options
    longest = celery_app.conf.task_time_limit + evaluate_patient_readings_task.retry_backoff_max
    assert options["visibility_timeout"] == 3600
    assert options["visibility_timeout"] > longest


def test_unacknowledged_messages_of_a_crashed_worker_are_restored_every_15_seconds():
    # kombu scans every unacked_restore_interval * unacked_restore_throttle seconds
    # (defaults 10 * 10); the interval alone does not shorten it.
    options = celery_app.conf.broker_transport_options
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (15, 1)


def test_publishing_to_an_unresponsive_broker_gives_up_within_seconds():
    # Without socket timeouts redis-py waits forever for a broker that stopped answering.
    options = celery_app.conf.broker_transport_options
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1, 1)
    assert celery_app.conf.task_publish_retry_policy["max_retries"] == 0


def test_celerys_django_fixup_reads_the_database_connection_reuse_setting():
    # celery/fixups/django.py: DjangoWorkerFixup reads app.conf.get('CELERY_DB_REUSE_MAX');
    # test_worker.py checks the effect in a real worker.
    assert celery_app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX == 1000


def test_a_worker_process_parses_the_reference_data_when_it_starts():
    # given: nothing parsed yet in this process
    for loaded in (load_reference, metric_units, problem_table):
        loaded.cache_clear()

    # when: Celery starts a pool process
    worker_process_init.send(sender=None)

    # then: the first evaluation finds them parsed
    assert [loaded.cache_info().currsize for loaded in (metric_units, problem_table)] == [1, 1]
