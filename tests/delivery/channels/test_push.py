"""delivery/channels/push.py: push through FCM's HTTP v1 API with a service account's bearer.

A fake Google on 127.0.0.1 (fake_fcm.py) is both the OAuth2 token endpoint the service
account's token_uri names and FCM's messages:send. google-auth runs for real: it reads the
key file, signs the JWT grant with the throwaway key, and trades it for the bearer that FCM
then receives. The tests assert the exact requests that arrived.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from delivery.channels import DeliveryError, Message, push
from monitoring.models import Nudge, PushToken
from monitoring.nudges.delivery import deliver_nudge
from tests.delivery.channels.fake_fcm import (
    CLIENT_EMAIL,
    KEY_ID,
    SEND_PATH,
    TOKEN_PATH,
    FakeGoogle,
    configure_push,
    fcm_error,
    verify_jwt,
    write_service_account,
)
from tests.factories import NudgeFactory, PushTokenFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEVICE = "dGhpcy1pbnN0YWxsLW9mLXRoZS1hcHA:APA91bHun4MxP5egoKMwt2KZFBaFUH"
MESSAGE = Message(
    subject="A reminder from Vigil",
    text="unused by push",
    short="Time to step on the scale: your weight helps your care team spot fluid early.",
    payload={"nudge_id": "5120", "purpose": "measurement_due"},
)
FCM_BODY = {
    "message": {
        "token": DEVICE,
        "notification": {
            "title": "A reminder from Vigil",
            "body": "Time to step on the scale: your weight helps your care team spot fluid early.",
        },
        "data": {"nudge_id": "5120", "purpose": "measurement_due"},
        "android": {"priority": "high"},
        "apns": {
            "headers": {"apns-priority": "10", "apns-push-type": "alert"},
            "payload": {"aps": {"sound": "default"}},
        },
    }
}


@pytest.fixture
def google(settings, tmp_path, time_machine):
    time_machine.move_to(NOW, tick=False)
    fake = FakeGoogle().start()
    configure_push(settings, fake, tmp_path)
    yield fake
    fake.stop()


def send_to_device():
    return push.send(target=DEVICE, message=MESSAGE)


# --- What goes out ------------------------------------------------------------------------


def test_the_message_goes_to_fcm_with_a_bearer_from_the_service_accounts_token_endpoint(google):
    status = send_to_device()

    assert status == 200
    token_request, send_request = google.requests
    # google-auth's JWT grant (RFC 7523), signed with the service account's key
    assert (token_request.method, token_request.path) == ("POST", TOKEN_PATH)
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_request.body.decode())
    assert form.keys() == {"grant_type", "assertion"}
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims = verify_jwt(form["assertion"][0])
    assert header == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    assert claims == {
        "iss": CLIENT_EMAIL,
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 3600,
    }
    # the message, with the bearer the token endpoint handed out
    assert (send_request.method, send_request.path) == ("POST", SEND_PATH)
    assert send_request.path == "/v1/projects/vigil-test/messages:send"
    assert send_request.headers["authorization"] == "Bearer ya29.test-access-token-1"
    assert send_request.headers["content-type"] == "application/json"
    assert send_request.json() == FCM_BODY


def test_the_access_token_is_reused_until_it_is_about_to_expire(google, time_machine):
    send_to_device()
    send_to_device()
    assert len(google.to(TOKEN_PATH)) == 1

    # google-auth refreshes a little before expiry (3599 s here), not after
    time_machine.move_to(NOW + timedelta(minutes=57), tick=False)
    send_to_device()

    assert len(google.to(TOKEN_PATH)) == 2
    assert [r.headers["authorization"] for r in google.to(SEND_PATH)] == [
        "Bearer ya29.test-access-token-1",
        "Bearer ya29.test-access-token-1",
        "Bearer ya29.test-access-token-2",
    ]


def test_data_values_are_sent_as_strings(google):
    # FCM's data map takes strings only; the channel converts what the caller gives.
    push.send(target=DEVICE, message=replace(MESSAGE, payload={"nudge_id": 5120, "streak": 7}))

    assert google.to(SEND_PATH)[0].json()["message"]["data"] == {"nudge_id": "5120", "streak": "7"}


# --- FCM's answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, fcm_error(500, "INTERNAL"), "FCM answered 500 INTERNAL"),
        (502, {}, "FCM answered 502"),
        (503, fcm_error(503, "UNAVAILABLE"), "FCM answered 503 UNAVAILABLE"),
        (
            429,
            fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
            "FCM answered 429 QUOTA_EXCEEDED",
        ),
        (408, {}, "FCM answered 408"),
    ],
)
def test_a_5xx_or_429_from_fcm_is_worth_retrying(google, status, body, reason):
    google.answer_send(status, body)

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert type(error.value) is DeliveryError
    assert (error.value.permanent, error.value.status_code, str(error.value)) == (
        False,
        status,
        reason,
    )
    assert len(google.to(SEND_PATH)) == 1


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), "400 INVALID_ARGUMENT"),
        (401, fcm_error(401, "UNAUTHENTICATED"), "401 UNAUTHENTICATED"),
        (403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), "403 SENDER_ID_MISMATCH"),
        # A 404 without FCM's UNREGISTERED (a wrong project id) retires no token.
        (404, fcm_error(404, "NOT_FOUND"), "404 NOT_FOUND"),
    ],
)
def test_any_other_4xx_from_fcm_is_permanent(google, status, body, reason):
    google.answer_send(status, body)

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert type(error.value) is DeliveryError
    assert (error.value.permanent, error.value.status_code, str(error.value)) == (
        True,
        status,
        f"FCM answered {reason}",
    )


def test_an_unregistered_token_is_a_permanent_failure_of_its_own_kind(google):
    google.answer_send(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"))

    with pytest.raises(push.UnregisteredToken) as error:
        send_to_device()

    assert (error.value.permanent, error.value.status_code, str(error.value)) == (
        True,
        404,
        "FCM answered 404 UNREGISTERED",
    )


def test_a_token_fcm_calls_unregistered_is_retired_and_not_tried_again(google):
    # given: a push nudge to a patient with an uninstalled app and a live one
    gone = PushTokenFactory(token=DEVICE)
    live = PushTokenFactory(patient=gone.patient, token="bGl2ZS1pbnN0YWxs:APA91bLive")
    nudge = NudgeFactory(patient=gone.patient, channel="push")
    google.answer_send(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"))

    # when
    outcome = deliver_nudge(nudge_id=nudge.pk)

    # then: delivered to the live install; the other token retired
    assert outcome == "sent"
    assert [r.json()["message"]["token"] for r in google.to(SEND_PATH)] == [gone.token, live.token]
    assert list(PushToken.objects.order_by("id").values_list("id", "retired_at")) == [
        (gone.pk, NOW),
        (live.pk, None),
    ]
    # the next nudge goes to the live token only
    later = NudgeFactory(patient=gone.patient, channel="push")
    assert deliver_nudge(nudge_id=later.pk) == "sent"
    assert [r.json()["message"]["token"] for r in google.to(SEND_PATH)[2:]] == [live.token]
    assert Nudge.objects.get(pk=later.pk).status == "sent"


def test_an_unreachable_fcm_is_worth_retrying(settings, google, refused_url):
    settings.FCM_API_BASE = refused_url.rsplit("/hooks", 1)[0]

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, error.value.status_code, str(error.value)) == (
        False,
        None,
        "FCM unreachable: ConnectError",
    )
    assert google.to(SEND_PATH) == []


def test_an_fcm_slower_than_the_timeout_is_worth_retrying(settings, google):
    settings.VIGIL_WEBHOOK_TIMEOUT = 0.2
    google.delay = 1.0

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, str(error.value)) == (False, "FCM unreachable: ReadTimeout")


def test_by_default_fcm_is_googles_and_the_timeout_ten_seconds():
    from config import settings as defaults

    assert (defaults.FCM_API_BASE, defaults.VIGIL_WEBHOOK_TIMEOUT) == (
        "https://fcm.googleapis.com",
        10.0,
    )


# --- The access token ---------------------------------------------------------------------


def test_an_unreachable_token_endpoint_is_worth_retrying_and_sends_nothing(
    settings, google, tmp_path, refused_url
):
    account = write_service_account(tmp_path / "refused.json", token_uri=refused_url)
    settings.FCM_SERVICE_ACCOUNT_FILE = str(account)

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, str(error.value)) == (
        False,
        "FCM token endpoint unreachable: ConnectError",
    )
    assert google.requests == []


def test_a_token_endpoint_refusing_the_grant_is_permanent_and_sends_nothing(google):
    # What Google answers for a deleted or disabled service account key.
    google.answer_token(
        400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    )

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, str(error.value)) == (
        True,
        "FCM access token refused: invalid_grant: Invalid JWT Signature.",
    )
    assert [r.path for r in google.requests] == [TOKEN_PATH]


def test_a_token_endpoint_failing_for_now_is_worth_retrying(google):
    # google-auth itself tries a 5xx three times (1 s and 2 s apart) before giving up.
    for _ in range(3):
        google.answer_token(503, {"error": "temporarily_unavailable"})

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, str(error.value)) == (
        False,
        "FCM access token refused: temporarily_unavailable: None",
    )
    assert [r.path for r in google.requests] == [TOKEN_PATH] * 3


# --- Configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["FCM_PROJECT_ID", "FCM_SERVICE_ACCOUNT_FILE"])
def test_push_is_off_unless_the_project_and_the_service_account_are_set(settings, google, setting):
    assert push.is_enabled() is True
    setattr(settings, setting, "")

    assert push.is_enabled() is False
    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, str(error.value)) == (
        True,
        "push is not configured (FCM_* settings)",
    )
    assert google.requests == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "FCM service account file unusable: FileNotFoundError"),
        ("{not json", "FCM service account file unusable: JSONDecodeError"),
        ('{"type": "service_account"}', "FCM service account file unusable: MalformedError"),
    ],
)
def test_an_unusable_service_account_file_is_permanent(settings, google, tmp_path, content, reason):
    account = tmp_path / "broken.json"
    if content is not None:
        account.write_text(content)
    settings.FCM_SERVICE_ACCOUNT_FILE = str(account)

    with pytest.raises(DeliveryError) as error:
        send_to_device()

    assert (error.value.permanent, str(error.value)) == (True, reason)
    assert google.requests == []
