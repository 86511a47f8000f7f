"""A real Celery worker process, on the test broker and the pytest-django test database."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from django.db import connection

from alerts.models import Alert
from monitoring.auth import issue_app_token
from monitoring.models import Reading
from monitoring.patient_rules import apply_protocols
from monitoring.tasks import evaluate_patient_readings_task
from tests import broker
from tests.celery_worker import (
    WorkerProcess,
    start_worker,
    stop_worker,
    wait_for,
    worker_database_url,
)
from tests.factories import PatientFactory, ReadingFactory, ReadingItemFactory

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
    assert re.search(r"drain_pending_readings_task\[[-0-9a-f]+\] succeeded", worker.log())


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


# --- The evaluation drain under real uploads ----------------------------------------------


@pytest.fixture
def two_process_worker(transactional_db, tmp_path):
    """The production shape: prefork, two processes, draining the evaluation queue."""
    broker.purge("evaluation")
    worker = start_worker(tmp_path, queues=["evaluation"], pool="prefork", concurrency=2)
    try:
        yield worker
    finally:
        stop_worker(worker)
        broker.purge("evaluation")


def test_concurrent_uploads_are_evaluated_once_each_in_measured_order_by_draining_workers(
    two_process_worker, live_server, team
):
    # given: six patients on the diabetes protocol, each posting five readings one per
    # request, in measured order, the patients at once; each patient's second is low
    patients = [PatientFactory(care_team=team) for _ in range(6)]
    for patient in patients:
        apply_protocols(patient=patient, codes=["diabetes"])
    tokens = {patient.pk: issue_app_token(patient=patient)[1] for patient in patients}
    now = datetime.now(UTC)

    def upload_all(patient) -> list[int]:
        statuses = []
        with httpx.Client(base_url=live_server.url, timeout=30) as client:
            for number, minutes in enumerate((50, 40, 30, 20, 10)):
                value = 62 if number == 1 else 112
                item = ReadingItemFactory(
                    type="glucose",
                    value=value,
                    unit="mg/dL",
                    measured_at=(now - timedelta(minutes=minutes)).isoformat(),
                )
                response = client.post(
                    "/api/v1/readings",
                    json={"readings": [item]},
                    headers={"Authorization": f"Bearer {tokens[patient.pk]}"},
                )
                statuses.append(response.status_code)
        return statuses

    # when
    with ThreadPoolExecutor(max_workers=len(patients)) as pool:
        statuses = list(pool.map(upload_all, patients))
    wait_for(
        "every reading evaluated",
        lambda: not Reading.objects.filter(evaluated_at__isnull=True).exists(),
        two_process_worker,
    )
    wait_for("acknowledgement", is_settled, two_process_worker)

    # then: every upload stored; one alert per patient, raised once
    assert statuses == [[201] * 5] * len(patients)
    assert Reading.objects.count() == 30
    alerts = sorted(Alert.objects.values_list("patient_id", "dedupe_key", "occurrences"))
    assert alerts == sorted((patient.pk, "glucose_low", 1) for patient in patients)
    # per patient, no reading was evaluated before one measured earlier
    for patient in patients:
        times = list(
            Reading.objects.filter(patient=patient)
            .order_by("measured_at")
            .values_list("evaluated_at", flat=True)
        )
        assert times == sorted(times)
    log = two_process_worker.log()
    received = len(re.findall(r"drain_pending_readings_task\[[-0-9a-f]+\] received", log))
    assert 1 <= received <= 30
    assert not re.search(r"evaluate_patient_readings_task\[[-0-9a-f]+\] received", log)
