"""alerts/silences.py: whether anyone is paged about a patient's alert right now, decided once.

A silence covers the patient (every rule) or one of their rules over [starts_at, ends_at). A
silenced alert is still raised and recorded; only the page is held back. Three places page —
evaluation (monitoring/evaluation/outcomes.py), routing (alerts/notify.py) and the reminder
sweep's adherence alerts — and for each silence below all three page exactly when
`is_silenced` says nobody is silenced.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import Alert, AlertEvent, Notification, Silence
from alerts.notify import route_alert_event
from alerts.silences import active_silences, covered, is_silenced
from monitoring.models import Rule, Slot
from monitoring.nudges import run_reminder_sweep
from tests.factories import MeasurementScheduleFactory, PatientFactory, RuleFactory, SlotFactory
from tests.monitoring.evaluation.helpers import HYPO_2, NOW, enrolled, evaluate, glucose, post

pytestmark = pytest.mark.django_db

ROUTE = "alerts.tasks.route_alert_event_task"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

# (whose: the patient's, the rule's that fired, another rule's; starts and ends from now;
# whether it silences the alert now)
SILENCES = [
    pytest.param("patient", -HOUR, 8 * HOUR, True, id="the patient's, in force"),
    pytest.param("rule", -HOUR, HOUR, True, id="of the rule that fired"),
    pytest.param("other rule", -HOUR, HOUR, False, id="of another rule"),
    pytest.param("patient", -2 * HOUR, -MINUTE, False, id="ended"),
    pytest.param("patient", 30 * MINUTE, 2 * HOUR, False, id="not yet started"),
    pytest.param("patient", -2 * HOUR, timedelta(0), False, id="ending this very moment"),
    pytest.param("patient", timedelta(0), HOUR, True, id="starting this very moment"),
]


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def silence(patient, rule, nurse, whose: str, starts: timedelta, ends: timedelta) -> Silence:
    if whose == "other rule":
        # Switched off: it fires on nothing here, and is silenced all the same.
        rule = RuleFactory(patient=patient, key="weight_gain_2kg", group="weight", active=False)
    silenced_rule = None if whose == "patient" else rule
    return Silence.objects.create(
        patient=patient,
        rule=silenced_rule,
        starts_at=NOW + starts,
        ends_at=NOW + ends,
        author=nurse,
        reason="Admitted to hospital overnight",
    )


def routings(callbacks) -> list[tuple]:
    return [
        (callback.task.name, callback.args)
        for callback in callbacks
        if getattr(callback, "task", None) is not None and callback.task.name == ROUTE
    ]


# --- The decision -------------------------------------------------------------------------


@pytest.mark.parametrize(("whose", "starts", "ends", "silenced"), SILENCES)
def test_a_silence_covers_its_patient_s_alert_only_while_in_force(
    whose, starts, ends, silenced, patient, nurse
):
    rule = RuleFactory(patient=patient)
    made = silence(patient, rule, nurse, whose, starts, ends)
    other_patient = PatientFactory(care_team=patient.care_team)

    in_force = active_silences(patient_id=patient.pk, at=NOW)

    assert in_force == ([made] if NOW + starts <= NOW < NOW + ends else [])
    assert covered(in_force, rule_id=rule.pk, at=NOW) is silenced
    assert is_silenced(patient_id=patient.pk, rule_id=rule.pk, at=NOW) is silenced
    assert is_silenced(patient_id=other_patient.pk, rule_id=rule.pk, at=NOW) is False


# --- Evaluation, routing and reminders decide alike ---------------------------------------


@pytest.mark.parametrize(("whose", "starts", "ends", "silenced"), SILENCES)
def test_evaluation_pages_exactly_when_no_silence_covers_the_alert(
    whose, starts, ends, silenced, patient, nurse, clock, django_capture_on_commit_callbacks
):
    # given: a diabetes patient, a silence, and a level 2 hypoglycaemia reading
    enrolled(patient, "diabetes")
    rule = Rule.objects.get(patient=patient, key="hypoglycemia_level_2")
    silence(patient, rule, nurse, whose, starts, ends)
    post(patient, glucose(HYPO_2["upper"]["value"] - 10))

    # when
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the alert is raised either way; a silenced one is settled with nobody paged (the
    # routing sweep leaves it), another one is routed after commit
    event = AlertEvent.objects.get(alert__patient=patient)
    assert (event.kind, event.alert.rule) == ("raised", rule)
    assert is_silenced(patient_id=patient.pk, rule_id=rule.pk, at=NOW) is silenced
    assert (enqueued, event.routed_at) == (([], NOW) if silenced else ([event.pk], None))


@pytest.mark.parametrize(("whose", "starts", "ends", "silenced"), SILENCES)
def test_routing_pages_exactly_when_no_silence_covers_the_alert(
    whose, starts, ends, silenced, patient, nurse, clock, django_capture_on_commit_callbacks
):
    # given: the nurse on call by email; a critical alert raised now, then a silence (as one
    # set while the event waited for its routing)
    nurse.email = "nurse@clinic.test"
    nurse.save()
    rule = RuleFactory(patient=patient, severity="critical")
    event = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=rule, severity="critical", title=rule.title, detail="", first_at=NOW, last_at=NOW
        ),
        now=NOW,
    ).event
    silence(patient, rule, nurse, whose, starts, ends)

    # when
    with django_capture_on_commit_callbacks():
        notified = route_alert_event(event_id=event.pk, now=NOW)

    # then: routed (claimed) either way; the nurse is paged unless silenced
    assert is_silenced(patient_id=patient.pk, rule_id=rule.pk, at=NOW) is silenced
    pages = list(Notification.objects.values_list("pk", "channel", "target"))
    assert pages == ([] if silenced else [(pages[0][0], "email", "nurse@clinic.test")])
    assert notified == [pk for pk, _, _ in pages]
    assert AlertEvent.objects.get(pk=event.pk).routed_at == NOW


@pytest.mark.parametrize(("whose", "starts", "ends", "silenced"), SILENCES)
def test_the_reminder_sweep_pages_the_adherence_alert_exactly_when_no_silence_covers_it(
    whose, starts, ends, silenced, patient, nurse, clock, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    # given: two weighings in a row left unanswered; the sweep handled the first miss a day
    # ago (which gave the patient the 'reminders unanswered' rule), then a silence was set
    settings.VIGIL_NONRESPONSE_MISSES = 2
    schedule = MeasurementScheduleFactory(patient=patient)
    SlotFactory(schedule=schedule, due_at=NOW - timedelta(days=1, hours=2))
    SlotFactory(schedule=schedule, due_at=NOW - 2 * HOUR)
    assert run_reminder_sweep(now=NOW - timedelta(days=1)) == 1
    rule = Rule.objects.get(patient=patient, group="reminders_unanswered")
    silence(patient, rule, nurse, whose, starts, ends)

    # when: the sweep finds the second slot closed
    with django_capture_on_commit_callbacks() as callbacks:
        assert run_reminder_sweep(now=NOW) == 1

    # then: the adherence alert is raised either way, and routed unless silenced
    alert = Alert.objects.get(patient=patient)
    assert (alert.rule, alert.severity, alert.status) == (rule, rule.severity, "open")
    assert list(Slot.objects.values_list("status", flat=True)) == ["missed", "missed"]
    assert is_silenced(patient_id=patient.pk, rule_id=rule.pk, at=NOW) is silenced
    event = AlertEvent.objects.get(alert=alert)
    assert routings(callbacks) == ([] if silenced else [(ROUTE, (event.pk,))])
