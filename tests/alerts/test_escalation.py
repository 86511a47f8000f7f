"""alerts/escalation.py: unacknowledged alerts climb the care team's levels, then repeat.

The team's policy: a critical alert unacknowledged for 15 minutes (a warning for 240) goes
to the next level; at the top level it is repeated every 60 minutes, at most 3 times. The
beat sweep claims due alerts so two sweeps never escalate one alert twice.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from alerts.escalation import escalate_overdue_alerts
from alerts.lifecycle import Trigger, acknowledge_alert, raise_alert, resolve_alert
from alerts.models import Alert, AlertEvent, Notification
from alerts.notify import route_alert_event
from alerts.tasks import escalate_overdue_alerts_task, route_alert_event_task
from tests.factories import MembershipFactory, PatientFactory, RuleFactory, UserFactory
from tests.monitoring.conftest import QueuedTask

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def on_call(team, nurse, physician):
    """The nurse at level 1, the physician at level 2, each with an email address."""
    for user in (nurse, physician):
        user.email = f"{user.username}@clinic.test"
        user.save()
    return team


def rule_of(patient, severity: str, key: str | None = None):
    key = key or f"glucose_{severity}"
    return RuleFactory(patient=patient, key=key, group=key, severity=severity)


def raise_at(patient, severity: str, at: datetime = T0, key: str | None = None) -> Alert:
    rule = rule_of(patient, severity, key)
    trigger = Trigger(
        rule=rule,
        severity=severity,
        title=rule.title,
        detail="62 mg/dL",
        first_at=at,
        last_at=at,
    )
    return raise_alert(patient=patient, trigger=trigger, now=at).alert


def escalation_events(alert=None) -> list[tuple]:
    events = AlertEvent.objects.filter(kind__in=["escalated", "repeated"])
    if alert is not None:
        events = events.filter(alert=alert)
    return list(events.order_by("at", "id").values_list("kind", "at", "data"))


def alert_state(alert) -> tuple:
    alert = Alert.objects.get(pk=alert.pk)
    return alert.escalation_level, alert.repeats, alert.next_escalation_at


def route(event) -> QueuedTask:
    return QueuedTask(name=route_alert_event_task.name, args=[event.pk], kwargs={})


def sweep_at(time_machine, at: datetime, capture) -> int:
    time_machine.move_to(at, tick=False)
    with capture(execute=True):
        return escalate_overdue_alerts()


# --- The policy ---------------------------------------------------------------------------


def test_a_critical_alert_unacknowledged_for_fifteen_minutes_goes_to_level_two(
    time_machine, patient, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    # given
    alert = raise_at(patient, "critical")

    # when: a second early, nothing; on time, level 2
    early = sweep_at(
        time_machine, T0 + 15 * MINUTE - timedelta(seconds=1), django_capture_on_commit_callbacks
    )
    assert (early, alert_state(alert), len(notifications_queue)) == (0, (1, 0, T0 + 15 * MINUTE), 0)
    escalated = sweep_at(time_machine, T0 + 15 * MINUTE, django_capture_on_commit_callbacks)

    # then
    assert escalated == 1
    assert alert_state(alert) == (2, 0, T0 + 30 * MINUTE)
    assert escalation_events(alert) == [("escalated", T0 + 15 * MINUTE, {"level": 2, "repeat": 0})]
    event = AlertEvent.objects.get(kind="escalated")
    assert notifications_queue.tasks() == [route(event)]


def test_the_escalation_event_pages_the_physician_not_the_nurse_again(
    time_machine, patient, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    alert = raise_at(patient, "critical")
    route_alert_event(event_id=AlertEvent.objects.get(kind="raised").pk, now=T0)
    sweep_at(time_machine, T0 + 15 * MINUTE, django_capture_on_commit_callbacks)

    route_alert_event(event_id=AlertEvent.objects.get(kind="escalated").pk)

    assert list(
        Notification.objects.filter(alert=alert)
        .order_by("id")
        .values_list("event__kind", "channel", "target")
    ) == [
        ("raised", "email", "nurse@clinic.test"),
        ("escalated", "email", "physician@clinic.test"),
    ]


def test_a_warning_waits_the_teams_warning_delay(
    time_machine, patient, on_call, django_capture_on_commit_callbacks
):
    alert = raise_at(patient, "warning")

    assert sweep_at(time_machine, T0 + 239 * MINUTE, django_capture_on_commit_callbacks) == 0
    assert sweep_at(time_machine, T0 + 240 * MINUTE, django_capture_on_commit_callbacks) == 1

    assert alert_state(alert) == (2, 0, T0 + 480 * MINUTE)


def test_an_info_alert_never_escalates(time_machine, patient, on_call, notifications_queue):
    alert = raise_at(patient, "info")

    time_machine.move_to(T0 + timedelta(days=2), tick=False)

    assert escalate_overdue_alerts() == 0
    assert alert_state(alert) == (1, 0, None)
    assert escalation_events() == []
    assert len(notifications_queue) == 0


def test_at_the_top_level_the_alert_repeats_every_interval_and_then_stops(
    time_machine, patient, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    # given: escalated to the top level (2) at T0+15
    alert = raise_at(patient, "critical")
    sweep_at(time_machine, T0 + 15 * MINUTE, django_capture_on_commit_callbacks)

    # when: every due time, and once more after the last repeat
    counts = [
        sweep_at(time_machine, T0 + minutes * MINUTE, django_capture_on_commit_callbacks)
        for minutes in (30, 89, 90, 150, 210, 600)
    ]

    # then: three repeats at the top level, 60 minutes apart, and no fourth
    assert counts == [1, 0, 1, 1, 0, 0]
    assert escalation_events(alert) == [
        ("escalated", T0 + 15 * MINUTE, {"level": 2, "repeat": 0}),
        ("repeated", T0 + 30 * MINUTE, {"level": 2, "repeat": 1}),
        ("repeated", T0 + 90 * MINUTE, {"level": 2, "repeat": 2}),
        ("repeated", T0 + 150 * MINUTE, {"level": 2, "repeat": 3}),
    ]
    # The loop is bounded: no deadline left, the alert stays open at the top of the queue.
    assert alert_state(alert) == (2, 3, None)
    assert Alert.objects.get(pk=alert.pk).status == "open"
    assert len(notifications_queue) == 4


def test_the_teams_own_numbers_drive_the_policy(
    time_machine, patient, on_call, django_capture_on_commit_callbacks
):
    on_call.critical_escalation_minutes = 5
    on_call.repeat_minutes = 10
    on_call.max_repeats = 1
    on_call.save()
    alert = raise_at(patient, "critical")

    counts = [
        sweep_at(time_machine, T0 + minutes * MINUTE, django_capture_on_commit_callbacks)
        for minutes in (5, 10, 20, 60)
    ]

    assert counts == [1, 1, 0, 0]
    assert [(kind, at) for kind, at, _ in escalation_events(alert)] == [
        ("escalated", T0 + 5 * MINUTE),
        ("repeated", T0 + 10 * MINUTE),
    ]


def test_a_team_with_one_level_only_repeats(
    time_machine, team, nurse, patient, django_capture_on_commit_callbacks
):
    alert = raise_at(patient, "critical")

    sweep_at(time_machine, T0 + 15 * MINUTE, django_capture_on_commit_callbacks)

    assert alert_state(alert) == (1, 1, T0 + 75 * MINUTE)
    assert escalation_events(alert) == [("repeated", T0 + 15 * MINUTE, {"level": 1, "repeat": 1})]


def test_escalation_skips_a_level_nobody_holds(
    time_machine, team, nurse, patient, django_capture_on_commit_callbacks
):
    # given: levels 1 and 3, nobody at 2
    chief = MembershipFactory(
        team=team,
        user=UserFactory(username="chief", email="chief@clinic.test"),
        role="physician",
        escalation_level=3,
    ).user
    alert = raise_at(patient, "critical")

    # when
    sweep_at(time_machine, T0 + 15 * MINUTE, django_capture_on_commit_callbacks)
    route_alert_event(event_id=AlertEvent.objects.get(kind="escalated").pk)

    # then: the chief hears of it after 15 minutes, not 30
    assert alert_state(alert) == (3, 0, T0 + 30 * MINUTE)
    assert list(Notification.objects.values_list("recipient", "target")) == [
        (chief.pk, "chief@clinic.test")
    ]


# --- What does not escalate ---------------------------------------------------------------


def test_an_acknowledged_alert_never_escalates(
    time_machine, patient, on_call, nurse, notifications_queue
):
    alert = raise_at(patient, "critical")
    acknowledge_alert(alert=alert, user=nurse, now=T0 + 14 * MINUTE)

    time_machine.move_to(T0 + timedelta(days=1), tick=False)

    assert escalate_overdue_alerts() == 0
    assert alert_state(alert) == (1, 0, None)
    assert escalation_events() == []
    assert len(notifications_queue) == 0


def test_a_resolved_alert_never_escalates(
    time_machine, patient, on_call, physician, notifications_queue
):
    alert = raise_at(patient, "critical")
    resolve_alert(alert=alert, user=physician, now=T0 + MINUTE)

    time_machine.move_to(T0 + timedelta(days=1), tick=False)

    assert escalate_overdue_alerts() == 0
    assert escalation_events() == []
    assert len(notifications_queue) == 0


def test_an_acknowledged_alert_that_got_worse_escalates_from_its_new_deadline(
    time_machine, patient, on_call, nurse, django_capture_on_commit_callbacks
):
    # given: a warning acknowledged, then a critical finding in the same group
    alert = raise_at(patient, "warning", key="glucose_low")
    acknowledge_alert(alert=alert, user=nurse, now=T0 + MINUTE)
    critical = RuleFactory(
        patient=patient, key="glucose_very_low", group="glucose_low", severity="critical"
    )
    raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=critical,
            severity="critical",
            title="Very low",
            detail="48 mg/dL",
            first_at=T0 + 30 * MINUTE,
            last_at=T0 + 30 * MINUTE,
        ),
        now=T0 + 30 * MINUTE,
    )

    # when / then
    assert sweep_at(time_machine, T0 + 44 * MINUTE, django_capture_on_commit_callbacks) == 0
    assert sweep_at(time_machine, T0 + 45 * MINUTE, django_capture_on_commit_callbacks) == 1
    assert alert_state(alert) == (2, 0, T0 + 60 * MINUTE)


def test_the_sweep_leaves_alerts_not_yet_due(
    time_machine, patient, on_call, notifications_queue, django_capture_on_commit_callbacks
):
    due = raise_at(patient, "critical", at=T0, key="due")
    later = raise_at(patient, "critical", at=T0 + 5 * MINUTE, key="later")

    assert sweep_at(time_machine, T0 + 15 * MINUTE, django_capture_on_commit_callbacks) == 1

    assert alert_state(due)[0] == 2
    assert alert_state(later) == (1, 0, T0 + 20 * MINUTE)


# --- Bounded batches ----------------------------------------------------------------------


def test_the_sweep_takes_a_bounded_batch_and_re_enqueues_itself_for_the_rest(
    settings,
    time_machine,
    patient,
    on_call,
    notifications_queue,
    evaluation_queue,
    django_capture_on_commit_callbacks,
):
    # given: three overdue alerts, a batch of two
    settings.VIGIL_SWEEP_BATCH = 2
    alerts = [raise_at(patient, "critical", at=T0 + n * MINUTE, key=f"k{n}") for n in range(3)]

    # when
    first = sweep_at(time_machine, T0 + 30 * MINUTE, django_capture_on_commit_callbacks)

    # then: the two oldest deadlines first, and the sweep again for the rest
    assert first == 2
    assert [alert_state(alert)[0] for alert in alerts] == [2, 2, 1]
    assert evaluation_queue.tasks() == [
        QueuedTask(name=escalate_overdue_alerts_task.name, args=[], kwargs={})
    ]
    assert len(notifications_queue) == 2

    # when: the re-enqueued sweep runs
    assert sweep_at(time_machine, T0 + 30 * MINUTE, django_capture_on_commit_callbacks) == 1
    assert [alert_state(alert)[0] for alert in alerts] == [2, 2, 2]
    assert len(evaluation_queue) == 1


# --- Two sweeps at once (two beats, or a beat and a re-enqueued sweep) --------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_skips_alerts_another_sweep_holds_and_they_escalate_once(
    patient, on_call, notifications_queue
):
    # given: one sweep has escalated the alert and not committed yet
    alert = raise_at(patient, "critical")
    escalated, finish = threading.Event(), threading.Event()
    results = {}

    def first_sweep():
        try:
            with transaction.atomic():
                results["first"] = escalate_overdue_alerts(now=T0 + 15 * MINUTE)
                escalated.set()
                finish.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=first_sweep)
    thread.start()
    assert escalated.wait(timeout=30)

    # when: a second sweep runs meanwhile, and again after the first committed
    during = escalate_overdue_alerts(now=T0 + 15 * MINUTE)
    finish.set()
    thread.join(timeout=30)
    after = escalate_overdue_alerts(now=T0 + 15 * MINUTE)

    # then
    assert (results["first"], during, after) == (1, 0, 0)
    assert alert_state(alert) == (2, 0, T0 + 30 * MINUTE)
    assert len(escalation_events(alert)) == 1
    assert len(notifications_queue) == 1


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_racing_over_many_alerts_escalate_each_exactly_once(
    on_call, notifications_queue
):
    # given: 40 overdue critical alerts
    patients = PatientFactory.create_batch(40, care_team=on_call)
    alerts = [raise_at(patient, "critical") for patient in patients]
    start = threading.Barrier(2)
    counts = []

    def sweep():
        try:
            start.wait(timeout=30)
            counts.append(escalate_overdue_alerts(now=T0 + 15 * MINUTE))
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then: each alert escalated once, by one of the two sweeps
    assert sum(counts) == 40
    assert AlertEvent.objects.filter(kind="escalated").count() == 40
    assert sorted(
        AlertEvent.objects.values_list("alert_id", flat=True).filter(kind="escalated")
    ) == sorted(alert.pk for alert in alerts)
    assert set(Alert.objects.values_list("escalation_level", "next_escalation_at")) == {
        (2, T0 + 30 * MINUTE)
    }
    assert len(notifications_queue) == 40
