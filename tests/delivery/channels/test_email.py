"""delivery/channels/email.py: email through Django's configured backend.

What is sent is read from Django's locmem outbox; how SMTP failures are told apart is tried
against a real SMTP server on 127.0.0.1 whose replies are scripted. SMTP says it itself:
a 4yz reply is temporary, a 5yz reply permanent (RFC 5321 §4.2.1).
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import ChannelFault, Notification, NotificationAttempt
from alerts.notify import deliver_notification, route_alert_event
from delivery.channels import DeliveryError, Message
from delivery.channels import email as email_channel
from tests.factories import RuleFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MESSAGE = Message(
    subject="Vigil alert #42: critical — Level 2 hypoglycaemia",
    text="New alert: Level 2 hypoglycaemia\n",
    short="unused",
    payload={},
)


def test_the_message_goes_to_the_target_from_the_configured_sender(settings, mailoutbox):
    settings.DEFAULT_FROM_EMAIL = "alerts@vigil.clinic.test"

    assert email_channel.send(target="nurse@clinic.test", message=MESSAGE) is None

    (sent,) = mailoutbox
    assert (sent.from_email, sent.to, sent.cc, sent.bcc) == (
        "alerts@vigil.clinic.test",
        ["nurse@clinic.test"],
        [],
        [],
    )
    assert (sent.subject, sent.body) == (MESSAGE.subject, MESSAGE.text)


def test_a_delivered_alert_has_the_exact_subject_and_body(
    settings, time_machine, mailoutbox, team, nurse, patient
):
    # given
    time_machine.move_to(NOW, tick=False)
    settings.VIGIL_BASE_URL = "https://vigil.clinic.test"
    nurse.email = "nurse@clinic.test"
    nurse.save()
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
            detail="48 mg/dL at 2026-03-01 06:55 EST; rule: < 54 mg/dL",
            first_at=at,
            last_at=at,
            occurrences=2,
        ),
    ).alert
    route_alert_event(event_id=alert.events.get().pk)

    # when
    deliver_notification(notification_id=Notification.objects.get(channel="email").pk)

    # then
    (sent,) = mailoutbox
    assert sent.to == ["nurse@clinic.test"]
    assert sent.subject == f"Vigil alert #{alert.pk}: critical — Level 2 hypoglycaemia"
    assert sent.body == (
        "New alert: Level 2 hypoglycaemia\n"
        f"Alert: #{alert.pk}\n"
        "Severity: critical\n"
        "Occurrences: 2\n"
        "First triggered: 2026-03-01T11:55:00+00:00\n"
        "\n"
        "The patient, readings and detail are in Vigil, after signing in.\n"
        f"Open and acknowledge: https://vigil.clinic.test/admin/alerts/alert/{alert.pk}/change/\n"
    )
    # Minimum necessary: neither the record number nor the name, in the subject (read on
    # lock screens) or the body; the link opens them after signing in.
    for identifier in ("MRN-000042", "Ada Example", "Ada", "Example"):
        assert identifier not in sent.subject
        assert identifier not in sent.body
    assert list(NotificationAttempt.objects.values_list("number", "outcome", "status_code")) == [
        (1, "sent", None)
    ]


# --- Over SMTP ----------------------------------------------------------------------------


def test_over_smtp_the_server_receives_the_message(settings, smtp_server):
    settings.DEFAULT_FROM_EMAIL = "alerts@vigil.clinic.test"

    email_channel.send(target="nurse@clinic.test", message=MESSAGE)

    (received,) = smtp_server.messages
    assert (received.sender, received.recipients) == (
        "alerts@vigil.clinic.test",
        ["nurse@clinic.test"],
    )
    # On the wire lines end in CRLF.
    parsed = email.message_from_string(
        received.data.replace("\r\n", "\n"), policy=email.policy.default
    )
    # Django folds the long non-ASCII subject onto a continuation line ("Subject: \n =?utf-8?q?…"),
    # which unfolds with a leading space.
    assert (parsed["Subject"].lstrip(), parsed["From"], parsed["To"]) == (
        MESSAGE.subject,
        "alerts@vigil.clinic.test",
        "nurse@clinic.test",
    )
    assert parsed.get_content() == MESSAGE.text


@pytest.mark.parametrize(
    "reply",
    ["550 5.1.1 No such user", "553 5.1.3 Bad recipient address syntax"],
)
def test_a_recipient_refused_for_good_is_permanent(smtp_server, reply):
    smtp_server.rcpt_reply = reply

    with pytest.raises(DeliveryError) as error:
        email_channel.send(target="nobody@clinic.test", message=MESSAGE)

    assert error.value.permanent is True
    assert error.value.status_code == int(reply[:3])
    assert str(error.value) == "email refused: SMTPRecipientsRefused"
    assert smtp_server.messages == []


@pytest.mark.parametrize("reply", ["450 4.2.1 Mailbox busy", "452 4.2.2 Mailbox full"])
def test_a_recipient_refused_for_now_is_worth_retrying(smtp_server, reply):
    smtp_server.rcpt_reply = reply

    with pytest.raises(DeliveryError) as error:
        email_channel.send(target="nurse@clinic.test", message=MESSAGE)

    assert error.value.permanent is False
    assert error.value.status_code == int(reply[:3])
    assert str(error.value) == "email failed: SMTPRecipientsRefused"
    assert smtp_server.messages == []


def test_a_server_not_taking_mail_now_is_worth_retrying(smtp_server):
    smtp_server.greeting = "421 4.3.2 Service not available, closing channel"

    with pytest.raises(DeliveryError) as error:
        email_channel.send(target="nurse@clinic.test", message=MESSAGE)

    assert (error.value.permanent, error.value.status_code) == (False, 421)


def test_an_unreachable_mail_server_is_worth_retrying(settings, smtp_server, refused_url):
    settings.EMAIL_PORT = int(refused_url.split(":")[2].split("/")[0])

    with pytest.raises(DeliveryError) as error:
        email_channel.send(target="nurse@clinic.test", message=MESSAGE)

    assert (error.value.permanent, error.value.status_code) == (False, None)
    assert str(error.value) == "email failed: ConnectionRefusedError"


def test_a_refused_recipient_fails_the_notification_and_flags_the_address(
    time_machine, smtp_server, team, nurse, patient
):
    # given
    time_machine.move_to(NOW, tick=False)
    nurse.email = "nurse@old-domain.test"
    nurse.save()
    rule = RuleFactory(patient=patient, key="glucose_low", group="glucose_low", severity="critical")
    alert = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=rule,
            severity="critical",
            title="Level 2 hypoglycaemia",
            detail="48 mg/dL",
            first_at=NOW,
            last_at=NOW,
        ),
    ).alert
    route_alert_event(event_id=alert.events.get().pk)
    smtp_server.rcpt_reply = "550 5.1.1 No such user"
    notification = Notification.objects.get(channel="email")

    # when
    outcome = deliver_notification(notification_id=notification.pk)

    # then
    assert outcome == "failed"
    assert Notification.objects.get(pk=notification.pk).status == "failed"
    assert list(NotificationAttempt.objects.values_list("outcome", "status_code", "error")) == [
        ("permanent_failure", 550, "email refused: SMTPRecipientsRefused")
    ]
    assert Notification.objects.count() == 1
    assert list(ChannelFault.objects.values_list("channel", "target", "failures")) == [
        ("email", "nurse@old-domain.test", 1)
    ]
