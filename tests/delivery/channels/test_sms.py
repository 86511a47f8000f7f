"""delivery/channels/sms.py: SMS through Twilio's REST API (the Messages resource).

settings.TWILIO_API_BASE points at a real HTTP receiver on 127.0.0.1, which records the
exact form body and the basic-auth credentials Twilio would receive.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import Notification, NotificationAttempt
from alerts.notify import deliver_notification, route_alert_event
from delivery.channels import DeliveryError, Message, sms
from tests.factories import RuleFactory

pytestmark = pytest.mark.django_db

SID = "AC0123456789abcdef0123456789abcdef"  # the `twilio` fixture's account
MESSAGES_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
MESSAGE = Message(
    subject="unused",
    text="unused",
    short="Vigil critical: Level 2 hypoglycaemia. Alert #42. Acknowledge in Vigil.",
    payload={},
)


def test_the_message_is_posted_as_a_form_with_basic_auth(twilio):
    twilio.answer(201)  # Twilio answers 201 Created

    status = sms.send(target="+15550100001", message=MESSAGE)

    assert status == 201
    (request,) = twilio.requests
    assert (request.method, request.path) == ("POST", MESSAGES_PATH)
    assert request.body == (
        b"To=%2B15550100001&From=%2B15005550006"
        b"&Body=Vigil+critical%3A+Level+2+hypoglycaemia.+Alert+%2342.+Acknowledge+in+Vigil."
    )
    assert parse_qs(request.body.decode()) == {
        "To": ["+15550100001"],
        "From": ["+15005550006"],
        "Body": [MESSAGE.short],
    }
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    credentials = base64.b64encode(f"{SID}:twilio-test-auth-token".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"


@pytest.mark.parametrize(
    "setting", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"]
)
def test_sms_is_off_unless_all_three_twilio_settings_are_set(settings, twilio, setting):
    assert sms.is_enabled() is True
    setattr(settings, setting, "")

    assert sms.is_enabled() is False
    with pytest.raises(DeliveryError) as error:
        sms.send(target="+15550100001", message=MESSAGE)

    assert error.value.permanent is True
    assert str(error.value) == "SMS is not configured (TWILIO_* settings)"
    assert twilio.requests == []


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_a_5xx_408_or_429_from_twilio_is_worth_retrying(twilio, status):
    twilio.answer(status)

    with pytest.raises(DeliveryError) as error:
        sms.send(target="+15550100001", message=MESSAGE)

    assert (error.value.permanent, error.value.status_code) == (False, status)
    assert str(error.value) == f"SMS gateway answered {status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_any_other_4xx_from_twilio_is_permanent(twilio, status):
    # 400: Twilio's "not a valid phone number"; 401: wrong credentials.
    twilio.answer(status)

    with pytest.raises(DeliveryError) as error:
        sms.send(target="+15550100001", message=MESSAGE)

    assert (error.value.permanent, error.value.status_code) == (True, status)
    assert len(twilio.requests) == 1


def test_an_unreachable_gateway_is_worth_retrying(settings, twilio, refused_url):
    settings.TWILIO_API_BASE = refused_url.rsplit("/hooks", 1)[0]

    with pytest.raises(DeliveryError) as error:
        sms.send(target="+15550100001", message=MESSAGE)

    assert (error.value.permanent, error.value.status_code) == (False, None)
    assert str(error.value) == "SMS gateway unreachable: ConnectError"
    assert twilio.requests == []


def test_a_gateway_slower_than_the_timeout_is_worth_retrying(settings, twilio):
    settings.VIGIL_WEBHOOK_TIMEOUT = 0.2
    twilio.delay = 1.0

    with pytest.raises(DeliveryError) as error:
        sms.send(target="+15550100001", message=MESSAGE)

    assert error.value.permanent is False
    assert str(error.value) == "SMS gateway unreachable: ReadTimeout"


def test_a_delivered_alert_texts_no_name_or_record_number(
    time_machine, twilio, team, nurse, patient
):
    # given: the nurse is on call by SMS
    time_machine.move_to(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False)
    team.memberships.filter(user=nurse).update(phone="+15550100001")
    patient.external_id, patient.name = "MRN-000042", "Ada Example"
    patient.save()
    rule = RuleFactory(patient=patient, key="glucose_low", group="glucose_low", severity="critical")
    at = datetime(2026, 3, 1, 11, 55, tzinfo=UTC)
    alert = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=rule,
            severity="critical",
            title="Level 2 hypoglycaemia",
            detail="48 mg/dL",
            first_at=at,
            last_at=at,
        ),
    ).alert
    route_alert_event(event_id=alert.events.get().pk)
    twilio.answer(201)

    # when
    deliver_notification(notification_id=Notification.objects.get(channel="sms").pk)

    # then
    (request,) = twilio.requests
    assert parse_qs(request.body.decode()) == {
        "To": ["+15550100001"],
        "From": ["+15005550006"],
        "Body": [
            f"Vigil critical: Level 2 hypoglycaemia. Alert #{alert.pk}. Acknowledge in Vigil."
        ],
    }
    for identifier in ("MRN-000042", "Ada Example", "Ada", "Example"):
        assert identifier not in parse_qs(request.body.decode())["Body"][0]
    assert list(NotificationAttempt.objects.values_list("outcome", "status_code")) == [
        ("sent", 201)
    ]
