"""alerts/lifecycle.py: raise, re-trigger, clear, acknowledge, resolve, expire; the only
writer of alerts.

At most one unresolved alert per patient and dedupe key (the rule group); a new trigger adds
occurrences and raises the severity if worse, never lowers it; only a person resolves a
warning or critical alert; info alerts expire. Every transition writes an AlertEvent.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import ast
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction

from alerts.lifecycle import (
    InvalidTransition,
    acknowledge_alert,
    expire_info_alerts,
    mark_condition_cleared,
    raise_alert,
    resolve_alert,
)
from alerts.models import Alert, AlertEvent
from tests.alerts.lifecycle_helpers import (  # noqa: F401
    LOW_GLUCOSE,
    MINUTE,
    NOW,
    VERY_LOW_GLUCOSE,
    critical_rule,
    events,
    info_rule,
    rule,
    state,
    trigger,
)
from tests.factories import (
    AlertFactory,
    PatientFactory,
    RuleFactory,
)

pytestmark = pytest.mark.django_db


# --- Raise and re-trigger -----------------------------------------------------------------


def test_a_first_trigger_opens_an_alert_with_a_raised_event_and_asks_for_a_page(patient, rule):
    # when
    raised = raise_alert(patient=patient, trigger=trigger(rule, at=NOW - MINUTE), now=NOW)

    # then
    alert = Alert.objects.get()
    assert raised.alert == alert
    assert raised.notify is True
    assert (alert.patient, alert.rule, alert.dedupe_key) == (patient, rule, "glucose_low")
    assert (alert.kind, alert.metric, alert.severity, alert.status) == (
        "threshold",
        "glucose",
        "warning",
        "open",
    )
    assert (alert.title, alert.occurrences) == ("Level 1 hypoglycaemia", 1)
    assert (alert.first_triggered_at, alert.last_triggered_at) == (NOW - MINUTE, NOW - MINUTE)
    assert (alert.rule_version, alert.rule_parameters) == (1, LOW_GLUCOSE)
    assert (alert.values, alert.reading_ids) == ({"observed": "62 mg/dL"}, [101])
    assert alert.escalation_level == 1
    # The care team's policy: a warning waits 240 minutes for an acknowledgement.
    assert alert.next_escalation_at == NOW + timedelta(minutes=240)
    assert alert.expires_at is None
    assert events(alert) == [
        ("raised", None, NOW, "", {"severity": "warning", "rule_version": 1}),
    ]
    assert raised.event.pk == AlertEvent.objects.get().pk


def test_a_critical_alert_must_be_acknowledged_within_fifteen_minutes(patient, critical_rule):
    raised = raise_alert(patient=patient, trigger=trigger(critical_rule), now=NOW)

    assert raised.alert.next_escalation_at == NOW + timedelta(minutes=15)


def test_a_new_trigger_of_an_open_alert_adds_occurrences_instead_of_a_second_alert(patient, rule):
    # given
    first = raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)

    # when
    again = raise_alert(
        patient=patient,
        trigger=trigger(rule, at=NOW + 5 * MINUTE, occurrences=2, reading_ids=(102, 103)),
        now=NOW + 6 * MINUTE,
    )

    # then: the same alert, three occurrences, nobody paged again
    assert Alert.objects.count() == 1
    assert again.alert.pk == first.alert.pk
    assert (again.notify, again.event) == (False, None)
    alert = Alert.objects.get()
    assert alert.occurrences == 3
    assert again.alert.occurrences == 3
    assert (alert.first_triggered_at, alert.last_triggered_at) == (NOW, NOW + 5 * MINUTE)
    # An equal finding is an occurrence: the alert keeps showing the first one.
    assert alert.reading_ids == [101]
    # The escalation clock runs from the first trigger, not the latest.
    assert alert.next_escalation_at == NOW + timedelta(minutes=240)
    assert [kind for kind, *_ in events(alert)] == ["raised"]


def test_an_older_trigger_does_not_move_the_last_triggered_time_back(patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)

    raise_alert(patient=patient, trigger=trigger(rule, at=NOW - 30 * MINUTE), now=NOW + MINUTE)

    alert = Alert.objects.get()
    assert (alert.occurrences, alert.last_triggered_at) == (2, NOW)
    # ...but a backfilled older one moves the first trigger back: the problem began earlier.
    assert alert.first_triggered_at == NOW - 30 * MINUTE


def test_a_finding_measured_before_the_clearing_reading_leaves_the_alert_cleared(patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)
    mark_condition_cleared(patient_id=patient.pk, group=rule.group, at=NOW + 10 * MINUTE)

    raise_alert(patient=patient, trigger=trigger(rule, at=NOW + 5 * MINUTE), now=NOW + 60 * MINUTE)
    assert Alert.objects.get().condition_cleared_at == NOW + 10 * MINUTE

    raise_alert(patient=patient, trigger=trigger(rule, at=NOW + 20 * MINUTE), now=NOW + 60 * MINUTE)
    assert Alert.objects.get().condition_cleared_at is None


def test_a_worse_trigger_raises_the_severity_pages_again_and_restarts_the_clock(
    patient, rule, critical_rule
):
    # given
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)

    # when
    worse = raise_alert(
        patient=patient, trigger=trigger(critical_rule, at=NOW + 9 * MINUTE), now=NOW + 10 * MINUTE
    )

    # then
    alert = Alert.objects.get()
    assert worse.notify is True
    assert (alert.severity, alert.status, alert.occurrences) == ("critical", "open", 2)
    assert (alert.rule, alert.title) == (critical_rule, "Level 2 hypoglycaemia")
    assert (alert.rule_version, alert.rule_parameters) == (1, VERY_LOW_GLUCOSE)
    assert alert.next_escalation_at == NOW + 25 * MINUTE
    assert events(alert)[1:] == [
        (
            "severity_raised",
            None,
            NOW + 10 * MINUTE,
            "",
            {
                "previous": "warning",
                "severity": "critical",
                "previous_title": "Level 1 hypoglycaemia",
                "title": "Level 2 hypoglycaemia",
                "previous_values": {"observed": "62 mg/dL"},
                "values": {"observed": "62 mg/dL"},
                "rule_version": 1,
            },
        )
    ]
    assert worse.event.kind == "severity_raised"


def test_a_milder_trigger_never_lowers_the_severity(patient, rule, critical_rule):
    raise_alert(patient=patient, trigger=trigger(critical_rule), now=NOW)

    milder = raise_alert(patient=patient, trigger=trigger(rule, at=NOW + MINUTE), now=NOW + MINUTE)

    alert = Alert.objects.get()
    assert (milder.notify, milder.event) == (False, None)
    assert (alert.severity, alert.rule, alert.occurrences) == ("critical", critical_rule, 2)
    assert alert.next_escalation_at == NOW + 15 * MINUTE
    assert [kind for kind, *_ in events(alert)] == ["raised"]


def test_an_equal_trigger_leaves_an_acknowledged_alert_acknowledged(patient, rule, nurse):
    raised = raise_alert(patient=patient, trigger=trigger(rule), now=NOW)
    acknowledge_alert(alert=raised.alert, user=nurse, now=NOW + MINUTE)

    again = raise_alert(patient=patient, trigger=trigger(rule, at=NOW + 2 * MINUTE), now=NOW)

    alert = Alert.objects.get()
    assert (again.notify, again.event) == (False, None)
    assert (alert.status, alert.occurrences, alert.next_escalation_at) == ("acknowledged", 2, None)


def test_a_worse_trigger_reopens_an_acknowledged_alert(patient, rule, critical_rule, nurse):
    # given
    raised = raise_alert(patient=patient, trigger=trigger(rule), now=NOW)
    acknowledge_alert(alert=raised.alert, user=nurse, now=NOW + MINUTE)

    # when
    worse = raise_alert(
        patient=patient, trigger=trigger(critical_rule, at=NOW + 20 * MINUTE), now=NOW + 20 * MINUTE
    )

    # then: the worse problem needs a person again, and its escalation clock starts
    alert = Alert.objects.get()
    assert worse.notify is True
    assert (alert.status, alert.severity) == ("open", "critical")
    assert (alert.acknowledged_by_id, alert.acknowledged_at, alert.repeats) == (None, None, 0)
    assert alert.next_escalation_at == NOW + 35 * MINUTE
    assert [kind for kind, *_ in events(alert)] == ["raised", "acknowledged", "severity_raised"]


def test_a_trigger_after_resolution_opens_a_new_alert(patient, rule, physician):
    # given
    old = raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW).alert
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW + MINUTE), now=NOW + MINUTE)
    resolve_alert(alert=old, user=physician, note="treated", now=NOW + 10 * MINUTE)

    # when
    new = raise_alert(
        patient=patient, trigger=trigger(rule, at=NOW + 60 * MINUTE), now=NOW + 60 * MINUTE
    )

    # then
    assert new.notify is True
    assert new.alert.pk != old.pk
    assert Alert.objects.filter(status="resolved").get().pk == old.pk
    assert (state(old)["occurrences"], state(new.alert)["occurrences"]) == (2, 1)
    assert state(new.alert)["status"] == "open"
    assert [kind for kind, *_ in events(old)] == ["raised", "resolved"]
    assert [kind for kind, *_ in events(new.alert)] == ["raised"]


def test_groups_and_patients_each_have_their_own_alert(patient, rule):
    other_group = RuleFactory(patient=patient, key="glucose_high", group="glucose_high")
    other_patient = PatientFactory(care_team=patient.care_team)
    others_rule = RuleFactory(patient=other_patient, key="glucose_low", group="glucose_low")

    raise_alert(patient=patient, trigger=trigger(rule), now=NOW)
    raise_alert(patient=patient, trigger=trigger(other_group), now=NOW)
    raise_alert(patient=other_patient, trigger=trigger(others_rule), now=NOW)

    assert sorted(Alert.objects.values_list("patient_id", "dedupe_key", "occurrences")) == sorted(
        [
            (patient.pk, "glucose_low", 1),
            (patient.pk, "glucose_high", 1),
            (other_patient.pk, "glucose_low", 1),
        ]
    )


# --- The partial unique index -------------------------------------------------------------


@pytest.mark.parametrize("status", ["open", "acknowledged"])
def test_the_database_refuses_a_second_unresolved_alert_for_a_patient_and_key(patient, status):
    existing = AlertFactory(patient=patient, status=status)

    with pytest.raises(IntegrityError), transaction.atomic():
        AlertFactory(patient=patient, rule=existing.rule)

    assert list(Alert.objects.values_list("pk", flat=True)) == [existing.pk]


def test_the_database_allows_a_new_alert_once_the_old_one_is_resolved(patient):
    resolved = AlertFactory(patient=patient, status="resolved")

    AlertFactory(patient=patient, rule=resolved.rule)
    AlertFactory(patient=patient, rule=resolved.rule, status="resolved")

    assert Alert.objects.filter(dedupe_key=resolved.dedupe_key).count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_racing_raisers_make_one_alert_with_both_occurrences(patient, rule):
    # given: the first raiser has inserted the alert and not committed yet
    results = {}
    inserted, finish = threading.Event(), threading.Event()

    def first():
        try:
            with transaction.atomic():
                results["first"] = raise_alert(patient=patient, trigger=trigger(rule), now=NOW)
                inserted.set()
                finish.wait(timeout=30)
        finally:
            connection.close()

    def second():
        inserted.wait(timeout=30)
        try:
            results["second"] = raise_alert(
                patient=patient, trigger=trigger(rule, at=NOW + MINUTE), now=NOW + MINUTE
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()

    # when: the second raiser's insert waits on the unique index, then the first commits
    wait_until_a_backend_waits_on_a_lock()
    finish.set()
    for thread in threads:
        thread.join(timeout=30)

    # then
    alert = Alert.objects.get()
    assert alert.occurrences == 2
    assert alert.last_triggered_at == NOW + MINUTE
    assert (results["first"].notify, results["second"].notify) == (True, False)
    assert [kind for kind, *_ in events(alert)] == ["raised"]


def test_a_group_the_caller_saw_without_an_alert_is_inserted_without_looking_first(
    patient, rule, django_assert_num_queries
):
    # The evaluation read the patient's unresolved alerts under the patient's lock: none.
    with django_assert_num_queries(4) as captured:  # savepoint, insert, release, event
        raised = raise_alert(
            patient=patient, trigger=trigger(rule), now=NOW, unresolved_groups=set()
        )

    assert [query["sql"].split()[0] for query in captured.captured_queries] == [
        "SAVEPOINT",
        "INSERT",
        "RELEASE",
        "INSERT",
    ]
    assert raised.notify is True
    assert Alert.objects.get() == raised.alert


def test_a_group_said_to_have_no_alert_still_folds_into_one_raised_meanwhile(patient, rule):
    # given: an alert of the group was raised after the caller looked (the reminder sweep
    # raises without the patient's lock)
    first = raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)

    # when
    again = raise_alert(
        patient=patient,
        trigger=trigger(rule, at=NOW + MINUTE),
        now=NOW + MINUTE,
        unresolved_groups=set(),
    )

    # then: the insert lost to the partial unique index; the trigger folded
    alert = Alert.objects.get()
    assert again.alert.pk == first.alert.pk == alert.pk
    assert (alert.occurrences, alert.last_triggered_at) == (2, NOW + MINUTE)
    assert again.notify is False
    assert [kind for kind, *_ in events(alert)] == ["raised"]


@pytest.mark.django_db(transaction=True)
def test_folding_locks_the_alert_row_and_not_its_patient_or_care_team(patient, rule):
    # given: a fold in a transaction that has not committed yet
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)
    folded, finish = threading.Event(), threading.Event()

    def fold():
        try:
            with transaction.atomic():
                raise_alert(patient=patient, trigger=trigger(rule, at=NOW + MINUTE), now=NOW)
                folded.set()
                finish.wait(timeout=30)
        finally:
            connection.close()

    folder = threading.Thread(target=fold)
    folder.start()
    try:
        assert folded.wait(timeout=30)
        # when: another transaction wants the patient's and the team's rows
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM monitoring_patient WHERE id = %s FOR UPDATE NOWAIT",
                [patient.pk],
            )
            cursor.execute(
                "SELECT id FROM alerts_careteam WHERE id = %s FOR UPDATE NOWAIT",
                [patient.care_team_id],
            )
            locked_patient_and_team = cursor.fetchall()
            # then: the alert's own row is the one held
            with pytest.raises(OperationalError), transaction.atomic():
                cursor.execute(
                    "SELECT id FROM alerts_alert WHERE patient_id = %s FOR UPDATE NOWAIT",
                    [patient.pk],
                )
    finally:
        finish.set()
        folder.join(timeout=30)
    assert locked_patient_and_team == [(patient.care_team_id,)]


def wait_until_a_backend_waits_on_a_lock(timeout: float = 10) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while datetime.now(UTC) < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        threading.Event().wait(0.02)
    pytest.fail("no backend ever waited on a lock")


# --- The condition clears -----------------------------------------------------------------


def test_a_cleared_condition_is_shown_and_the_alert_stays_for_a_person(patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)

    cleared = mark_condition_cleared(
        patient_id=patient.pk, group="glucose_low", at=NOW + 30 * MINUTE
    )

    alert = Alert.objects.get()
    assert cleared.pk == alert.pk
    assert (alert.status, alert.condition_cleared_at) == ("open", NOW + 30 * MINUTE)
    assert alert.next_escalation_at == NOW + timedelta(minutes=240)
    assert events(alert)[1:] == [("condition_cleared", None, NOW + 30 * MINUTE, "", {})]


def test_clearing_again_or_a_group_without_an_alert_changes_nothing(patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)
    mark_condition_cleared(patient_id=patient.pk, group="glucose_low", at=NOW + MINUTE)
    before = state(Alert.objects.get())

    assert mark_condition_cleared(patient_id=patient.pk, group="glucose_low", at=NOW) is None
    assert (
        mark_condition_cleared(patient_id=patient.pk, group="glucose_low", at=NOW + 9 * MINUTE)
        is None
    )
    assert mark_condition_cleared(patient_id=patient.pk, group="no_such_group", at=NOW) is None

    assert state(Alert.objects.get()) == before
    assert AlertEvent.objects.filter(kind="condition_cleared").count() == 1


def test_an_earlier_clearing_than_the_last_trigger_is_ignored(patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)

    assert (
        mark_condition_cleared(patient_id=patient.pk, group="glucose_low", at=NOW - MINUTE) is None
    )
    assert state(Alert.objects.get())["condition_cleared_at"] is None
    assert AlertEvent.objects.filter(kind="condition_cleared").count() == 0


def test_a_new_trigger_after_clearing_shows_the_condition_again(patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule, at=NOW), now=NOW)
    mark_condition_cleared(patient_id=patient.pk, group="glucose_low", at=NOW + MINUTE)

    raise_alert(patient=patient, trigger=trigger(rule, at=NOW + 2 * MINUTE), now=NOW)

    assert state(Alert.objects.get())["condition_cleared_at"] is None


# --- Acknowledge and resolve --------------------------------------------------------------


def test_acknowledging_records_who_and_why_and_stops_the_escalation(patient, rule, nurse):
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert

    acknowledged = acknowledge_alert(
        alert=alert, user=nurse, note="Calling the patient", now=NOW + MINUTE
    )

    assert acknowledged.status == "acknowledged"
    fresh = Alert.objects.get()
    assert (fresh.status, fresh.acknowledged_by, fresh.acknowledged_at) == (
        "acknowledged",
        nurse,
        NOW + MINUTE,
    )
    assert (fresh.assignee, fresh.next_escalation_at) == (nurse, None)
    assert events(alert)[1:] == [("acknowledged", "nurse", NOW + MINUTE, "Calling the patient", {})]


def test_acknowledging_keeps_an_earlier_assignee(patient, rule, nurse, physician):
    alert = AlertFactory(patient=patient, rule=rule, assignee=physician)

    acknowledge_alert(alert=alert, user=nurse, now=NOW)

    assert state(alert)["assignee_id"] == physician.pk


def test_acknowledging_an_acknowledged_alert_changes_nothing_but_keeps_the_note(
    patient, rule, nurse, physician
):
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert
    acknowledge_alert(alert=alert, user=nurse, now=NOW + MINUTE)
    before = state(alert)

    acknowledge_alert(alert=alert, user=physician, note="me too", now=NOW + 2 * MINUTE)

    assert state(alert) == before
    assert [(kind, actor, note) for kind, actor, _, note, _ in events(alert)] == [
        ("raised", None, ""),
        ("acknowledged", "nurse", ""),
        ("note", "physician", "me too"),
    ]


def test_acknowledging_an_acknowledged_alert_without_a_note_writes_nothing(
    patient, rule, nurse, physician
):
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert
    acknowledge_alert(alert=alert, user=nurse, now=NOW + MINUTE)

    acknowledge_alert(alert=alert, user=physician, now=NOW + 2 * MINUTE)

    assert [kind for kind, *_ in events(alert)] == ["raised", "acknowledged"]


def test_resolving_records_who_and_why_and_ends_every_deadline(patient, rule, physician):
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert

    resolve_alert(alert=alert, user=physician, note="Juice taken, 5.8 mmol/L", now=NOW + MINUTE)

    fresh = Alert.objects.get()
    assert (fresh.status, fresh.resolved_by, fresh.resolved_at) == (
        "resolved",
        physician,
        NOW + MINUTE,
    )
    assert (fresh.next_escalation_at, fresh.expires_at) == (None, None)
    assert events(alert)[1:] == [
        ("resolved", "physician", NOW + MINUTE, "Juice taken, 5.8 mmol/L", {})
    ]


def test_an_acknowledged_alert_can_be_resolved(patient, rule, nurse, physician):
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert
    acknowledge_alert(alert=alert, user=nurse, now=NOW + MINUTE)

    resolve_alert(alert=alert, user=physician, now=NOW + 2 * MINUTE)

    assert state(alert)["status"] == "resolved"
    assert [kind for kind, *_ in events(alert)] == ["raised", "acknowledged", "resolved"]


@pytest.mark.parametrize("transition", [acknowledge_alert, resolve_alert])
def test_a_resolved_alert_can_be_neither_acknowledged_nor_resolved_again(
    patient, rule, nurse, physician, transition
):
    alert = raise_alert(patient=patient, trigger=trigger(rule), now=NOW).alert
    resolve_alert(alert=alert, user=physician, now=NOW + MINUTE)
    before = state(alert)

    with pytest.raises(InvalidTransition):
        transition(alert=alert, user=nurse, note="late", now=NOW + 2 * MINUTE)

    assert state(alert) == before
    assert [kind for kind, *_ in events(alert)] == ["raised", "resolved"]


# --- The only writer ----------------------------------------------------------------------

WRITES = {"save", "create", "bulk_create", "update", "bulk_update", "delete", "get_or_create"}


def _writes_to_alerts(tree: ast.AST) -> list[int]:
    """Lines that make or write Alert/AlertEvent rows: `Alert(...)`, `AlertEvent.objects
    .create(...)`, `Alert.objects.filter(...).update(...)`, or `.save()` on a name `alert`
    (how the code names an alert row)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in {"Alert", "AlertEvent"}:
            lines.append(node.lineno)
        if not (isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
            continue
        root = node.func.value
        while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
            root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and (
            root.id in {"Alert", "AlertEvent"} or (node.func.attr == "save" and root.id == "alert")
        ):
            lines.append(node.lineno)
    return lines


def test_no_module_but_the_lifecycle_writes_alerts_or_their_events():
    base = settings.BASE_DIR
    writers = {}
    for app in ("alerts", "monitoring", "config"):
        for path in sorted((base / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = _writes_to_alerts(ast.parse(path.read_text()))
            if lines:
                writers[str(path.relative_to(base))] = lines
    assert list(writers) == ["alerts/lifecycle.py"]


# --- Info alerts expire -------------------------------------------------------------------


def test_an_info_alert_expires_on_its_own_a_ttl_after_its_last_trigger(
    settings, time_machine, patient, info_rule
):
    # given
    settings.VIGIL_INFO_ALERT_TTL = timedelta(hours=24)
    alert = raise_alert(patient=patient, trigger=trigger(info_rule, at=NOW), now=NOW).alert
    assert (alert.next_escalation_at, alert.expires_at) == (None, NOW + timedelta(hours=24))
    raise_alert(patient=patient, trigger=trigger(info_rule, at=NOW + timedelta(hours=6)), now=NOW)

    # when: a day after the first trigger, but not after the last
    time_machine.move_to(NOW + timedelta(hours=24), tick=False)
    assert expire_info_alerts() == 0
    assert state(alert)["status"] == "open"

    # when: a day after the last
    time_machine.move_to(NOW + timedelta(hours=30), tick=False)
    assert expire_info_alerts() == 1

    # then
    fresh = Alert.objects.get()
    assert (
        fresh.status,
        fresh.resolved_by,
        fresh.resolved_at,
        fresh.expires_at,
        fresh.resolution_reason,
    ) == ("resolved", None, NOW + timedelta(hours=30), None, "expired")
    assert events(alert)[1:] == [
        ("expired", None, NOW + timedelta(hours=30), "", {"reason": "expired"})
    ]
    assert expire_info_alerts() == 0


def test_warning_and_critical_alerts_never_expire(time_machine, patient, rule):
    raise_alert(patient=patient, trigger=trigger(rule), now=NOW)
    other = RuleFactory(patient=patient, key="crit", group="crit", severity="critical")
    raise_alert(patient=patient, trigger=trigger(other), now=NOW)

    time_machine.move_to(NOW + timedelta(days=365), tick=False)

    assert expire_info_alerts() == 0
    assert list(Alert.objects.values_list("status", "expires_at")) == [("open", None)] * 2
    assert not AlertEvent.objects.filter(kind="expired").exists()


def test_an_info_alert_that_turns_into_a_warning_no_longer_expires(patient, info_rule):
    raise_alert(patient=patient, trigger=trigger(info_rule), now=NOW)

    raise_alert(patient=patient, trigger=trigger(info_rule, severity="warning"), now=NOW)

    alert = Alert.objects.get()
    assert (alert.severity, alert.expires_at) == ("warning", None)
    assert alert.next_escalation_at == NOW + timedelta(minutes=240)
    assert expire_info_alerts(now=NOW + timedelta(days=30)) == 0
