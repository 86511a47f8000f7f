"""delivery/outbox.py: one claim, one attempt record, one backoff and one sweep for every
outbox (alert notifications and patient nudges alike).

Rows are real rows in PostgreSQL, the queue is the broker's Redis; the SMS gateway is a real
HTTP receiver on 127.0.0.1 or a port where nothing listens (tests/alerts/conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings

from alerts.models import ChannelFault, Notification
from alerts.notify import NOTIFICATIONS
from delivery import outbox
from delivery.outbox import LEASE, Outcome, claim, deliver, enqueue_due, retry_delay
from monitoring.models import Nudge, NudgeAttempt
from monitoring.nudges.delivery import NUDGES, deliver_nudge
from monitoring.tasks import deliver_nudge_task
from tests.factories import AlertEventFactory, NudgeFactory
from tests.monitoring.conftest import QueuedTask

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
PHONE = "+15550100042"


def pending_row(kind: str, patient) -> tuple[outbox.Outbox, object]:
    """A pending row of either outbox, created at NOW."""
    if kind == "notification":
        event = AlertEventFactory(alert__patient=patient, at=NOW)
        row = Notification.objects.create(
            alert=event.alert, event=event, channel="webhook", target="https://clinic.test/hook"
        )
        Notification.objects.filter(pk=row.pk).update(created_at=NOW)
        return NOTIFICATIONS, row
    return NUDGES, NudgeFactory(patient=patient, created_at=NOW)


def held(outbox_, row) -> tuple:
    return outbox_.model.objects.values_list("status", "attempts", "claimed_until").get(pk=row.pk)


# --- Claim and lease ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["notification", "nudge"])
def test_of_two_workers_claiming_a_row_at_once_exactly_one_gets_it(kind, patient, run_concurrently):
    outbox_, row = pending_row(kind, patient)

    claims = run_concurrently(
        lambda: claim(outbox_, row_id=row.pk, now=NOW),
        lambda: claim(outbox_, row_id=row.pk, now=NOW),
    )

    assert sorted(claims) == [False, True]
    assert held(outbox_, row) == ("pending", 1, NOW + LEASE)


@pytest.mark.parametrize("kind", ["notification", "nudge"])
def test_a_claim_holds_the_row_until_its_lease_lapses(kind, patient):
    outbox_, row = pending_row(kind, patient)
    assert claim(outbox_, row_id=row.pk, now=NOW)

    assert not claim(outbox_, row_id=row.pk, now=NOW + LEASE - SECOND)
    assert claim(outbox_, row_id=row.pk, now=NOW + LEASE)

    assert held(outbox_, row) == ("pending", 2, NOW + 2 * LEASE)


@pytest.mark.parametrize("status", ["sent", "failed", "cancelled"])
def test_a_row_no_longer_pending_is_never_claimed(status, patient):
    nudge = NudgeFactory(patient=patient, created_at=NOW, status=status)

    assert not claim(NUDGES, row_id=nudge.pk, now=NOW)

    assert held(NUDGES, nudge) == (status, 0, None)


def test_the_lease_outlasts_the_longest_a_worker_can_be_sending():
    # Celery kills a task at its hard time limit: past it, nobody still sends the row.
    assert timedelta(seconds=django_settings.CELERY_TASK_TIME_LIMIT) == LEASE == 3 * MINUTE


# --- Backoff ------------------------------------------------------------------------------


def test_the_backoff_doubles_from_30_seconds_up_to_30_minutes():
    assert [retry_delay(attempts) for attempts in range(1, 10)] == [
        30 * SECOND,
        1 * MINUTE,
        2 * MINUTE,
        4 * MINUTE,
        8 * MINUTE,
        16 * MINUTE,
        30 * MINUTE,
        30 * MINUTE,
        30 * MINUTE,
    ]


# --- Attempt rows for a nudge ---------------------------------------------------------------


def test_each_attempt_at_a_nudge_is_recorded_with_its_outcome(
    settings, time_machine, patient, twilio, refused_url
):
    # given: an SMS nudge; the gateway unreachable at first
    patient.phone = PHONE
    patient.save()
    nudge = NudgeFactory(patient=patient, channel="sms", created_at=NOW)
    settings.TWILIO_API_BASE = refused_url
    time_machine.move_to(NOW, tick=False)
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.RETRY

    # when: the retry runs when due, the gateway back
    settings.TWILIO_API_BASE = twilio.url
    time_machine.move_to(NOW + 30 * SECOND, tick=False)
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    # then
    assert list(
        NudgeAttempt.objects.filter(nudge=nudge).values_list(
            "number", "at", "outcome", "status_code", "error"
        )
    ) == [
        (1, NOW, "transient_failure", None, "SMS gateway unreachable: ConnectError"),
        (2, NOW + 30 * SECOND, "sent", 200, ""),
    ]
    assert len(twilio.requests) == 1


def test_a_nudge_shown_in_the_app_instead_has_an_attempt_saying_why(settings, patient):
    settings.FCM_PROJECT_ID = ""
    nudge = NudgeFactory(patient=patient, channel="push", created_at=NOW)

    assert deliver(NUDGES, row_id=nudge.pk, now=NOW) == Outcome.SENT

    reason = "push not possible (push is not configured on this server): shown in the app instead"
    assert list(NudgeAttempt.objects.values_list("number", "outcome", "error")) == [
        (1, "sent", reason)
    ]
    assert Nudge.objects.values_list("channel", "status", "last_error").get(pk=nudge.pk) == (
        "in_app",
        "sent",
        reason,
    )


def test_a_permanent_failure_of_a_nudge_is_one_attempt_and_no_channel_fault(patient, twilio):
    patient.phone = "+1555"
    patient.save()
    nudge = NudgeFactory(patient=patient, channel="sms", created_at=NOW)
    twilio.answer(400)

    assert deliver(NUDGES, row_id=nudge.pk, now=NOW) == Outcome.FAILED

    assert list(NudgeAttempt.objects.values_list("number", "outcome", "status_code")) == [
        (1, "permanent_failure", 400)
    ]
    # Flagging a target for the operator is the alerts' own (a care team's address);
    # a patient's phone number that fails is the nudge's last_error.
    assert ChannelFault.objects.count() == 0
    assert held(NUDGES, nudge) == ("failed", 1, None)


# --- The sweep ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["notification", "nudge"])
def test_the_sweep_re_enqueues_a_row_whose_message_was_lost(
    kind, time_machine, patient, notifications_queue, django_capture_on_commit_callbacks
):
    # given: a pending row whose delivery message was published, then lost (a Redis
    # restart without persistence)
    outbox_, row = pending_row(kind, patient)
    time_machine.move_to(NOW, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.enqueue_deliveries(outbox_, row_ids=[row.pk])
    assert notifications_queue.tasks() == [
        QueuedTask(name=outbox_.deliver_task, args=[row.pk], kwargs={})
    ]
    notifications_queue.purge()

    # when: the sweep runs within the grace, then after it
    time_machine.move_to(NOW + django_settings.VIGIL_EVALUATION_GRACE, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        within_grace = enqueue_due(outbox_)
    time_machine.move_to(NOW + django_settings.VIGIL_EVALUATION_GRACE + SECOND, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        after_grace = enqueue_due(outbox_)

    # then: the row's delivery is in the queue again, once
    assert (within_grace, after_grace) == (0, 1)
    assert notifications_queue.tasks() == [
        QueuedTask(name=outbox_.deliver_task, args=[row.pk], kwargs={})
    ]


def test_a_nudge_the_sweep_re_enqueued_is_delivered_by_its_task(
    time_machine, patient, notifications_queue, django_capture_on_commit_callbacks
):
    nudge = NudgeFactory(patient=patient, channel="in_app", created_at=NOW)
    time_machine.move_to(NOW + 2 * MINUTE, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert enqueue_due(NUDGES) == 1
    [queued] = notifications_queue.tasks()

    assert deliver_nudge_task(*queued.args) == "sent"

    assert held(NUDGES, nudge) == ("sent", 1, None)
    assert list(NudgeAttempt.objects.values_list("nudge_id", "outcome")) == [(nudge.pk, "sent")]


def test_the_sweep_leaves_a_row_in_flight_until_its_lease_and_the_grace_have_passed(
    time_machine, patient, notifications_queue, django_capture_on_commit_callbacks
):
    # given: a worker claimed the nudge at NOW and died mid-send
    nudge = NudgeFactory(patient=patient, created_at=NOW - 10 * MINUTE)
    assert claim(NUDGES, row_id=nudge.pk, now=NOW)
    grace = django_settings.VIGIL_EVALUATION_GRACE

    # when
    time_machine.move_to(NOW + LEASE + grace, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        while_held = enqueue_due(NUDGES)
    time_machine.move_to(NOW + LEASE + grace + SECOND, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        after = enqueue_due(NUDGES)

    # then
    assert (while_held, after) == (0, 1)
    assert notifications_queue.tasks() == [
        QueuedTask(name="monitoring.tasks.deliver_nudge_task", args=[nudge.pk], kwargs={})
    ]
