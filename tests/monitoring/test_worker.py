"""A real Celery worker process, on the test broker and the pytest-django test database."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from django.db import connection

from monitoring.auth import issue_app_token
from monitoring.models import Reading
from monitoring.tasks import evaluate_patient_readings_task
from tests import broker
from tests.celery_worker import (
    WorkerProcess,
    start_worker,
    stop_worker,
    wait_for,
    worker_database_url,
)
from tests.factories import ReadingFactory, ReadingItemFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(transactional_db, tmp_path) -> Iterator[WorkerProcess]:
    """`celery -A config worker --pool prefork -c 1 -Q evaluation`, stopped when the test ends."""
    # Leftovers of an earlier run would be delivered to (or restored into) the new worker.
    broker.purge("evaluation")
    worker = start_worker(tmp_path, queues=["evaluation"], pool="prefork")
    try:
        yield worker
    finally:
        stop_worker(worker)
        broker.purge("evaluation")


def is_settled() -> bool:
    """Nothing waiting in the queue and nothing delivered but unacknowledged (acks_late)."""
    return broker.settled("evaluation")


def test_a_reading_posted_over_http_is_evaluated_by_a_real_worker(worker, live_server, patient):
    # given
    _, token = issue_app_token(patient=patient)
    item = ReadingItemFactory(type="weight")

    # when
    response = httpx.post(
        f"{live_server.url}/api/v1/readings",
        json={"readings": [item]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    # then
    assert response.status_code == 201
    assert response.json()["results"] == [{"id": item["id"], "status": "created"}]
    reading = Reading.objects.get(patient=patient)
    evaluated_at = wait_for(
        "evaluation",
        lambda: Reading.objects.filter(pk=reading.pk).values_list("evaluated_at", flat=True)[0],
        worker,
    )
    assert evaluated_at > reading.received_at
    wait_for("acknowledgement", lambda: is_settled(), worker)
    assert re.search(r"evaluate_patient_readings_task\[[-0-9a-f]+\] succeeded", worker.log())


@pytest.mark.direct_database
def test_the_worker_keeps_its_database_connection_between_tasks(worker, patient, other_patient):
    # Celery's Django fixup closes the connection around every task unless it sees
    # CELERY_DB_REUSE_MAX in the worker's app config (docs/architecture.md, "Performance
    # facts we measured": ~90 vs ~400 tasks/s).
    # given: a first task has run and been acknowledged
    first = ReadingFactory(patient=patient)
    evaluate_patient_readings_task.delay(patient.pk)
    wait_for("first evaluation", lambda: evaluated(first), worker)
    wait_for("acknowledgement", lambda: is_settled(), worker)
    backends_after_first = worker.backends()

    # when
    second = ReadingFactory(patient=other_patient)
    evaluate_patient_readings_task.delay(other_patient.pk)
    wait_for("second evaluation", lambda: evaluated(second), worker)
    wait_for("acknowledgement", lambda: is_settled(), worker)

    # then: one connection, still open after each task, the same one both times
    assert len(backends_after_first) == 1, worker.log()
    assert worker.backends() == backends_after_first


def evaluated(reading) -> bool:
    return Reading.objects.filter(pk=reading.pk, evaluated_at__isnull=False).exists()


class RowLock:
    """Locks on rows, held by a connection of the test's own until released."""

    def __init__(self) -> None:
        self.holder = psycopg.connect(worker_database_url(), autocommit=False)

    def take(self, reading: Reading) -> None:
        table = Reading._meta.db_table
        self.holder.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [reading.pk])

    def release(self) -> None:
        self.holder.rollback()


@pytest.fixture
def row_lock(worker) -> Iterator[RowLock]:
    # Depends on the worker so it is released first: a worker blocked on it cannot stop.
    lock = RowLock()
    try:
        yield lock
    finally:
        lock.release()
        lock.holder.close()


def test_a_task_whose_worker_process_is_killed_mid_run_is_run_again(worker, row_lock, patient):
    # given: the evaluation blocked mid-run on a row this test holds locked
    reading = ReadingFactory(patient=patient)
    row_lock.take(reading)
    evaluate_patient_readings_task.delay(patient.pk)
    [first_run] = wait_for(
        "a run blocked on the lock", lambda: worker.backends(waiting_on_a_lock=True), worker
    )
    [child] = worker.children()

    # when: the pool process running it dies
    os.kill(child, signal.SIGKILL)

    # then: a new pool process takes the task up again (acks_late + reject_on_worker_lost)
    wait_for(
        "a second run",
        lambda: [pid for pid in worker.backends(waiting_on_a_lock=True) if pid != first_run],
        worker,
    )
    assert child not in worker.children()
    assert not evaluated(reading)

    # when: the lock is released
    row_lock.release()

    # then: delivered twice, run to the end once, acknowledged, nothing left in the queue
    wait_for("evaluation", lambda: evaluated(reading), worker)
    wait_for("acknowledgement", lambda: is_settled(), worker)
    log = worker.log()
    assert log.count("WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL)") == 1
    assert len(re.findall(r"evaluate_patient_readings_task\[[-0-9a-f]+\] received", log)) == 2
    assert len(re.findall(r"evaluate_patient_readings_task\[[-0-9a-f]+\] succeeded", log)) == 1


@pytest.mark.direct_database
def test_the_worker_reconnects_after_its_database_connection_is_lost(
    worker, patient, other_patient
):
    # given: the worker's kept connection, killed as a database restart or failover would
    first = ReadingFactory(patient=patient)
    evaluate_patient_readings_task.delay(patient.pk)
    wait_for("first evaluation", lambda: evaluated(first), worker)
    wait_for("acknowledgement", lambda: is_settled(), worker)
    [lost] = worker.backends()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [lost])
    wait_for("the connection to end", lambda: lost not in worker.backends(), worker)

    # when
    second = ReadingFactory(patient=other_patient)
    evaluate_patient_readings_task.delay(other_patient.pk)

    # then
    wait_for("evaluation on a new connection", lambda: evaluated(second), worker)
    wait_for("acknowledgement", lambda: is_settled(), worker)
    assert len(worker.backends()) == 1
    assert worker.backends() != [lost]


@pytest.mark.pooler
def test_behind_a_pooler_a_database_restart_costs_the_worker_no_task(
    worker, patient, other_patient
):
    # given: a first task evaluated through PgBouncer (./scripts/test's pooler run)
    first = ReadingFactory(patient=patient)
    evaluate_patient_readings_task.delay(patient.pk)
    wait_for("first evaluation", lambda: evaluated(first), worker)
    wait_for("acknowledgement", is_settled, worker)

    # when: PostgreSQL ends every session on the database but this statement's (a restart, a
    # failover); the worker's own connection is to PgBouncer, which drops the dead servers
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        [(ended,)] = cursor.fetchall()
    assert ended >= 1  # at least the server connection the first task ran on
    second = ReadingFactory(patient=other_patient)
    evaluate_patient_readings_task.delay(other_patient.pk)

    # then: evaluated at the first try, on a new server connection, with no error
    wait_for("evaluation after the restart", lambda: evaluated(second), worker)
    wait_for("acknowledgement", is_settled, worker)
    log = worker.log()
    assert len(re.findall(r"evaluate_patient_readings_task\[[-0-9a-f]+\] succeeded", log)) == 2
    assert "OperationalError" not in log
    assert "Retry in" not in log
