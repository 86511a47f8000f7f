"""The alert event as routing's outbox: routing claims it and marks it routed in the
transaction that writes its notifications; a beat sweep routes the paging events whose
routing task was lost. Delivery records each attempt before it sends.

Real PostgreSQL and the test Redis broker; webhooks to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from celery.exceptions import Retry
from django.apps import apps
from django.conf import settings
from django.db import OperationalError, connection, connections

from alerts.lifecycle import Trigger, acknowledge_alert, raise_alert, resolve_alert
from alerts.models import AlertEvent, Notification, NotificationAttempt, Silence
from alerts.notify import (
    deliver_notification,
    enqueue_unrouted_alert_events,
    route_alert_event,
    unrouted_alert_events,
)
from alerts.tasks import (
    deliver_notification_task,
    enqueue_unrouted_alert_events_task,
    route_alert_event_task,
)
from tests.factories import RuleFactory
from tests.monitoring.conftest import QueuedTask

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
GRACE = settings.VIGIL_EVALUATION_GRACE

migration = importlib.import_module("alerts.migrations.0007_alertevent_routed_at")


@pytest.fixture
def on_call(team, nurse, receiver, time_machine):
    """The nurse (level 1) by email, and the team's webhook."""
    time_machine.move_to(NOW, tick=False)
    nurse.email = "nurse@clinic.test"
    nurse.save()
    team.webhook_url = f"{receiver.url}/hooks/vigil"
    team.save()
    return team


def raise_event(patient, key: str = "glucose_low", *, severity="critical", at=NOW) -> AlertEvent:
    rule = RuleFactory(patient=patient, key=key, group=key, severity=severity)
    trigger = Trigger(
        rule=rule, severity=severity, title="Level 2 hypoglycaemia",
        detail="48 mg/dL; rule: < 54 mg/dL", first_at=at, last_at=at,
    )  # fmt: skip
    return raise_alert(patient=patient, trigger=trigger, now=at).event


def routed_at(event) -> datetime | None:
    return AlertEvent.objects.values_list("routed_at", flat=True).get(pk=event.pk)


def route(*events) -> list[QueuedTask]:
    return [QueuedTask(name=route_alert_event_task.name, args=[e.pk], kwargs={}) for e in events]


def targets() -> list[tuple]:
    return list(Notification.objects.order_by("id").values_list("event_id", "channel", "target"))


# --- Routing claims the event -----------------------------------------------------------------


def test_routing_marks_the_event_routed_with_its_notifications(patient, on_call):
    event = raise_event(patient)
    assert routed_at(event) is None

    ids = route_alert_event(event_id=event.pk)

    assert routed_at(event) == NOW
    assert targets() == [
        (event.pk, "email", "nurse@clinic.test"),
        (event.pk, "webhook", on_call.webhook_url),
    ]
    assert ids == list(Notification.objects.order_by("id").values_list("id", flat=True))


@pytest.mark.parametrize("why", ["info", "silenced", "acknowledged", "resolved"])
def test_routing_that_pages_nobody_marks_the_event_routed_all_the_same(
    patient, on_call, nurse, why, notifications_queue, django_capture_on_commit_callbacks
):
    # given: an event nobody is to be paged about, for one reason or another
    event = raise_event(patient, severity="info" if why == "info" else "critical")
    if why == "silenced":
        Silence.objects.create(
            patient=patient, starts_at=NOW - MINUTE, ends_at=NOW + MINUTE, author=nurse,
            reason="Dose change; physician informed",
        )  # fmt: skip
    elif why == "acknowledged":
        acknowledge_alert(alert=event.alert, user=nurse, now=NOW)
    elif why == "resolved":
        resolve_alert(alert=event.alert, user=nurse, now=NOW)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert route_alert_event(event_id=event.pk) == []

    # then: marked, so the sweep does not take it again; nobody paged
    assert routed_at(event) == NOW
    assert Notification.objects.count() == 0
    assert callbacks == []
    assert len(notifications_queue) == 0
    assert list(unrouted_alert_events(now=NOW + 2 * GRACE)) == []


@pytest.mark.postgres
def test_a_failed_routing_leaves_the_event_unrouted(patient, on_call):
    # given: a routing that fails after claiming the event (a trigger fails the insert of its
    # notifications, standing in for any database error)
    event = raise_event(patient)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION fail_notification() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full' USING ERRCODE = '53100'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER fail_notification BEFORE INSERT ON alerts_notification "
            "FOR EACH ROW EXECUTE FUNCTION fail_notification()"
        )

    # when
    with pytest.raises(OperationalError, match="disk full"):
        route_alert_event(event_id=event.pk)

    # then: the claim is rolled back with the notifications: the sweep will take it
    assert routed_at(event) is None
    assert Notification.objects.count() == 0
    assert list(unrouted_alert_events(now=NOW + GRACE + MINUTE)) == [event]


@pytest.mark.django_db(transaction=True)
def test_two_routings_of_one_event_at_once_page_each_target_once(
    patient, on_call, run_concurrently, notifications_queue
):
    event = raise_event(patient)

    results = run_concurrently(
        lambda: route_alert_event(event_id=event.pk),
        lambda: route_alert_event(event_id=event.pk),
    )

    # then: one run routed it, the other found it claimed; one delivery enqueued per target
    ids = list(Notification.objects.order_by("id").values_list("id", flat=True))
    assert sorted(results, key=len) == [[], ids]
    assert len(ids) == 2
    assert notifications_queue.tasks() == [
        QueuedTask(name=deliver_notification_task.name, args=[pk], kwargs={}) for pk in ids
    ]
    assert routed_at(event) == NOW


# --- The sweep ----------------------------------------------------------------------------------


def test_the_sweep_routes_paging_events_left_unrouted_past_the_grace_oldest_first(
    patient,
    on_call,
    nurse,
    time_machine,
    notifications_queue,
    evaluation_queue,
    django_capture_on_commit_callbacks,
):
    # given: paging events whose routing task was lost, one still within the grace, one
    # routed, and events that page nobody
    raised = raise_event(patient, "glucose_low", at=NOW)
    escalated = AlertEvent.objects.create(
        alert=raised.alert, kind="escalated", at=NOW + MINUTE, data={"level": 1, "repeat": 0}
    )
    routed = raise_event(patient, "weight_gain", at=NOW + MINUTE)
    route_alert_event(event_id=routed.pk, now=NOW + MINUTE)
    AlertEvent.objects.create(alert=raised.alert, kind="note", at=NOW, actor=nurse, note="Called")
    worse = raise_event(patient, "glucose_very_low", at=NOW + 3 * MINUTE)
    notifications_queue.purge()
    time_machine.move_to(NOW + 3 * MINUTE, tick=False)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_unrouted_alert_events()

    # then: the two lost ones, oldest first; not the one within the grace
    assert count == 2
    assert notifications_queue.tasks() == route(raised, escalated)
    assert len(evaluation_queue) == 0

    # when: their routing runs, and the sweep runs again past the grace of the newest
    for task in notifications_queue.tasks():
        route_alert_event_task.apply(args=task.args)
    notifications_queue.purge()
    time_machine.move_to(NOW + 3 * MINUTE + GRACE + MINUTE, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        again = enqueue_unrouted_alert_events()

    # then: each routed once (the escalation to level 1 pages the nurse again); the newest
    # is taken now, nothing else
    assert again == 1
    assert notifications_queue.tasks() == route(worse)
    assert [(r, routed_at(r)) for r in (raised, escalated)] == [
        (raised, NOW + 3 * MINUTE),
        (escalated, NOW + 3 * MINUTE),
    ]
    assert [event_id for event_id, _, _ in targets()] == [routed.pk] * 2 + [raised.pk] * 2 + [
        escalated.pk
    ] * 2


def test_the_sweep_carries_on_in_another_run_when_more_than_a_batch_waits(
    settings, patient, on_call, time_machine, django_capture_on_commit_callbacks
):
    settings.VIGIL_SWEEP_BATCH = 2
    first, second, third = (raise_event(patient, key) for key in ("a", "b", "c"))
    time_machine.move_to(NOW + GRACE + MINUTE, tick=False)

    with django_capture_on_commit_callbacks() as callbacks:
        count = enqueue_unrouted_alert_events()
    with django_capture_on_commit_callbacks() as carried_on:
        rest = enqueue_unrouted_alert_events(after_event_id=second.pk)

    # One hook for the batch (it stops at the first failed publish), the sweep last.
    assert (count, rest) == (2, 1)
    [publish] = callbacks
    assert [(task.name, args, kwargs) for task, args, kwargs in publish.messages] == [
        (route_alert_event_task.name, (first.pk,), {}),
        (route_alert_event_task.name, (second.pk,), {}),
        (enqueue_unrouted_alert_events_task.name, (), {"after_event_id": second.pk}),
    ]
    [publish] = carried_on
    assert [(task.name, args) for task, args, _ in publish.messages] == [
        (route_alert_event_task.name, (third.pk,))
    ]


def test_the_sweep_enqueues_nothing_when_every_paging_event_is_routed(
    patient, on_call, time_machine, django_capture_on_commit_callbacks
):
    route_alert_event(event_id=raise_event(patient).pk)
    time_machine.move_to(NOW + GRACE + MINUTE, tick=False)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert enqueue_unrouted_alert_events() == 0

    assert callbacks == []


@pytest.mark.postgres
def test_the_sweep_is_served_by_its_partial_index(patient, on_call):
    raise_event(patient)
    query = unrouted_alert_events(now=NOW).order_by("pk").values_list("pk", flat=True)[:501]

    with connection.cursor() as cursor:
        # A few rows: the planner would rather scan; forbid it, then see the index fits.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()

    assert "alertevent_unrouted" in plan


def test_beat_runs_the_routing_sweep_every_minute_on_the_evaluation_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["enqueue-unrouted-alert-events"]
    assert entry == {"task": enqueue_unrouted_alert_events_task.name, "schedule": 60.0}
    assert settings.CELERY_TASK_ROUTES.get(enqueue_unrouted_alert_events_task.name) is None
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "evaluation"


def test_deploying_marks_every_existing_event_routed_when_it_happened(patient, nurse):
    # given: events from before routed_at existed, paging or not
    raised = raise_event(patient, at=NOW - timedelta(days=3))
    note = AlertEvent.objects.create(
        alert=raised.alert, kind="note", at=NOW - timedelta(days=2), actor=nurse, note="Called"
    )

    # when
    migration.mark_existing_events_routed(apps, None)

    # then: routed when they happened; the sweep pages nobody about them
    assert [routed_at(e) for e in (raised, note)] == [
        NOW - timedelta(days=3),
        NOW - timedelta(days=2),
    ]
    assert list(unrouted_alert_events(now=NOW)) == []


# --- Delivery: the attempt on record before the send -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_attempt_is_on_record_while_its_page_is_in_flight(
    patient, on_call, receiver, notifications_queue
):
    # given: a webhook page, its receiver holding the answer
    route_alert_event(event_id=raise_event(patient).pk)
    notification = Notification.objects.get(channel="webhook")
    receiver.hold()
    outcome = {}

    def deliver():
        try:
            outcome["value"] = deliver_notification(notification_id=notification.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=deliver)
    thread.start()
    try:
        assert receiver.arrived.wait(timeout=10)

        # then: while the request is in flight, its attempt is committed, outcome unknown
        in_flight = list(
            NotificationAttempt.objects.filter(notification=notification).values_list(
                "number", "at", "outcome", "status_code", "error"
            )
        )
    finally:
        receiver.release()
        thread.join(timeout=30)

    assert in_flight == [(1, NOW, "unknown", None, "")]
    assert outcome == {"value": "sent"}
    assert list(
        NotificationAttempt.objects.filter(notification=notification).values_list(
            "number", "at", "outcome", "status_code", "error"
        )
    ) == [(1, NOW, "sent", 200, "")]
    assert json.loads(receiver.requests[0].body)["event_id"] == notification.event_id


# --- The delivery task and database errors -------------------------------------------------------


def run_with_its_row_locked(notification, *, retries: int):
    """The delivery task, run as a worker runs it (its retry published for real), while
    another connection holds the row locked and this one gives up on a lock after 50 ms:
    a real OperationalError (lock_timeout), raised by the claim before anything is sent."""
    import psycopg

    from tests.celery_worker import worker_database_url

    with (
        psycopg.connect(worker_database_url(), autocommit=False) as holder,
        connection.cursor() as cursor,
    ):
        holder.execute(
            "SELECT id FROM alerts_notification WHERE id = %s FOR UPDATE", [notification.pk]
        )
        cursor.execute("SET lock_timeout = '50ms'")
        deliver_notification_task.push_request(
            id="delivery-1",
            args=[notification.pk],
            kwargs={},
            retries=retries,
            called_directly=False,
            delivery_info={"exchange": "", "routing_key": "notifications"},
        )
        try:
            deliver_notification_task.run(notification.pk)
        finally:
            deliver_notification_task.pop_request()
            cursor.execute("SET lock_timeout = 0")
            holder.rollback()


@pytest.fixture
def webhook_notification(patient, on_call, notifications_queue):
    route_alert_event(event_id=raise_event(patient).pk)
    notifications_queue.purge()
    return Notification.objects.get(channel="webhook")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_delivery_task_retries_a_database_error_after_a_backoff(
    webhook_notification, receiver, notifications_queue
):
    with pytest.raises(Retry) as retry:
        run_with_its_row_locked(webhook_notification, retries=0)

    # then: the retry is queued, due within 2^0 s (jitter), for the error seen; nothing sent
    assert isinstance(retry.value.exc, OperationalError)
    assert 0 <= retry.value.when <= 1
    assert notifications_queue.tasks() == [
        QueuedTask(name=deliver_notification_task.name, args=[webhook_notification.pk], kwargs={})
    ]
    assert receiver.requests == []
    webhook_notification.refresh_from_db()
    assert (webhook_notification.status, webhook_notification.attempts) == ("pending", 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_delivery_task_gives_a_database_error_up_after_five_retries(
    webhook_notification, receiver, notifications_queue
):
    # After that the row, still pending, is the delivery sweep's.
    with pytest.raises(OperationalError):
        run_with_its_row_locked(webhook_notification, retries=5)

    assert len(notifications_queue) == 0
    assert receiver.requests == []
    webhook_notification.refresh_from_db()
    assert (webhook_notification.status, webhook_notification.attempts) == ("pending", 0)
