"""alerts/notify.py: routing alert events to people, and info alerts queued, not paged.

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

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from alerts.lifecycle import acknowledge_alert, resolve_alert
from alerts.models import (
    Alert,
    AlertEvent,
    Notification,
    Silence,
)
from alerts.notify import (
    PAGING_EVENTS,
    route_alert_event,
)
from alerts.tasks import route_alert_event_task
from tests.alerts.notify_helpers import (  # noqa: F401
    MINUTE,
    NOW,
    NURSE_PHONE,
    PHYSICIAN_PHONE,
    deliveries,
    on_call,
    raise_event,
    rows,
    rule,
)
from tests.factories import MembershipFactory, RuleFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- Routing ------------------------------------------------------------------------------


def test_a_new_alert_pages_level_one_by_email_and_sms_and_the_team_webhook(
    patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    event = raise_event(patient, rule)

    with django_capture_on_commit_callbacks(execute=True):
        ids = route_alert_event(event_id=event.pk)

    assert rows() == [
        ("raised", "email", "nurse", "nurse@clinic.test", "pending", 0),
        ("raised", "sms", "nurse", NURSE_PHONE, "pending", 0),
        ("raised", "webhook", None, f"{on_call.webhook_url}", "pending", 0),
    ]
    assert ids == list(Notification.objects.order_by("id").values_list("id", flat=True))
    assert notifications_queue.tasks() == deliveries(*ids)


def test_an_escalation_pages_the_level_it_reached(
    patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    event = raise_event(patient, rule)
    escalated = AlertEvent.objects.create(
        alert=event.alert, kind="escalated", at=NOW + 15 * MINUTE, data={"level": 2, "repeat": 0}
    )

    with django_capture_on_commit_callbacks(execute=True):
        ids = route_alert_event(event_id=escalated.pk)

    assert rows() == [
        ("escalated", "email", "physician", "physician@clinic.test", "pending", 0),
        ("escalated", "sms", "physician", PHYSICIAN_PHONE, "pending", 0),
        ("escalated", "webhook", None, on_call.webhook_url, "pending", 0),
    ]
    assert notifications_queue.tasks() == deliveries(*ids)


def test_without_twilio_settings_nobody_is_texted(settings, patient, rule, on_call):
    settings.TWILIO_AUTH_TOKEN = ""

    route_alert_event(event_id=raise_event(patient, rule).pk)

    assert [channel for _, channel, *_ in rows()] == ["email", "webhook"]


def test_inactive_members_and_members_without_an_address_are_not_paged(
    patient, rule, on_call, nurse
):
    nurse.is_active = False
    nurse.save()
    MembershipFactory(team=on_call, user=UserFactory(username="no.contact"))

    route_alert_event(event_id=raise_event(patient, rule).pk)

    assert [channel for _, channel, *_ in rows()] == ["webhook"]


def test_a_team_with_nobody_at_level_one_pages_its_lowest_level(team, physician, patient, rule):
    physician.email = "physician@clinic.test"
    physician.save()

    route_alert_event(event_id=raise_event(patient, rule).pk)

    assert rows() == [("raised", "email", "physician", "physician@clinic.test", "pending", 0)]


def test_routing_an_event_again_creates_no_second_notification(
    patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    # given: routed once, and the email already sent
    event = raise_event(patient, rule)
    route_alert_event(event_id=event.pk)
    Notification.objects.filter(channel="email").update(status="sent", sent_at=NOW)
    before = rows()

    # when: the routing task runs again (redelivery, or the sweep after a slow queue)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = route_alert_event(event_id=event.pk)

    # then: the event was claimed by the first run; nothing is written or enqueued (what is
    # still pending is the delivery outbox's, enqueue_pending_notifications)
    assert again == []
    assert rows() == before
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_an_event_routed_without_its_mark_is_not_routed_twice_either(
    patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    # given: routed once and the email sent, without the mark being kept (as by a worker
    # still running the code before routed_at existed, during a deployment)
    event = raise_event(patient, rule)
    first = route_alert_event(event_id=event.pk)
    AlertEvent.objects.filter(pk=event.pk).update(routed_at=None)
    Notification.objects.filter(channel="email").update(status="sent", sent_at=NOW)
    before = rows()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        again = route_alert_event(event_id=event.pk)

    # then: the unique constraint keeps the rows; only what is still pending is handed on
    assert rows() == before
    assert Notification.objects.count() == 3
    assert again == first[1:]
    assert notifications_queue.tasks() == deliveries(*first[1:])


@pytest.mark.parametrize("kind", ["acknowledged", "resolved", "condition_cleared", "note"])
def test_events_that_need_nobody_page_nobody(
    patient, rule, on_call, nurse, kind, notifications_queue, django_capture_on_commit_callbacks
):
    alert = raise_event(patient, rule).alert
    event = AlertEvent.objects.create(alert=alert, kind=kind, actor=nurse, at=NOW)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert route_alert_event(event_id=event.pk) == []

    assert Notification.objects.count() == 0
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_an_alert_acknowledged_before_its_page_went_out_pages_nobody(
    patient, rule, on_call, nurse, notifications_queue, django_capture_on_commit_callbacks
):
    event = raise_event(patient, rule)
    acknowledge_alert(alert=event.alert, user=nurse, now=NOW)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert route_alert_event(event_id=event.pk) == []

    assert Notification.objects.count() == 0
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_an_alert_acknowledged_after_it_got_worse_pages_nobody_about_it(
    patient, on_call, nurse, notifications_queue, django_capture_on_commit_callbacks
):
    # given: a warning, then a critical trigger; the nurse acknowledges the critical alert
    # before the routing task for its severity_raised event runs
    warning = RuleFactory(patient=patient, key="l1", group="glucose_low", severity="warning")
    critical = RuleFactory(patient=patient, key="l2", group="glucose_low", severity="critical")
    raise_event(patient, warning)
    worse = raise_event(patient, critical, at=NOW + MINUTE)
    assert worse.kind == "severity_raised"
    acknowledge_alert(alert=worse.alert, user=nurse, now=NOW + 2 * MINUTE)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert route_alert_event(event_id=worse.pk) == []

    # then
    assert Notification.objects.count() == 0
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_a_resolved_alert_pages_nobody(
    patient, rule, on_call, physician, notifications_queue, django_capture_on_commit_callbacks
):
    event = raise_event(patient, rule)
    resolve_alert(alert=event.alert, user=physician, now=NOW)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert route_alert_event(event_id=event.pk) == []

    assert Notification.objects.count() == 0
    assert callbacks == []


@pytest.mark.parametrize("scope", ["patient", "rule"])
def test_a_silenced_alert_pages_nobody(
    patient, rule, on_call, nurse, scope, notifications_queue, django_capture_on_commit_callbacks
):
    Silence.objects.create(
        patient=patient,
        rule=rule if scope == "rule" else None,
        starts_at=NOW - MINUTE,
        ends_at=NOW + timedelta(hours=2),
        author=nurse,
        reason="Known hypoglycaemia after dose change; physician informed",
    )
    event = raise_event(patient, rule)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert route_alert_event(event_id=event.pk) == []

    assert Notification.objects.count() == 0
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_a_silence_of_another_rule_or_one_that_ended_does_not_hold_the_page(
    patient, rule, on_call, nurse
):
    other = RuleFactory(patient=patient, key="weight_gain", group="weight_gain")
    Silence.objects.create(
        patient=patient, rule=other, starts_at=NOW - MINUTE, ends_at=NOW + MINUTE,
        author=nurse, reason="Scale replaced",
    )  # fmt: skip
    Silence.objects.create(
        patient=patient, starts_at=NOW - 2 * MINUTE, ends_at=NOW,
        author=nurse, reason="Clinic visit",
    )  # fmt: skip

    assert len(route_alert_event(event_id=raise_event(patient, rule).pk)) == 3


# --- Info alerts: the queue, not a page ----------------------------------------------------


def test_the_events_that_page_are_a_new_alert_a_worse_one_and_escalation():
    assert sorted(PAGING_EVENTS) == [
        "escalated",
        "raised",
        "repeated",
        "severity_raised",
        "worsened",
    ]


@pytest.mark.parametrize("kind", ["raised", "escalated", "repeated"])
def test_an_info_alert_pages_nobody_when_the_team_did_not_ask_for_it(
    patient, rule, on_call, kind, notifications_queue, django_capture_on_commit_callbacks
):
    # given: an info alert ("outside target, no action needed now"); the team keeps the
    # default, and the event is its raising or (were there one) an escalation
    raised = raise_event(patient, rule, severity="info")
    event = (
        raised
        if kind == "raised"
        else AlertEvent.objects.create(alert=raised.alert, kind=kind, at=NOW, data={"level": 2})
    )

    # when: the routing task runs
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        routed_count = route_alert_event_task.apply(args=[event.pk]).get()

    # then: the alert waits in the queue; nobody is emailed, texted or called back
    assert on_call.page_info_alerts is False
    assert routed_count == 0
    assert Alert.objects.get().severity == "info"
    assert Notification.objects.count() == 0
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_a_team_that_asked_for_info_alerts_is_paged_for_them(
    patient, rule, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    on_call.page_info_alerts = True
    on_call.save()
    event = raise_event(patient, rule, severity="info")

    with django_capture_on_commit_callbacks(execute=True):
        ids = route_alert_event(event_id=event.pk)

    assert rows() == [
        ("raised", "email", "nurse", "nurse@clinic.test", "pending", 0),
        ("raised", "sms", "nurse", NURSE_PHONE, "pending", 0),
        ("raised", "webhook", None, on_call.webhook_url, "pending", 0),
    ]
    assert notifications_queue.tasks() == deliveries(*ids)


@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_an_info_alert_that_gets_worse_pages_as_it_always_did(
    patient, on_call, severity, notifications_queue, django_capture_on_commit_callbacks
):
    # given: an info finding, queued without a page
    info = RuleFactory(patient=patient, key="l0", group="glucose_low", severity="info")
    worse_rule = RuleFactory(patient=patient, key="l1", group="glucose_low", severity=severity)
    first = raise_event(patient, info)
    assert route_alert_event(event_id=first.pk) == []

    # when: a worse finding of the same problem raises the alert's severity
    worse = raise_event(patient, worse_rule, at=NOW + MINUTE)
    with django_capture_on_commit_callbacks(execute=True):
        ids = route_alert_event(event_id=worse.pk)

    # then: that event pages level 1 on every channel
    assert (worse.kind, worse.data["previous"], worse.alert.severity) == (
        "severity_raised",
        "info",
        severity,
    )
    assert rows() == [
        ("severity_raised", "email", "nurse", "nurse@clinic.test", "pending", 0),
        ("severity_raised", "sms", "nurse", NURSE_PHONE, "pending", 0),
        ("severity_raised", "webhook", None, on_call.webhook_url, "pending", 0),
    ]
    assert notifications_queue.tasks() == deliveries(*ids)


def test_a_silence_must_end_after_it_starts(patient, nurse):
    with pytest.raises(IntegrityError), transaction.atomic():
        Silence.objects.create(
            patient=patient, starts_at=NOW, ends_at=NOW, author=nurse, reason="Holiday"
        )

    assert Silence.objects.count() == 0
