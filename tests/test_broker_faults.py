"""A broker that hangs (SIGSTOP: the connection is accepted, nothing answers) or refuses:
what is committed is answered at once and stays in its outbox; each failed publish is one
log line. A redis-server of the test's own; nothing in the product is patched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from config.celery import enqueue_all_on_commit, enqueue_on_commit
from monitoring.evaluation import enqueue_unevaluated_readings
from monitoring.models import Reading
from monitoring.tasks import drain_pending_readings_task, evaluate_patient_readings_task
from tests.factories import ReadingItemFactory
from tests.monitoring.conftest import BrokerQueue, QueuedTask, publishing_to
from tests.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.django_db(transaction=True)

EVALUATE = evaluate_patient_readings_task.name
DRAIN = drain_pending_readings_task.name
PUBLISH_FAILED = "publish of {} failed (OperationalError); its outbox sweep enqueues it again"


@pytest.fixture
def broker(tmp_path) -> Iterator[RedisServer]:
    """The app publishes to a redis-server of this test's own, with a connection in its pool
    already, as in a web process that has published before (the slow case on main: the
    first publish after the freeze took 12 s there, with a fresh connection 3 s)."""
    with running_redis(tmp_path) as server, publishing_to(server.url):
        evaluate_patient_readings_task.delay(0)
        server.client().delete("evaluation")
        yield server


def publish_warnings(caplog) -> list[tuple[str, str, bool]]:
    return [
        (record.levelname, record.getMessage(), record.exc_info is not None)
        for record in caplog.records
        if record.name == "config.celery"
    ]


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_uploads_while_the_broker_is_frozen_are_stored_and_answered_at_once(
    broker, patient, patient_client, caplog
):
    # given
    first, second = ReadingItemFactory(), ReadingItemFactory()
    broker.freeze()

    # when: two uploads, one after the other, while Redis answers nothing
    def post(item):
        return patient_client.post("/api/v1/readings", {"readings": [item]}, format="json")

    try:
        responses_and_times = [timed(lambda item=item: post(item)) for item in (first, second)]
    finally:
        broker.thaw()

    # then: each answered within the publish's socket timeout (1 s), stored, not evaluated
    for response, elapsed in responses_and_times:
        assert response.status_code == 201
        assert elapsed < 2, f"an upload took {elapsed:.1f} s with the broker frozen"
    assert [r.json()["results"][0]["status"] for r, _ in responses_and_times] == [
        "created",
        "created",
    ]
    assert sorted(str(pk) for pk in Reading.objects.values_list("client_id", flat=True)) == (
        sorted([first["id"], second["id"]])
    )
    assert Reading.objects.filter(evaluated_at__isnull=False).count() == 0
    # One line per failed wake-up (its Redis command timed out), no traceback.
    wake_failed = PUBLISH_FAILED.format(DRAIN).replace("OperationalError", "TimeoutError")
    assert publish_warnings(caplog) == [("WARNING", wake_failed, False)] * 2

    # when: the broker answers again, and the evaluation sweep runs after the grace
    queue = BrokerQueue(broker.client(), "evaluation")
    evaluate = QueuedTask(name=EVALUATE, args=[patient.pk], kwargs={})
    # The first wake-up timed out with its commands in Redis's socket buffer, on the pooled
    # connection: Redis applies them when it wakes (the patient joins the drain's set, whose
    # flag expires after WAKE_TTL_SECONDS), but no message was published. The second waited
    # on a new connection's handshake and sent nothing.
    assert queue.tasks() == []
    enqueue_unevaluated_readings(now=timezone.now() + timedelta(minutes=2))

    # then: the sweep enqueues the readings' evaluation from the database, whatever landed
    assert queue.tasks() == [evaluate]


def test_healthz_names_a_frozen_broker_without_hanging(broker, client):
    broker.freeze()
    try:
        response, elapsed = timed(lambda: client.get("/healthz"))
    finally:
        broker.thaw()

    assert response.status_code == 503
    assert (response.json()["database"], response.json()["broker"]) == ("ok", "unreachable")
    # config/health.py tries the broker once: about one socket timeout (1 s). Before, it
    # tried twice 2 s apart, and a frozen broker also held every upload.
    assert elapsed < 3, f"/healthz took {elapsed:.1f} s with the broker frozen"


def test_a_batch_publish_stops_at_the_first_failure_and_logs_one_line(broker, caplog):
    # given: three messages for after the commit; the broker is frozen
    broker.freeze()

    # when
    def commit():
        from django.db import transaction

        with transaction.atomic():
            enqueue_all_on_commit([(evaluate_patient_readings_task, (pk,), {}) for pk in (1, 2, 3)])

    try:
        _, elapsed = timed(commit)
    finally:
        broker.thaw()

    # then: one socket timeout, not three; the rest is left to the sweeps (the first, timed
    # out in Redis's socket buffer, lands when Redis wakes)
    assert elapsed < 2, f"the batch took {elapsed:.1f} s"
    assert publish_warnings(caplog) == [("WARNING", PUBLISH_FAILED.format(EVALUATE), False)]
    assert BrokerQueue(broker.client(), "evaluation").tasks() == [
        QueuedTask(name=EVALUATE, args=[1], kwargs={})
    ]


def test_a_publish_to_a_refusing_broker_is_one_warning_line(caplog):
    from django.db import transaction

    with publishing_to("redis://127.0.0.1:1/0"), transaction.atomic():
        enqueue_on_commit(evaluate_patient_readings_task, 7)

    assert publish_warnings(caplog) == [("WARNING", PUBLISH_FAILED.format(EVALUATE), False)]
    # Nothing from Django's robust on_commit handler, which logs the traceback of a hook
    # that raises (60 lines a publish, measured on main).
    assert not [r for r in caplog.records if r.name == "django.db.backends.base"]


def test_publishing_is_not_retried_and_gives_up_after_a_second():
    options = celery_app.conf.broker_transport_options
    assert celery_app.conf.task_publish_retry_policy == {"max_retries": 0}
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (1, 1)
    assert options["max_retries"] == 0
