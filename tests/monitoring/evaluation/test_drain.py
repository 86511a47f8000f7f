"""The evaluation drain (monitoring/evaluation/drain.py): ingest's coalesced wake-ups, one
message for the uploads made before a drain starts, and the drain that evaluates every
patient waiting in its set."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest
from django.db import OperationalError, connections

from alerts.models import Alert
from config.celery import (
    AWAKE_TTL_SECONDS,
    enqueue_coalesced_on_commit,
    take_coalesced,
    wait_coalesced,
)
from config.celery import app as celery_app
from monitoring.evaluation import DRAIN_TASK, drain_pending_readings
from monitoring.models import Reading
from monitoring.tasks import drain_pending_readings_task
from tests.factories import PatientFactory
from tests.monitoring.conftest import QueuedTask
from tests.monitoring.evaluation.helpers import (
    LOW_GLUCOSE,
    NORMAL_GLUCOSE,
    clock,  # noqa: F401
    enrolled,
    glucose,
    pending,
    post,
)


def wake(patient_id: int) -> QueuedTask:
    return QueuedTask(name=DRAIN_TASK, args=[patient_id], kwargs={})


def uploaded(patient, *items, capture):
    """Store readings as an upload does, its after-commit wake-up run."""
    with capture(execute=True):
        post(patient, *items)


@pytest.fixture
def three_patients(team):
    return [enrolled(PatientFactory(care_team=team), "diabetes") for _ in range(3)]


@pytest.mark.django_db
def test_uploads_before_a_drain_starts_publish_one_message_and_the_drain_evaluates_them_all(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: three patients upload before any drain runs, one reading a crossing
    first, second, third = three_patients
    uploaded(first, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    uploaded(second, glucose(LOW_GLUCOSE), capture=django_capture_on_commit_callbacks)
    uploaded(third, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    assert evaluation_queue.tasks() == [wake(first.pk)]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {p.pk for p in three_patients}

    # when: the one message is run
    evaluated = drain_pending_readings_task.apply(args=[first.pk]).get()

    # then: every patient's reading evaluated, the set empty, one alert
    assert evaluated == 3
    assert [pending(p) for p in three_patients] == [0, 0, 0]
    assert evaluation_queue.waiting(drain_pending_readings_task) == set()
    assert list(Alert.objects.values_list("patient_id", "dedupe_key")) == [
        (second.pk, "glucose_low")
    ]


@pytest.mark.django_db
def test_an_upload_after_a_drain_took_the_set_publishes_a_new_message(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: a drain has taken the set
    first, second, _ = three_patients
    uploaded(first, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")  # the worker took the message
    assert take_coalesced(DRAIN_TASK) == {first.pk}

    # when
    uploaded(second, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)

    # then: a new message, for the new upload only
    assert evaluation_queue.tasks() == [wake(second.pk)]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {second.pk}


@pytest.mark.django_db
def test_a_drain_out_of_time_hands_the_patients_on_to_a_new_message(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: three patients waiting; their message was taken
    for patient in three_patients:
        uploaded(patient, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")

    # when: the drain has no time at all
    evaluated = drain_pending_readings(budget=0)

    # then: nothing evaluated, every patient back in the set, one message for them
    assert evaluated == 0
    assert [pending(p) for p in three_patients] == [1, 1, 1]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {p.pk for p in three_patients}
    assert len(evaluation_queue.tasks()) == 1
    assert evaluation_queue.tasks()[0].name == DRAIN_TASK


@pytest.mark.django_db
def test_a_drain_whose_evaluation_fails_gives_back_the_patients_after_it_and_raises(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: one patient per transaction
    first, second, third = sorted(three_patients, key=lambda p: p.pk)
    for patient in three_patients:
        uploaded(patient, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")
    real = drain_pending_readings.__globals__["evaluate_patients_together"]

    def failing_for_second(*, patient_ids):
        if second.pk in patient_ids:
            raise OperationalError("the connection was lost")
        return real(patient_ids=patient_ids)

    # when
    with (
        mock.patch("monitoring.evaluation.drain.PATIENTS_TOGETHER", 1),
        mock.patch("monitoring.evaluation.drain.evaluate_patients_together", failing_for_second),
        pytest.raises(OperationalError),
    ):
        drain_pending_readings()

    # then: the first evaluated; the third handed on (the task's retry takes the second)
    assert [pending(p) for p in (first, second, third)] == [0, 1, 1]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {third.pk}
    assert [task.name for task in evaluation_queue.tasks()] == [DRAIN_TASK]


@pytest.mark.django_db
def test_a_drain_whose_group_fails_gives_back_the_group_after_its_first_and_raises(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: the three wait together, evaluated in one transaction
    first, second, third = sorted(three_patients, key=lambda p: p.pk)
    for patient in three_patients:
        uploaded(patient, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")
    groups = []

    def failing(*, patient_ids):
        groups.append(list(patient_ids))
        raise OperationalError("the connection was lost")

    # when
    with (
        mock.patch("monitoring.evaluation.drain.evaluate_patients_together", failing),
        pytest.raises(OperationalError),
    ):
        drain_pending_readings()

    # then: nothing evaluated; the second and third handed on with the flag
    assert groups == [[first.pk, second.pk, third.pk]]
    assert [pending(p) for p in (first, second, third)] == [1, 1, 1]
    assert evaluation_queue.waiting(drain_pending_readings_task) == {second.pk, third.pk}
    assert [task.name for task in evaluation_queue.tasks()] == [DRAIN_TASK]


@pytest.mark.django_db
def test_a_drain_with_nothing_waiting_evaluates_its_own_patient_only(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: a reading stored without a wake-up (the sweep's case)
    patient = three_patients[0]
    post(patient, glucose(NORMAL_GLUCOSE))

    # when
    evaluated = drain_pending_readings(patient_id=patient.pk)

    # then
    assert evaluated == 1
    assert Reading.objects.filter(evaluated_at__isnull=True).count() == 0
    assert len(evaluation_queue) == 0


@pytest.mark.django_db
def test_on_a_broker_other_than_redis_every_upload_publishes_its_own_message(
    patient, django_capture_on_commit_callbacks
):
    # given: RabbitMQ (or the embedded filesystem transport): no Redis set to coalesce in
    published = []
    original = celery_app.conf.broker_write_url
    celery_app.conf.broker_write_url = "amqp://guest@127.0.0.1//"
    try:
        with (
            mock.patch("config.celery._publish", lambda task, args, kwargs: published.append(args)),
            django_capture_on_commit_callbacks(execute=True),
        ):
            # when
            enqueue_coalesced_on_commit(DRAIN_TASK, 5)
            enqueue_coalesced_on_commit(DRAIN_TASK, 6)
            taken = take_coalesced(DRAIN_TASK)
    finally:
        celery_app.conf.broker_write_url = original

    # then: a message per item, its item as the argument; nothing to take
    assert published == [(5,), (6,)]
    assert taken == set()


@pytest.mark.django_db
def test_a_drain_whose_broker_refuses_still_evaluates_its_own_patient(
    three_patients, refused_broker, clock, caplog
):
    # given
    patient = three_patients[0]
    post(patient, glucose(NORMAL_GLUCOSE))

    # when: the broker refuses connections as the drain starts
    with refused_broker():
        evaluated = drain_pending_readings(patient_id=patient.pk)

    # then: its own patient evaluated, at once; a warning line for each take (at the start,
    # and as it lets go) and for the wait for more between them
    assert evaluated == 1
    assert pending(patient) == 0
    taking = f"taking the items of {DRAIN_TASK} failed (ConnectionError)"
    waiting = f"waiting for items of {DRAIN_TASK} failed (ConnectionError)"
    assert [r.getMessage() for r in caplog.records if r.name == "config.celery"] == [
        taking,
        waiting,
        taking,
    ]


# --- Staying awake: one message for a stream of uploads -----------------------------------


@pytest.mark.django_db
def test_an_upload_while_a_drain_is_awake_publishes_nothing_and_rings_the_bell(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: a drain took the set and stays awake
    first, second, _ = three_patients
    uploaded(first, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")  # the worker took the message
    assert take_coalesced(DRAIN_TASK, keep_awake=True) == {first.pk}
    assert wait_coalesced(DRAIN_TASK, 0.05) is False  # nothing arrived yet

    # when
    uploaded(second, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)

    # then: no message; the waiting drain hears it and takes the patient
    assert evaluation_queue.tasks() == []
    assert wait_coalesced(DRAIN_TASK, 0.5) is True
    assert take_coalesced(DRAIN_TASK, keep_awake=True) == {second.pk}
    # the flag a killed drain would leave expires soon, then uploads publish again
    assert 0 < evaluation_queue.client.ttl(f"vigil:wake:{DRAIN_TASK}") <= AWAKE_TTL_SECONDS


@pytest.mark.django_db
def test_a_drain_that_lets_go_clears_the_flag_so_the_next_upload_publishes(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    # given: a drain ran and lingered with nothing arriving
    first, second, _ = three_patients
    uploaded(first, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")
    started = time.monotonic()
    assert drain_pending_readings(patient_id=first.pk, linger=0.1) == 1
    assert time.monotonic() - started >= 0.1

    # when
    uploaded(second, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)

    # then: a message of its own
    assert evaluation_queue.tasks() == [wake(second.pk)]
    assert evaluation_queue.client.exists(f"vigil:wake:{DRAIN_TASK}") == 1


@pytest.mark.django_db
def test_a_drain_without_linger_lets_go_at_once(
    three_patients, evaluation_queue, clock, django_capture_on_commit_callbacks
):
    patient = three_patients[0]
    post(patient, glucose(NORMAL_GLUCOSE))

    started = time.monotonic()
    assert drain_pending_readings(patient_id=patient.pk, linger=0) == 1

    assert time.monotonic() - started < 0.5
    assert evaluation_queue.client.exists(f"vigil:wake:{DRAIN_TASK}") == 0


@pytest.mark.postgres  # the drain runs in a thread of its own, on its own connection
@pytest.mark.django_db(transaction=True)
def test_uploads_while_a_drain_lingers_are_evaluated_by_that_drain_without_a_message(
    three_patients, evaluation_queue, django_capture_on_commit_callbacks
):
    # given: a drain started for the first patient, lingering up to 2 s between uploads
    first, second, third = three_patients
    uploaded(first, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    evaluation_queue.client.delete("evaluation")
    result: dict = {}

    def drain() -> None:
        try:
            result["evaluated"] = drain_pending_readings(budget=5, linger=2)
        finally:
            connections.close_all()

    worker = threading.Thread(target=drain)
    worker.start()

    # when: two more patients upload while it runs, one with a crossing
    time.sleep(0.3)
    uploaded(second, glucose(LOW_GLUCOSE), capture=django_capture_on_commit_callbacks)
    time.sleep(0.3)
    uploaded(third, glucose(NORMAL_GLUCOSE), capture=django_capture_on_commit_callbacks)
    worker.join(timeout=10)

    # then: the same drain evaluated all three, no message was published for the two
    assert not worker.is_alive()
    assert result["evaluated"] == 3
    assert [pending(p) for p in three_patients] == [0, 0, 0]
    assert evaluation_queue.tasks() == []
    assert list(Alert.objects.values_list("patient_id", "dedupe_key")) == [
        (second.pk, "glucose_low")
    ]
    # and it let go when the uploads stopped: the next one publishes again
    assert evaluation_queue.client.exists(f"vigil:wake:{DRAIN_TASK}") == 0
