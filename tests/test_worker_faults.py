"""Every page reaches a person through the faults a deployment meets: a routing task lost in
a broker restart, a worker's database connection dropped, a worker killed mid-send.

Real `celery -A config worker` processes on the pytest-django test database; the broker is
the test Redis or, where it must restart, a redis-server of the test's own. Email goes
through Django's file-based backend into tmp_path; webhooks to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import AlertEvent, Notification, NotificationAttempt
from alerts.notify import enqueue_pending_notifications, route_alert_event
from alerts.tasks import (
    deliver_notification_task,
    enqueue_unrouted_alert_events_task,
    route_alert_event_task,
)
from monitoring.auth import issue_app_token
from monitoring.enrolment import enrol_patient
from monitoring.tasks import evaluate_patient_readings_task
from tests import broker
from tests.celery_worker import WorkerProcess, start_worker, stop_worker, wait_for
from tests.factories import CareTeamFactory, MembershipFactory, RuleFactory, UserFactory
from tests.http_receiver import HttpReceiver
from tests.monitoring.conftest import BrokerQueue, QueuedTask, publishing_to
from tests.redis_server import RedisServer, running_redis

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

QUEUES = ["evaluation", "notifications"]
NURSE_EMAIL = "nurse.level1@clinic.example"


def settled(client: redis.Redis) -> bool:
    """Nothing queued and nothing delivered but unacknowledged (acks_late)."""
    return all(client.llen(name) == 0 for name in QUEUES) and not client.hlen("unacked")


def purge(client: redis.Redis) -> None:
    client.delete(*QUEUES, "unacked", "unacked_index")


def emails(mail_dir) -> list[str]:
    return [path.read_text() for path in sorted(mail_dir.iterdir())] if mail_dir.exists() else []


def mail_env(tmp_path) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }


def succeeded(worker: WorkerProcess, task) -> list[str]:
    """What each successful run of `task` returned, in the worker's log order."""
    return re.findall(
        rf"{re.escape(task.name)}\[[-0-9a-f]+\] succeeded in [\d.]+s: (.+)", worker.log()
    )


def notifications() -> list[tuple]:
    return list(
        Notification.objects.order_by("id").values_list("event_id", "channel", "target", "status")
    )


@pytest.fixture
def team(transactional_db):
    team = CareTeamFactory(name="Diabetes clinic")
    nurse = UserFactory(username="nurse", email=NURSE_EMAIL)
    MembershipFactory(team=team, user=nurse, role="nurse", escalation_level=1)
    return team


def critical_event(team, key: str) -> AlertEvent:
    """A critical alert raised and committed, whose routing nobody enqueued."""
    patient = enrol_patient(
        external_id=f"MRN-{key}", name="Ada Example", timezone="Europe/Berlin",
        care_team=team, protocols=[],
    )  # fmt: skip
    rule = RuleFactory(patient=patient, key=key, group=key, severity="critical")
    now = timezone.now()
    trigger = Trigger(
        rule=rule, severity="critical", title="Level 2 hypoglycaemia",
        detail="48 mg/dL; rule: < 54 mg/dL", first_at=now, last_at=now,
    )  # fmt: skip
    return raise_alert(patient=patient, trigger=trigger).event


# --- 1. A routing task lost with the broker --------------------------------------------------


@pytest.fixture
def own_broker(tmp_path) -> Iterator[RedisServer]:
    """A redis-server without persistence that the app publishes to."""
    with running_redis(tmp_path) as server, publishing_to(server.url):
        yield server


@pytest.mark.redis_broker  # a Redis without persistence restarted: RabbitMQ's queues are durable
def test_a_critical_alert_whose_routing_was_lost_in_a_broker_restart_is_paged_once(
    team, own_broker, tmp_path
):
    # given: a critical glucose posted and evaluated; its routing task waits in the broker
    patient = enrol_patient(
        external_id="MRN-LOST-1", name="Ada Example", timezone="Europe/Berlin",
        care_team=team, protocols=["diabetes"],
    )  # fmt: skip
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_app_token(patient=patient)[1]}")
    item = {
        "id": str(uuid.uuid4()), "type": "glucose", "value": 2.8, "unit": "mmol/L",
        "measured_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
    }  # fmt: skip
    assert client.post("/api/v1/readings", {"readings": [item]}, format="json").status_code == 201
    evaluate_patient_readings_task.apply(args=[patient.pk])
    [event] = AlertEvent.objects.filter(alert__patient=patient)
    notifications_queue = BrokerQueue(own_broker.client(), "notifications")
    assert notifications_queue.tasks() == [
        QueuedTask(name=route_alert_event_task.name, args=[event.pk], kwargs={})
    ]

    # when: Redis restarts without persistence, and a worker comes up
    own_broker.restart()
    worker = start_worker(
        tmp_path,
        queues=QUEUES,
        pool="solo",
        env=mail_env(tmp_path)
        | {"CELERY_BROKER_URL": own_broker.url, "VIGIL_EVALUATION_GRACE_SECONDS": "0"},
    )
    try:
        wait_for("the worker to be ready", lambda: " ready." in worker.log(), worker)

        # then: the routing task is gone; nobody is paged (where main stayed for good)
        assert len(notifications_queue) == 0
        assert notifications() == []

        # when: beat's routing sweep runs
        enqueue_unrouted_alert_events_task.delay()

        # then: the event is routed and the nurse emailed, once
        wait_for(
            "a sent page",
            lambda: Notification.objects.filter(status="sent").exists(),
            worker,
        )
        wait_for("settled queues", lambda: settled(own_broker.client()), worker)
        assert notifications() == [(event.pk, "email", NURSE_EMAIL, "sent")]
        assert len(emails(tmp_path / "mail")) == 1
        assert AlertEvent.objects.get(pk=event.pk).routed_at is not None

        # when: the sweep runs again
        enqueue_unrouted_alert_events_task.delay()
        wait_for(
            "the second sweep",
            lambda: len(succeeded(worker, enqueue_unrouted_alert_events_task)) == 2,
            worker,
        )
        wait_for("settled queues", lambda: settled(own_broker.client()), worker)

        # then: nothing more
        assert succeeded(worker, enqueue_unrouted_alert_events_task) == ["1", "0"]
        assert succeeded(worker, route_alert_event_task) == ["1"]
        assert notifications() == [(event.pk, "email", NURSE_EMAIL, "sent")]
        assert len(emails(tmp_path / "mail")) == 1
    finally:
        stop_worker(worker)


# --- 2. The worker's database connection dropped ---------------------------------------------


@pytest.fixture
def test_broker() -> Iterator[None]:
    """The test broker (Redis or RabbitMQ), its queues empty before and after."""
    broker.purge(*QUEUES)
    yield
    broker.purge(*QUEUES)


@pytest.mark.direct_database
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_notifications_worker_whose_database_connection_was_dropped_routes_the_next_event(
    team, test_broker, tmp_path, pool
):
    # given: a notifications-only worker (CELERY_DB_REUSE_MAX kept, as deployed) that has
    # routed and delivered one page on its kept connection
    assert settings.CELERY_DB_REUSE_MAX == 1000
    first, second = critical_event(team, "first"), critical_event(team, "second")
    worker = start_worker(
        tmp_path, queues=["notifications"], pool=pool, concurrency=1, env=mail_env(tmp_path)
    )
    try:
        route_alert_event_task.delay(first.pk)
        wait_for(
            "the first page",
            lambda: Notification.objects.filter(event=first, status="sent").exists(),
            worker,
        )
        wait_for("settled queues", lambda: broker.settled(*QUEUES), worker)
        assert notifications() == [(first.pk, "email", NURSE_EMAIL, "sent")]

        # when: PostgreSQL drops its connections (failover, pg_terminate_backend, a pooler)
        lost = worker.backends()
        assert len(lost) == 1
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s) AS pid", [lost])
        wait_for("the connection to end", lambda: not set(lost) & set(worker.backends()), worker)
        route_alert_event_task.delay(second.pk)

        # then: the next event is routed and delivered at the first try, on a new connection
        wait_for(
            "the second page",
            lambda: Notification.objects.filter(event=second, status="sent").exists(),
            worker,
        )
        wait_for("settled queues", lambda: broker.settled(*QUEUES), worker)
        assert notifications() == [
            (first.pk, "email", NURSE_EMAIL, "sent"),
            (second.pk, "email", NURSE_EMAIL, "sent"),
        ]
        assert succeeded(worker, route_alert_event_task) == ["1", "1"]
        assert "Retry in" not in worker.log()
        assert "OperationalError" not in worker.log()
        assert len(worker.backends()) == 1
        assert worker.backends() != lost
    finally:
        stop_worker(worker)


# --- 3. A worker killed while it sends a page ------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


def attempts(notification) -> list[tuple]:
    return list(
        NotificationAttempt.objects.filter(notification=notification)
        .order_by("number")
        .values_list("number", "outcome", "status_code", "error")
    )


def test_a_page_whose_worker_was_killed_mid_send_is_recorded_and_sent_again(
    team, test_broker, receiver, tmp_path
):
    # given: the team's webhook only (nobody with an address), its receiver holding answers
    team.memberships.all().delete()
    team.webhook_url = f"{receiver.url}/hooks/vigil"
    team.save()
    event = critical_event(team, "killed")
    worker = start_worker(tmp_path, queues=["notifications"], pool="prefork", concurrency=1)
    try:
        receiver.hold()
        [notification_id] = route_alert_event(event_id=event.pk)
        assert receiver.arrived.wait(timeout=60), worker.log()[-6000:]

        # then: the attempt is on record while the request is in flight
        notification = Notification.objects.get(pk=notification_id)
        assert attempts(notification) == [(1, "unknown", None, "")]

        # when: the worker process sending it is killed
        [child] = worker.children()
        os.kill(child, signal.SIGKILL)

        # then: the redelivered task finds the row leased and leaves it; the attempt stays
        # on record, its outcome unknown (the receiver may have had the page)
        wait_for(
            "the redelivered task",
            lambda: succeeded(worker, deliver_notification_task) == ["'skipped'"],
            worker,
        )
        wait_for("settled queues", lambda: broker.settled(*QUEUES), worker)
        notification.refresh_from_db()
        assert (notification.status, notification.attempts) == ("pending", 1)
        assert attempts(notification) == [(1, "unknown", None, "")]

        # when: the lease and the grace have passed (moved back here rather than waited for)
        # and the delivery sweep runs
        receiver.release()
        lapsed = timezone.now() - settings.VIGIL_EVALUATION_GRACE - timedelta(seconds=1)
        Notification.objects.filter(pk=notification_id).update(
            claimed_until=lapsed, created_at=lapsed
        )
        assert enqueue_pending_notifications() == 1

        # then: sent at the second attempt
        wait_for(
            "the page sent again",
            lambda: Notification.objects.filter(pk=notification_id, status="sent").exists(),
            worker,
        )
        wait_for("settled queues", lambda: broker.settled(*QUEUES), worker)
        assert attempts(notification) == [(1, "unknown", None, ""), (2, "sent", 200, "")]
        assert len(receiver.requests) == 2
    finally:
        receiver.release()
        stop_worker(worker)
