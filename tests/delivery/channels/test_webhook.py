"""delivery/channels/webhook.py: signed JSON to a care team's own systems.

A real HTTP receiver on 127.0.0.1 records the exact body and headers; the test recomputes
the HMAC-SHA256 signature from the team's secret. Network errors, timeouts, 5xx, 408 and
429 are worth retrying; any other 4xx (or 3xx: redirects are not followed) is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import Notification, NotificationAttempt
from alerts.notify import deliver_notification, route_alert_event
from delivery.channels import DeliveryError, Message, webhook
from tests.factories import RuleFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_UNIX = "1772366400"
SECRET = "whsec-heart-failure"
MESSAGE = Message(
    subject="unused",
    text="unused",
    short="unused",
    payload={"event": "raised", "event_id": 7, "alert": {"id": 3, "severity": "critical"}},
)
# Compact, with sorted keys: the bytes the signature covers.
BODY = b'{"alert":{"id":3,"severity":"critical"},"event":"raised","event_id":7}'


@pytest.fixture
def hook(time_machine, receiver, team):
    time_machine.move_to(NOW, tick=False)
    team.webhook_url = f"{receiver.url}/hooks/vigil?source=vigil"
    team.webhook_secret = SECRET
    team.save()
    return team


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What a receiver computes to check the request (independently of the product)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def vigil_headers(request) -> dict[str, str]:
    names = (
        "content-type",
        "content-length",
        "user-agent",
        "x-vigil-timestamp",
        "x-vigil-signature",
    )
    return {name: request.headers[name] for name in names if name in request.headers}


def test_the_payload_is_posted_as_compact_json_signed_with_the_teams_secret(hook, receiver):
    status = webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook)

    assert status == 200
    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/vigil?source=vigil")
    assert request.body == BODY
    assert vigil_headers(request) == {
        "content-type": "application/json",
        "content-length": str(len(BODY)),
        "user-agent": "Vigil-Webhook/1",
        "x-vigil-timestamp": NOW_UNIX,
        "x-vigil-signature": signature(SECRET, NOW_UNIX, BODY),
    }
    assert {name for name in request.headers if name.startswith("x-vigil-")} == {
        "x-vigil-timestamp",
        "x-vigil-signature",
    }


def test_the_signature_does_not_verify_with_another_secret_or_timestamp(hook, receiver):
    webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook)

    sent = receiver.requests[0].headers["x-vigil-signature"]
    assert sent != signature("another-secret", NOW_UNIX, BODY)
    assert sent != signature(SECRET, str(int(NOW_UNIX) + 1), BODY)
    assert sent != signature(SECRET, NOW_UNIX, BODY.replace(b"critical", b"info"))


def test_a_team_without_a_secret_gets_an_unsigned_request(hook, receiver):
    hook.webhook_secret = ""

    webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook)

    assert "x-vigil-signature" not in receiver.requests[0].headers
    assert receiver.requests[0].headers["x-vigil-timestamp"] == NOW_UNIX


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(hook, receiver, status):
    receiver.answer(status)

    assert webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook) == status


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_a_5xx_408_or_429_is_worth_retrying(hook, receiver, status):
    receiver.answer(status)

    with pytest.raises(DeliveryError) as error:
        webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook)

    assert (error.value.permanent, error.value.status_code) == (False, status)
    assert str(error.value) == f"webhook answered {status}"
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 422, 301, 302])
def test_any_other_4xx_or_a_redirect_is_permanent(hook, receiver, status):
    receiver.answer(status)

    with pytest.raises(DeliveryError) as error:
        webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook)

    assert (error.value.permanent, error.value.status_code) == (True, status)
    assert len(receiver.requests) == 1


def test_a_refused_connection_is_worth_retrying(hook, refused_url):
    with pytest.raises(DeliveryError) as error:
        webhook.send(target=refused_url, message=MESSAGE, team=hook)

    assert (error.value.permanent, error.value.status_code) == (False, None)
    assert str(error.value) == "webhook unreachable: ConnectError"


def test_a_receiver_slower_than_the_timeout_is_worth_retrying(settings, hook, receiver):
    settings.VIGIL_WEBHOOK_TIMEOUT = 0.2
    receiver.delay = 1.0

    with pytest.raises(DeliveryError) as error:
        webhook.send(target=hook.webhook_url, message=MESSAGE, team=hook)

    assert (error.value.permanent, error.value.status_code) == (False, None)
    assert str(error.value) == "webhook unreachable: ReadTimeout"


def test_a_url_that_cannot_be_requested_is_permanent(hook):
    with pytest.raises(DeliveryError) as error:
        webhook.send(target="http://[::1/hooks", message=MESSAGE, team=hook)

    assert error.value.permanent is True


# --- Through delivery: the alert as the receiver gets it ---------------------------------


def test_a_delivered_alert_arrives_with_the_whole_documented_payload(
    settings, hook, receiver, patient
):
    # given
    settings.VIGIL_BASE_URL = "https://vigil.clinic.test"
    rule = RuleFactory(patient=patient, key="glucose_low", group="glucose_low", severity="critical")
    alert = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=rule,
            severity="critical",
            title="Level 2 hypoglycaemia",
            detail="48 mg/dL at 2026-03-01 06:55 EST; rule: < 54 mg/dL",
            first_at=datetime(2026, 3, 1, 11, 55, tzinfo=UTC),
            last_at=datetime(2026, 3, 1, 11, 55, tzinfo=UTC),
        ),
        now=NOW,
    ).alert
    route_alert_event(event_id=alert.events.get().pk)
    notification = Notification.objects.get(channel="webhook")

    # when
    deliver_notification(notification_id=notification.pk)

    # then
    (request,) = receiver.requests
    expected = {
        "event": "raised",
        "event_id": alert.events.get().pk,
        "alert": {
            "id": alert.pk,
            "patient": patient.pk,
            "patient_external_id": patient.external_id,
            "rule": {"kind": "threshold", "metric": "glucose"},
            "severity": "critical",
            "status": "open",
            "title": "Level 2 hypoglycaemia",
            "detail": "48 mg/dL at 2026-03-01 06:55 EST; rule: < 54 mg/dL",
            "occurrences": 1,
            "first_triggered_at": "2026-03-01T11:55:00+00:00",
            "last_triggered_at": "2026-03-01T11:55:00+00:00",
            "escalation_level": 1,
            "url": f"https://vigil.clinic.test/admin/alerts/alert/{alert.pk}/change/",
        },
    }
    assert json.loads(request.body) == expected
    assert request.body == json.dumps(expected, separators=(",", ":"), sort_keys=True).encode()
    assert request.headers["x-vigil-signature"] == signature(SECRET, NOW_UNIX, request.body)
    assert list(
        NotificationAttempt.objects.values_list("number", "outcome", "status_code", "error")
    ) == [(1, "sent", 200, "")]
