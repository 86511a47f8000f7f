"""alerts/notify.py: delivering each notification, and the outbox sweep.

Routing writes one Notification row per (event, channel, target) and enqueues a delivery per
row after commit. Delivery claims its row with a lease, calls the channel and records the
attempt: a transient failure is retried with backoff, a permanent one (or running out of
attempts) fails the row and flags the target for the operator.

The webhook and SMS channels talk to a real HTTP receiver on 127.0.0.1, email goes to
Django's locmem outbox.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timedelta

import pytest
from celery.exceptions import Retry
from django.db import connection

from alerts.models import (
    Alert,
    Notification,
)
from alerts.notify import (
    deliver_notification,
    enqueue_pending_notifications,
    route_alert_event,
)
from alerts.tasks import deliver_notification_task
from delivery.outbox import Outcome
from tests.alerts.notify_helpers import (  # noqa: F401
    MINUTE,
    NOW,
    NURSE_PHONE,
    attempts,
    deliveries,
    faults,
    on_call,
    raise_event,
    rows,
    rule,
)
from tests.factories import RuleFactory

pytestmark = pytest.mark.django_db


# --- Delivery -----------------------------------------------------------------------------


def routed(patient, rule, channel: str) -> Notification:
    route_alert_event(event_id=raise_event(patient, rule).pk)
    return Notification.objects.get(channel=channel)


def test_an_email_is_sent_once_and_its_attempt_recorded(patient, rule, on_call, mailoutbox, twilio):
    notification = routed(patient, rule, "email")

    outcome = deliver_notification(notification_id=notification.pk)

    assert outcome == Outcome.SENT
    assert [(m.to, m.subject) for m in mailoutbox] == [
        (
            ["nurse@clinic.test"],
            f"Vigil alert #{notification.alert_id}: critical — Level 2 hypoglycaemia",
        )
    ]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.sent_at) == ("sent", 1, NOW)
    assert (notification.claimed_until, notification.last_error) == (None, "")
    assert attempts(notification) == [(1, NOW, "sent", None, "")]
    assert twilio.requests == []


@pytest.mark.parametrize("handled", ["acknowledged", "resolved"])
def test_a_page_still_waiting_when_the_alert_is_handled_is_cancelled_not_sent(
    patient, rule, on_call, mailoutbox, handled
):
    notification = routed(patient, rule, "email")
    Alert.objects.filter(pk=notification.alert_id).update(status=handled)

    outcome = deliver_notification(notification_id=notification.pk)

    assert outcome == Outcome.CANCELLED
    assert mailoutbox == []
    notification.refresh_from_db()
    assert (notification.status, notification.last_error) == (
        "cancelled",
        f"alert {handled} before delivery",
    )
    assert attempts(notification) == []


def test_the_sweep_carries_on_in_another_run_when_more_than_a_batch_is_pending(
    settings, time_machine, patient, rule, on_call, django_capture_on_commit_callbacks
):
    settings.VIGIL_SWEEP_BATCH = 2
    email, sms, _webhook = route_alert_event(event_id=raise_event(patient, rule).pk)
    time_machine.move_to(NOW + 3 * MINUTE, tick=False)

    with django_capture_on_commit_callbacks() as callbacks:
        count = enqueue_pending_notifications()

    # One hook for the batch (it stops at the first failed publish), the sweep last.
    assert count == 2
    [publish] = callbacks
    assert [(task.name, args) for task, args, _kwargs in publish.messages] == [
        ("alerts.tasks.deliver_notification_task", (email,)),
        ("alerts.tasks.deliver_notification_task", (sms,)),
        ("alerts.tasks.enqueue_pending_notifications_task", ()),
    ]


def test_a_webhook_delivery_records_the_receivers_status(patient, rule, on_call, receiver):
    notification = routed(patient, rule, "webhook")

    assert deliver_notification(notification_id=notification.pk) == Outcome.SENT

    assert [(r.method, r.path) for r in receiver.requests] == [("POST", "/hooks/vigil")]
    assert json.loads(receiver.requests[0].body)["event_id"] == notification.event_id
    assert attempts(notification) == [(1, NOW, "sent", 200, "")]


def test_an_sms_delivery_goes_to_twilio_with_the_members_number(patient, rule, on_call, twilio):
    notification = routed(patient, rule, "sms")

    assert deliver_notification(notification_id=notification.pk) == Outcome.SENT

    request = twilio.requests[0]
    assert request.path == "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
    assert (
        dict(pair.split("=") for pair in request.body.decode().split("&"))["To"] == "%2B15550100001"
    )
    assert attempts(notification) == [(1, NOW, "sent", 200, "")]


def test_a_sent_notification_is_never_sent_again(patient, rule, on_call, receiver):
    notification = routed(patient, rule, "webhook")
    deliver_notification(notification_id=notification.pk)

    assert deliver_notification(notification_id=notification.pk) == Outcome.SKIPPED

    assert len(receiver.requests) == 1
    assert Notification.objects.get(pk=notification.pk).attempts == 1
    assert len(attempts(notification)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_first_is_in_flight_is_skipped(
    patient, rule, on_call, receiver
):
    # given: one worker's webhook request is in flight (the receiver holds its answer)
    notification = routed(patient, rule, "webhook")
    receiver.hold()
    results = {}

    def first_worker():
        try:
            results["first"] = deliver_notification(notification_id=notification.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert receiver.arrived.wait(timeout=10)

    # when: a redelivered task for the same row runs meanwhile
    second = deliver_notification(notification_id=notification.pk)
    receiver.release()
    thread.join(timeout=30)

    # then
    assert (results["first"], second) == (Outcome.SENT, Outcome.SKIPPED)
    assert len(receiver.requests) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert [outcome for _, _, outcome, _, _ in attempts(notification)] == ["sent"]


def test_a_delivery_whose_worker_died_is_taken_again_when_the_lease_lapses(
    time_machine, patient, rule, on_call, receiver
):
    # given: a worker claimed the row (attempt 1) and died before recording anything
    notification = routed(patient, rule, "webhook")
    Notification.objects.filter(pk=notification.pk).update(
        attempts=1, claimed_until=NOW + 2 * MINUTE
    )
    assert deliver_notification(notification_id=notification.pk) == Outcome.SKIPPED
    assert receiver.requests == []

    # when
    time_machine.move_to(NOW + 2 * MINUTE + timedelta(seconds=1), tick=False)
    outcome = deliver_notification(notification_id=notification.pk)

    # then
    assert outcome == Outcome.SENT
    assert len(receiver.requests) == 1
    assert attempts(notification) == [(2, NOW + 2 * MINUTE + timedelta(seconds=1), "sent", 200, "")]


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_a_transient_failure_is_retried_later_and_the_row_stays_pending(
    patient, rule, on_call, receiver, status
):
    notification = routed(patient, rule, "webhook")
    receiver.answer(status)

    outcome = deliver_notification(notification_id=notification.pk)

    assert outcome == Outcome.RETRY
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.sent_at) == (
        "pending",
        1,
        None,
    )
    assert notification.last_error == f"webhook answered {status}"
    # Held until its retry is due (the first backoff, 30 s), so nothing else takes it first.
    assert notification.claimed_until == NOW + timedelta(seconds=30)
    assert attempts(notification) == [
        (1, NOW, "transient_failure", status, f"webhook answered {status}")
    ]
    assert faults() == []


def test_an_unreachable_receiver_is_a_transient_failure(patient, rule, on_call, refused_url):
    on_call.webhook_url = refused_url
    on_call.save()
    notification = routed(patient, rule, "webhook")

    assert deliver_notification(notification_id=notification.pk) == Outcome.RETRY

    assert attempts(notification) == [
        (1, NOW, "transient_failure", None, "webhook unreachable: ConnectError")
    ]
    assert Notification.objects.get(pk=notification.pk).status == "pending"
    assert faults() == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_a_permanent_failure_fails_the_row_and_flags_the_target(
    patient, rule, on_call, receiver, status
):
    notification = routed(patient, rule, "webhook")
    receiver.answer(status)

    outcome = deliver_notification(notification_id=notification.pk)

    assert outcome == Outcome.FAILED
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_until) == (
        "failed",
        1,
        None,
    )
    assert attempts(notification) == [
        (1, NOW, "permanent_failure", status, f"webhook answered {status}")
    ]
    assert faults() == [
        ("webhook", on_call.webhook_url, 1, NOW, NOW, f"webhook answered {status}", None)
    ]
    # Never retried: a redelivered task finds nothing to do.
    assert deliver_notification(notification_id=notification.pk) == Outcome.SKIPPED
    assert len(receiver.requests) == 1


def test_a_target_failing_again_keeps_one_open_fault_counting_failures(
    time_machine, patient, rule, on_call, receiver
):
    first = routed(patient, rule, "webhook")
    receiver.answer(404, 404)
    deliver_notification(notification_id=first.pk)
    other_rule = RuleFactory(patient=patient, key="other", group="other", severity="critical")
    route_alert_event(event_id=raise_event(patient, other_rule).pk)
    second = Notification.objects.get(channel="webhook", alert__dedupe_key="other")

    time_machine.move_to(NOW + 5 * MINUTE, tick=False)
    deliver_notification(notification_id=second.pk)

    assert faults() == [
        ("webhook", on_call.webhook_url, 2, NOW, NOW + 5 * MINUTE, "webhook answered 404", None)
    ]


def test_backoff_grows_with_each_attempt_and_running_out_of_attempts_fails_the_row(
    settings, time_machine, patient, rule, on_call, receiver
):
    # given: a receiver answering 503 every time; four attempts allowed
    settings.VIGIL_NOTIFICATION_MAX_ATTEMPTS = 4
    notification = routed(patient, rule, "webhook")
    receiver.answer(503, 503, 503, 503)

    # when: each attempt runs when its retry is due; a retry that comes early is skipped
    outcomes, holds, at = [], [], NOW
    for _ in range(4):
        time_machine.move_to(at, tick=False)
        outcomes.append(deliver_notification(notification_id=notification.pk))
        held_until = Notification.objects.get(pk=notification.pk).claimed_until
        holds.append(held_until and held_until - at)
        if held_until:
            time_machine.move_to(held_until - timedelta(seconds=1), tick=False)
            assert deliver_notification(notification_id=notification.pk) == "skipped"
            at = held_until + timedelta(seconds=1)

    # then: 30 s, 60 s, 120 s apart, then given up
    assert outcomes == ["retry", "retry", "retry", "failed"]
    assert holds == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120), None]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 4)
    assert [(n, outcome, code) for n, _, outcome, code, _ in attempts(notification)] == [
        (1, "transient_failure", 503),
        (2, "transient_failure", 503),
        (3, "transient_failure", 503),
        (4, "transient_failure", 503),
    ]
    assert [(channel, failures) for channel, _, failures, *_ in faults()] == [("webhook", 1)]
    assert len(receiver.requests) == 4


def test_a_retry_that_runs_the_moment_its_hold_lapses_is_taken(
    time_machine, patient, rule, on_call, receiver
):
    # The task's retry is scheduled for exactly that moment (the same retry_delay).
    notification = routed(patient, rule, "webhook")
    receiver.answer(503)
    deliver_notification(notification_id=notification.pk)

    time_machine.move_to(NOW + timedelta(seconds=30), tick=False)

    assert deliver_notification(notification_id=notification.pk) == Outcome.SENT
    assert [outcome for _, _, outcome, _, _ in attempts(notification)] == [
        "transient_failure",
        "sent",
    ]


def test_the_task_retries_a_transient_failure_when_the_row_says(
    patient, rule, on_call, receiver, notifications_queue
):
    # given
    notification = routed(patient, rule, "webhook")
    receiver.answer(503)

    # when: the task runs as a worker runs it, with the request a worker pushes (not called
    # directly, not eagerly), so its retry is published to the broker for real
    deliver_notification_task.push_request(
        id="delivery-1",
        args=[notification.pk],
        kwargs={},
        retries=0,
        called_directly=False,
        delivery_info={"exchange": "", "routing_key": "notifications"},
    )
    try:
        with pytest.raises(Retry):
            deliver_notification_task.run(notification.pk)
    finally:
        deliver_notification_task.pop_request()

    # then: the retry is in the notifications queue, due when the row's hold lapses
    (raw,) = notifications_queue.client.lrange("notifications", 0, -1)
    message = json.loads(raw)
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert (message["headers"]["task"], args) == (deliver_notification_task.name, [notification.pk])
    assert datetime.fromisoformat(message["headers"]["eta"]) == NOW + timedelta(seconds=30)
    assert Notification.objects.get(pk=notification.pk).claimed_until == NOW + timedelta(seconds=30)


def test_the_task_returns_what_the_delivery_did(patient, rule, on_call, receiver):
    notification = routed(patient, rule, "webhook")

    assert deliver_notification_task(notification.pk) == "sent"
    assert deliver_notification_task(notification.pk) == "skipped"


# --- The outbox sweep ---------------------------------------------------------------------


def test_the_sweep_re_enqueues_pending_deliveries_whose_task_was_lost(
    time_machine, patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    # given: routed at NOW (three pending rows); later, one sent, one failed
    route_alert_event(event_id=raise_event(patient, rule).pk)
    email, sms, webhook = (Notification.objects.get(channel=c) for c in ("email", "sms", "webhook"))
    Notification.objects.filter(pk=sms.pk).update(status="sent", sent_at=NOW)
    fresh_rule = RuleFactory(patient=patient, key="fresh", group="fresh", severity="critical")
    time_machine.move_to(NOW + 2 * MINUTE, tick=False)
    route_alert_event(event_id=raise_event(patient, fresh_rule, at=NOW + 2 * MINUTE).pk)

    # when: the sweep runs 3 minutes after the first routing
    time_machine.move_to(NOW + 3 * MINUTE, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_pending_notifications()

    # then: the old pending ones, not the sent one nor those routed a minute ago
    assert count == 2
    assert notifications_queue.tasks() == deliveries(email.pk, webhook.pk)


def test_the_sweep_leaves_a_delivery_in_flight(
    time_machine, patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    webhook = routed(patient, rule, "webhook")
    Notification.objects.exclude(pk=webhook.pk).update(status="sent")
    Notification.objects.filter(pk=webhook.pk).update(attempts=1, claimed_until=NOW + 11 * MINUTE)
    time_machine.move_to(NOW + 10 * MINUTE, tick=False)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert enqueue_pending_notifications() == 0

    assert callbacks == []
    assert len(notifications_queue) == 0


def test_the_sweep_leaves_a_delivery_backing_off_to_its_own_retry(
    settings,
    time_machine,
    patient,
    rule,
    on_call,
    receiver,
    notifications_queue,
    django_capture_on_commit_callbacks,
):
    # given: the webhook failed three times; its fourth try is due in two minutes (the
    # backoff after a third failure) and the retry task waits in the broker
    webhook = routed(patient, rule, "webhook")
    Notification.objects.exclude(pk=webhook.pk).update(status="sent")
    receiver.answer(503, 503, 503)
    at = NOW
    for _ in range(3):
        time_machine.move_to(at, tick=False)
        deliver_notification(notification_id=webhook.pk)
        at = Notification.objects.get(pk=webhook.pk).claimed_until + timedelta(seconds=1)
    failed_at = at - timedelta(minutes=2, seconds=1)

    # when: the sweep runs a minute after the third failure, before the retry is due
    time_machine.move_to(failed_at + MINUTE, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        during_backoff = enqueue_pending_notifications()

    # then: it is left to its retry, and taken over only if that retry is lost
    assert during_backoff == 0
    assert len(notifications_queue) == 0
    time_machine.move_to(failed_at + timedelta(minutes=5), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        after_a_lost_retry = enqueue_pending_notifications()
    assert after_a_lost_retry == 1
    assert notifications_queue.tasks() == deliveries(webhook.pk)


def test_coordinators_are_not_paged_even_at_the_level_reached(
    patient, rule, on_call, coordinator, django_capture_on_commit_callbacks
):
    # A coordinator at level 1 (they enrol patients and manage devices; they do not triage).
    coordinator.email = "coordinator@clinic.test"
    coordinator.save()
    on_call.memberships.filter(user=coordinator).update(escalation_level=1)

    with django_capture_on_commit_callbacks(execute=True):
        route_alert_event(event_id=raise_event(patient, rule).pk)

    assert [target for *_, target, _status, _attempts in rows()] == [
        "nurse@clinic.test",
        NURSE_PHONE,
        f"{on_call.webhook_url}",
    ]
