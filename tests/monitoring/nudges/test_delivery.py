"""monitoring/nudges/delivery.py: a nudge reaches the patient once, by its channel.

Push and SMS go to a fake Google/Twilio on 127.0.0.1 (tests/delivery/channels/fake_fcm.py)
that records the exact requests; email goes to Django's locmem outbox. Nudge rows are made
directly (the policy that creates them is tested on its own).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from celery.exceptions import Retry
from django.db import connection

from delivery.outbox import Outcome
from monitoring.models import Nudge, PushToken
from monitoring.nudges.delivery import deliver_nudge, enqueue_pending_nudges
from monitoring.tasks import deliver_nudge_task
from tests.broker import purge as purge_broker_queues
from tests.celery_worker import WorkerProcess, start_worker, stop_worker, wait_for
from tests.delivery.channels.fake_fcm import (
    SEND_PATH,
    TOKEN_PATH,
    FakeGoogle,
    configure_push,
    fcm_error,
)
from tests.factories import (
    MeasurementScheduleFactory,
    NudgeFactory,
    NudgeVariantFactory,
    PatientFactory,
    PushTokenFactory,
    SlotFactory,
)
from tests.monitoring.conftest import BrokerQueue, QueuedTask

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TEXT = "Time to step on the scale: your weight helps your care team spot fluid early."
PHONE = "+15550100042"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


@pytest.fixture
def google(settings, tmp_path, time_machine) -> Iterator[FakeGoogle]:
    """Push and SMS enabled, both answered by a fake on 127.0.0.1; the clock stands at NOW."""
    time_machine.move_to(NOW, tick=False)
    fake = FakeGoogle().start()
    configure_push(settings, fake, tmp_path)
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = "twilio-test-auth-token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def notifications_queue(broker) -> Iterator[BrokerQueue]:
    queue = BrokerQueue(broker, "notifications")
    queue.purge()
    yield queue
    queue.purge()


def state(nudge) -> tuple:
    return (
        Nudge.objects.filter(pk=nudge.pk)
        .values_list("channel", "status", "attempts", "sent_at", "claimed_until", "last_error")
        .get()
    )


def sent_to(google) -> list[str]:
    return [request.json()["message"]["token"] for request in google.to(SEND_PATH)]


# --- Each channel -------------------------------------------------------------------------


def test_an_in_app_nudge_is_marked_sent_and_nothing_leaves(google, patient, mailoutbox):
    nudge = NudgeFactory(patient=patient, channel="in_app")

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    assert state(nudge) == ("in_app", "sent", 1, NOW, None, "")
    assert google.requests == []
    assert mailoutbox == []


def test_a_push_nudge_goes_to_every_active_token_of_the_patient(google, patient, other_patient):
    # given: two installs, one retired token, and another patient's token
    phone = PushTokenFactory(patient=patient, platform="android")
    tablet = PushTokenFactory(patient=patient, platform="ios")
    PushTokenFactory(patient=patient, retired_at=NOW - timedelta(days=3))
    PushTokenFactory(patient=other_patient)
    nudge = NudgeFactory(patient=patient, channel="push", text=TEXT)

    # when
    outcome = deliver_nudge(nudge_id=nudge.pk)

    # then: one token fetch, one message per active token, with nothing but the nudge's text
    assert outcome == Outcome.SENT
    assert [request.path for request in google.requests] == [TOKEN_PATH, SEND_PATH, SEND_PATH]
    assert [request.json() for request in google.to(SEND_PATH)] == [
        {
            "message": {
                "token": token.token,
                "notification": {"title": "A reminder from Vigil", "body": TEXT},
                "data": {"nudge_id": str(nudge.pk), "purpose": "measurement_due"},
                "android": {"priority": "high"},
                "apns": {
                    "headers": {"apns-priority": "10", "apns-push-type": "alert"},
                    "payload": {"aps": {"sound": "default"}},
                },
            }
        }
        for token in (phone, tablet)
    ]
    assert state(nudge) == ("push", "sent", 1, NOW, None, "")


def test_a_push_nudge_is_sent_when_one_device_took_it_and_another_failed(google, patient):
    first, second = PushTokenFactory(patient=patient), PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    google.answer_send(503, fcm_error(503, "UNAVAILABLE"))

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    assert sent_to(google) == [first.token, second.token]
    assert state(nudge) == ("push", "sent", 1, NOW, None, "")


def test_an_sms_nudge_texts_the_nudge_and_nothing_about_the_patient(google, patient):
    patient.phone = PHONE
    patient.save()
    nudge = NudgeFactory(patient=patient, channel="sms", text=TEXT)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    (request,) = google.requests
    assert request.path == TWILIO_PATH
    assert parse_qs(request.body.decode()) == {
        "To": [PHONE],
        "From": ["+15005550006"],
        "Body": [TEXT],
    }
    assert patient.external_id not in request.body.decode()
    assert state(nudge) == ("sms", "sent", 1, NOW, None, "")


def test_an_email_nudge_is_mailed_to_the_patient(google, patient, mailoutbox):
    patient.email = "ada@example.org"
    patient.save()
    nudge = NudgeFactory(patient=patient, channel="email", text=TEXT)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    (mail,) = mailoutbox
    assert (mail.to, mail.from_email, mail.subject, mail.body) == (
        ["ada@example.org"],
        "vigil@localhost",
        "A reminder from Vigil",
        f"{TEXT}\n",
    )
    assert state(nudge) == ("email", "sent", 1, NOW, None, "")
    assert google.requests == []


# --- In the patient's language (config/locale) ----------------------------------------------

GERMAN_TEXT = "Erinnerung: Ihre Gewichtsmessung ist um 08:00 fällig."


def test_a_german_patients_push_and_email_carry_a_german_title(google, patient, mailoutbox):
    # given: a German patient, reminded by a German variant, by push and by email
    patient.language, patient.email = "de-DE", "ada@example.org"
    patient.save()
    token = PushTokenFactory(patient=patient)
    variant = NudgeVariantFactory(key="plain-due-test-de", language="de")
    pushed = NudgeFactory(patient=patient, variant=variant, channel="push", text=GERMAN_TEXT)
    mailed = NudgeFactory(patient=patient, variant=variant, channel="email", text=GERMAN_TEXT)

    # when
    outcomes = [deliver_nudge(nudge_id=pushed.pk), deliver_nudge(nudge_id=mailed.pk)]

    # then: the title from the German catalogue, above the variant's German text
    assert outcomes == [Outcome.SENT, Outcome.SENT]
    (request,) = google.to(SEND_PATH)
    assert request.json()["message"]["token"] == token.token
    assert request.json()["message"]["notification"] == {
        "title": "Eine Erinnerung von Vigil",
        "body": GERMAN_TEXT,
    }
    (mail,) = mailoutbox
    assert (mail.subject, mail.body) == ("Eine Erinnerung von Vigil", f"{GERMAN_TEXT}\n")


def test_the_title_is_in_the_language_of_the_text_not_only_the_patients(
    google, patient, mailoutbox
):
    # given: a French patient, for whom the clinic has no variant (the English one was
    # chosen), and a German patient whose nudge was written by an English variant
    patient.language, patient.email = "fr", "ada@example.org"
    patient.save()
    english = NudgeVariantFactory(key="plain-due-test-en", language="en")
    french = NudgeFactory(patient=patient, variant=english, channel="email", text=TEXT)
    german = NudgeFactory(
        patient=PatientFactory(care_team=patient.care_team, language="de", email="b@example.org"),
        variant=english,
        channel="email",
        text=TEXT,
    )

    # when
    deliver_nudge(nudge_id=french.pk)
    deliver_nudge(nudge_id=german.pk)

    # then: English titles over English texts; no catalogue for French, none needed
    assert [(mail.to, mail.subject) for mail in mailoutbox] == [
        (["ada@example.org"], "A reminder from Vigil"),
        (["b@example.org"], "A reminder from Vigil"),
    ]


def test_a_nudge_without_its_variant_is_titled_in_the_patients_language(google, patient):
    patient.language = "de"
    patient.save()
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, variant=None, channel="push", text=GERMAN_TEXT)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    (request,) = google.to(SEND_PATH)
    assert request.json()["message"]["notification"]["title"] == "Eine Erinnerung von Vigil"


# --- Falling back to the app --------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        ("push", "the patient has no active push token"),
        ("sms", "the patient has no phone number"),
        ("email", "the patient has no email address"),
    ],
)
def test_a_channel_without_a_way_to_the_patient_falls_back_to_the_app(
    google, patient, mailoutbox, channel, reason
):
    PushTokenFactory(patient=patient, retired_at=NOW - timedelta(days=1))  # retired: no use
    nudge = NudgeFactory(patient=patient, channel=channel)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    assert state(nudge) == (
        "in_app",
        "sent",
        1,
        NOW,
        None,
        f"{channel} not possible ({reason}): shown in the app instead",
    )
    assert google.requests == []
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("channel", "setting", "reason"),
    [
        ("push", "FCM_PROJECT_ID", "push is not configured on this server"),
        ("sms", "TWILIO_AUTH_TOKEN", "SMS is not configured on this server"),
    ],
)
def test_a_channel_the_server_has_not_configured_falls_back_to_the_app(
    settings, google, patient, channel, setting, reason
):
    patient.phone = PHONE
    patient.save()
    PushTokenFactory(patient=patient)
    setattr(settings, setting, "")
    nudge = NudgeFactory(patient=patient, channel=channel)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    assert state(nudge) == (
        "in_app",
        "sent",
        1,
        NOW,
        None,
        f"{channel} not possible ({reason}): shown in the app instead",
    )
    assert google.requests == []


def test_email_kept_on_this_machine_falls_back_to_the_app(settings, google, patient, tmp_path):
    # Without EMAIL_HOST, mail is written to files under var/mail: no patient reads those.
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    patient.email = "ada@example.org"
    patient.save()
    nudge = NudgeFactory(patient=patient, channel="email")

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    assert state(nudge) == (
        "in_app",
        "sent",
        1,
        NOW,
        None,
        "email not possible (email is not configured on this server): shown in the app instead",
    )
    assert not (tmp_path / "mail").exists()


def test_when_every_token_is_unregistered_they_are_retired_and_the_app_shows_it(google, patient):
    tokens = [PushTokenFactory(patient=patient), PushTokenFactory(patient=patient)]
    nudge = NudgeFactory(patient=patient, channel="push")
    for _ in tokens:
        google.answer_send(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"))

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT

    assert sent_to(google) == [token.token for token in tokens]
    assert list(PushToken.objects.values_list("retired_at", flat=True)) == [NOW, NOW]
    assert state(nudge) == (
        "in_app",
        "sent",
        1,
        NOW,
        None,
        "push not possible (every push token of the patient is unregistered): "
        "shown in the app instead",
    )


# --- Failures: recorded, retried when they may pass, bounded ------------------------------


def test_a_transient_failure_is_retried_later_and_held_until_then(google, patient, time_machine):
    # given: FCM is briefly unavailable
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    google.answer_send(503, fcm_error(503, "UNAVAILABLE"))

    # when
    outcome = deliver_nudge(nudge_id=nudge.pk)

    # then: still pending, the error recorded, held for the first backoff (30 s)
    assert outcome == Outcome.RETRY
    assert state(nudge) == (
        "push",
        "pending",
        1,
        None,
        NOW + 30 * SECOND,
        "FCM answered 503 UNAVAILABLE",
    )
    # a redelivered task before then does nothing
    time_machine.move_to(NOW + 29 * SECOND, tick=False)
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SKIPPED
    assert len(google.to(SEND_PATH)) == 1
    # the retry, due the moment the hold lapses, sends it
    time_machine.move_to(NOW + 30 * SECOND, tick=False)
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT
    assert state(nudge) == ("push", "sent", 2, NOW + 30 * SECOND, None, "")
    assert len(google.to(SEND_PATH)) == 2


def test_an_unreachable_sms_gateway_is_retried(settings, google, patient, refused_url):
    patient.phone = PHONE
    patient.save()
    settings.TWILIO_API_BASE = refused_url
    nudge = NudgeFactory(patient=patient, channel="sms")

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.RETRY

    assert state(nudge) == (
        "sms",
        "pending",
        1,
        None,
        NOW + 30 * SECOND,
        "SMS gateway unreachable: ConnectError",
    )


def test_retries_are_bounded_then_the_nudge_fails_with_the_reason(
    settings, google, patient, time_machine
):
    # given: FCM answers 503 every time; three attempts allowed
    settings.VIGIL_NUDGE_MAX_ATTEMPTS = 3
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    for _ in range(3):
        google.answer_send(503, fcm_error(503, "UNAVAILABLE"))

    # when: each attempt runs when its retry is due
    outcomes, holds, at = [], [], NOW
    for _ in range(3):
        time_machine.move_to(at, tick=False)
        outcomes.append(deliver_nudge(nudge_id=nudge.pk))
        held_until = Nudge.objects.get(pk=nudge.pk).claimed_until
        holds.append(held_until and held_until - at)
        at = held_until or at

    # then: 30 s, then 60 s apart, then given up; nothing more goes out
    assert outcomes == ["retry", "retry", "failed"]
    assert holds == [30 * SECOND, 60 * SECOND, None]
    assert state(nudge) == (
        "push",
        "failed",
        3,
        None,
        None,
        "FCM answered 503 UNAVAILABLE (gave up after 3 attempts)",
    )
    time_machine.move_to(at + timedelta(hours=1), tick=False)
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SKIPPED
    assert len(google.to(SEND_PATH)) == 3


def test_a_permanent_failure_fails_the_nudge_at_once_and_is_never_retried(google, patient):
    patient.phone = "+1555"  # Twilio: "not a valid phone number"
    patient.save()
    nudge = NudgeFactory(patient=patient, channel="sms")
    google.answer_other(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.FAILED

    assert state(nudge) == ("sms", "failed", 1, None, None, "SMS gateway answered 400")
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SKIPPED
    assert len(google.requests) == 1


def test_a_push_failing_for_good_on_one_device_and_for_now_on_another_is_retried(google, patient):
    PushTokenFactory(patient=patient)
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    google.answer_send(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"))
    google.answer_send(503, fcm_error(503, "UNAVAILABLE"))

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.RETRY

    assert state(nudge)[1:] == (
        "pending",
        1,
        None,
        NOW + 30 * SECOND,
        "FCM answered 503 UNAVAILABLE",
    )


def test_push_refused_by_fcm_on_every_device_fails_the_nudge(google, patient):
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    google.answer_send(403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"))

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.FAILED

    assert state(nudge) == ("push", "failed", 1, None, None, "FCM answered 403 SENDER_ID_MISMATCH")
    assert PushToken.objects.get().retired_at is None


# --- Once, whatever the tasks do ----------------------------------------------------------


def test_a_sent_nudge_is_never_sent_again(google, patient):
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    deliver_nudge(nudge_id=nudge.pk)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SKIPPED

    assert len(google.to(SEND_PATH)) == 1
    assert state(nudge) == ("push", "sent", 1, NOW, None, "")


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_first_is_in_flight_is_skipped(google, patient):
    # given: one worker's push is in flight (FCM holds its answer)
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    google.hold()
    results = {}

    def first_worker():
        try:
            results["first"] = deliver_nudge(nudge_id=nudge.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert google.arrived.wait(timeout=10)

    # when: a redelivered task for the same nudge runs meanwhile
    second = deliver_nudge(nudge_id=nudge.pk)
    google.release()
    thread.join(timeout=30)

    # then
    assert (results["first"], second) == (Outcome.SENT, Outcome.SKIPPED)
    assert len(google.to(SEND_PATH)) == 1
    assert state(nudge) == ("push", "sent", 1, NOW, None, "")


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_racing_for_the_claim_send_once(google, patient, run_concurrently):
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")

    outcomes = run_concurrently(
        lambda: deliver_nudge(nudge_id=nudge.pk), lambda: deliver_nudge(nudge_id=nudge.pk)
    )

    assert sorted(outcomes) == [Outcome.SENT, Outcome.SKIPPED]
    assert len(google.to(SEND_PATH)) == 1
    assert state(nudge) == ("push", "sent", 1, NOW, None, "")


def test_a_delivery_whose_worker_died_is_taken_again_when_the_lease_lapses(
    google, patient, time_machine
):
    # given: a worker claimed the nudge (attempt 1) and died before recording anything
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    Nudge.objects.filter(pk=nudge.pk).update(attempts=1, claimed_until=NOW + 5 * 60 * SECOND)
    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SKIPPED
    assert google.requests == []

    # when
    time_machine.move_to(NOW + 5 * 60 * SECOND, tick=False)
    outcome = deliver_nudge(nudge_id=nudge.pk)

    # then
    assert outcome == Outcome.SENT
    assert state(nudge) == ("push", "sent", 2, NOW + 5 * 60 * SECOND, None, "")


# --- The task -----------------------------------------------------------------------------


def test_the_task_is_routed_to_the_notifications_queue(patient, notifications_queue):
    nudge = NudgeFactory(patient=patient)

    deliver_nudge_task.delay(nudge.pk)

    assert notifications_queue.tasks() == [
        QueuedTask(name="monitoring.tasks.deliver_nudge_task", args=[nudge.pk], kwargs={})
    ]


def test_the_task_retries_a_transient_failure_when_the_row_says(
    google, patient, notifications_queue
):
    # given
    PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push")
    google.answer_send(503, fcm_error(503, "UNAVAILABLE"))

    # when: run as a worker runs it (not eagerly), so its retry is published for real
    deliver_nudge_task.push_request(
        id="nudge-delivery-1",
        args=[nudge.pk],
        kwargs={},
        retries=0,
        called_directly=False,
        delivery_info={"exchange": "", "routing_key": "notifications"},
    )
    try:
        with pytest.raises(Retry):
            deliver_nudge_task.run(nudge.pk)
    finally:
        deliver_nudge_task.pop_request()

    # then: the retry waits in the notifications queue, due when the row's hold lapses
    (raw,) = notifications_queue.client.lrange("notifications", 0, -1)
    message = json.loads(raw)
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert (message["headers"]["task"], args) == ("monitoring.tasks.deliver_nudge_task", [nudge.pk])
    assert datetime.fromisoformat(message["headers"]["eta"]) == NOW + 30 * SECOND
    assert state(nudge)[1:5] == ("pending", 1, None, NOW + 30 * SECOND)


def test_the_task_returns_what_the_delivery_did(google, patient):
    nudge = NudgeFactory(patient=patient)

    assert deliver_nudge_task(nudge.pk) == "sent"
    assert deliver_nudge_task(nudge.pk) == "skipped"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_a_push_nudge_from_the_notifications_queue(
    google, patient, tmp_path
):
    # given: a worker on the notifications queue, configured for push like production
    purge_broker_queues("notifications")
    token = PushTokenFactory(patient=patient)
    nudge = NudgeFactory(patient=patient, channel="push", text=TEXT)
    worker: WorkerProcess = start_worker(
        tmp_path,
        queues=["notifications"],
        pool="solo",
        env={
            "FCM_PROJECT_ID": "vigil-test",
            "FCM_SERVICE_ACCOUNT_FILE": str(tmp_path / "service-account.json"),
            "FCM_API_BASE": google.url,
        },
    )
    try:
        # when
        deliver_nudge_task.delay(nudge.pk)

        # then
        wait_for("delivery", lambda: Nudge.objects.get(pk=nudge.pk).status == "sent", worker)
        assert sent_to(google) == [token.token]
        assert google.to(SEND_PATH)[0].json()["message"]["notification"]["body"] == TEXT
        assert re.search(r"deliver_nudge_task\[[-0-9a-f]+\] succeeded .*'sent'", worker.log())
    finally:
        stop_worker(worker)
        purge_broker_queues("notifications")


# --- Late deliveries and lost tasks ---------------------------------------------------------


def test_a_reminder_whose_slot_was_done_while_it_waited_is_cancelled_not_sent(
    google, patient, mailoutbox
):
    slot = SlotFactory(schedule=MeasurementScheduleFactory(patient=patient), status="done")
    nudge = NudgeFactory(patient=patient, slot=slot, purpose="measurement_due", channel="email")

    outcome = deliver_nudge(nudge_id=nudge.pk)

    assert outcome == Outcome.CANCELLED
    assert mailoutbox == []
    assert state(nudge) == ("email", "cancelled", 1, None, None, "done before delivery")


def test_the_sweep_re_enqueues_pending_nudges_whose_task_was_lost(
    patient, time_machine, notifications_queue, django_capture_on_commit_callbacks
):
    # given: one nudge pending for 3 minutes, one just created, one already sent
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lost = NudgeFactory(patient=patient, created_at=start)
    NudgeFactory(patient=patient, created_at=start + timedelta(minutes=2, seconds=30))
    NudgeFactory(patient=patient, created_at=start, status="sent")
    time_machine.move_to(start + timedelta(minutes=3), tick=False)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        count = enqueue_pending_nudges()

    # then: only the lost one, on the notifications queue
    assert count == 1
    assert [(t.name, t.args) for t in notifications_queue.tasks()] == [
        ("monitoring.tasks.deliver_nudge_task", [lost.pk])
    ]
