"""Readings in through record_readings, alerts out of evaluate_pending_readings
(monitoring/evaluation/readings.py): exact alerts, boundaries, stale data, per-patient
values, idempotency and bounded queries.

Clinical numbers come from the clinical reference (read in the test, or cited by path).
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert, AlertEvent
from monitoring.display import format_instant
from monitoring.evaluation import (
    evaluate_pending_readings,
)
from monitoring.evaluation.locking import PATIENT_LOCK
from monitoring.ingest import record_readings
from monitoring.models import Reading, Rule
from monitoring.patient_rules import change_rule
from tests.factories import PatientFactory
from tests.monitoring.evaluation.helpers import (
    HR_HIGH_CRITICAL,
    HYPO_1,
    HYPO_2,
    INR_RANGE,
    LOW_GLUCOSE,
    NORMAL_GLUCOSE,
    NOW,
    SPO2_COPD_WARNING,
    alerts_of,
    clock,  # noqa: F401
    enrolled,
    evaluate,
    events_of,
    glucose,
    item,
    pending,
    post,
    snapshot,
)
from tests.monitoring.rules.conftest import template
from tests.wire import round_trips

# --- One reading, one exact alert -----------------------------------------------------------


@pytest.mark.django_db
def test_2_8_mmol_per_l_raises_a_critical_level_2_alert_recording_the_rule_that_fired(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: 2.8 mmol/L is 50.4 mg/dL, below the level-2 limit (< 3.0 mmol/L, < 54 mg/dL)
    enrolled(patient, "diabetes")
    post(patient, glucose(2.8, unit="mmol/L"))
    reading = Reading.objects.get(patient=patient)

    # when
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then
    alert = Alert.objects.get(patient=patient)
    level_2 = Rule.objects.get(patient=patient, key="hypoglycemia_level_2")
    assert (
        alert.dedupe_key, alert.severity, alert.status, alert.occurrences, alert.rule,
        alert.rule_version, alert.rule_parameters, alert.values, alert.reading_ids,
        alert.first_triggered_at, alert.last_triggered_at, alert.title,
    ) == (
        "glucose_low", "critical", "open", 1, level_2,
        1, template("hypoglycemia_level_2").parameters, {"observed": "50 mg/dL"}, [reading.pk],
        NOW - timedelta(hours=1), NOW - timedelta(hours=1), "Glucose is below 54 mg/dL",
    )  # fmt: skip
    event = AlertEvent.objects.get(alert=alert)
    assert (event.kind, event.data, event.at) == (
        "raised",
        {"severity": "critical", "rule_version": 1},
        NOW,
    )
    assert enqueued == [event.pk]
    assert Reading.objects.get(pk=reading.pk).evaluated_at == NOW


@pytest.mark.django_db
def test_176_to_179_8_lb_from_one_morning_to_the_next_raises_a_heart_failure_weight_gain(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: yesterday morning's weight, evaluated when it arrived
    enrolled(patient, "heart_failure")
    clock.move_to(NOW - timedelta(days=1), tick=False)
    post(patient, item("weight", value=176, unit="lb"))
    assert evaluate(patient, django_capture_on_commit_callbacks) == []

    # when: this morning's, 3.8 lb (1.72 kg) heavier: above hf_gain_1_day's 0.9 kg
    clock.move_to(NOW, tick=False)
    post(patient, item("weight", value=179.8, unit="lb"))
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then
    assert alerts_of(patient) == [("weight_gain", "warning", "open", 1, "hf_gain_1_day", 1)]
    alert = Alert.objects.get(patient=patient)
    yesterday, today = Reading.objects.filter(patient=patient).order_by("measured_at")
    assert (alert.values, alert.reading_ids) == (
        {"change": 1.724, "from": yesterday.value, "to": today.value},
        [yesterday.pk, today.pk],
    )
    assert enqueued == [AlertEvent.objects.get(alert=alert).pk]


@pytest.mark.django_db
def test_readings_that_meet_no_rule_raise_nothing_and_are_marked_evaluated(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes", "copd")
    post(patient, glucose(NORMAL_GLUCOSE), item("spo2", value=94), item("heart_rate", value=72))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert (alerts_of(patient), events_of(patient), enqueued, pending(patient)) == ([], [], [], 0)


# --- Boundaries -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("protocol", "kind", "value", "expected"),
    [
        # blood_glucose.thresholds: exactly 54 mg/dL is level 1 (>= 54), not level 2 (< 54)
        ("diabetes", "glucose", HYPO_1["lower"]["value"],
         [("glucose_low", "warning", "open", 1, "hypoglycemia_level_1", 1)]),
        ("diabetes", "glucose", HYPO_1["lower"]["value"] - 1,
         [("glucose_low", "critical", "open", 1, "hypoglycemia_level_2", 1)]),
        # exactly 70 mg/dL is no hypoglycaemia (level 1 is < 70)
        ("diabetes", "glucose", HYPO_1["upper"]["value"], []),
        # spo2.thresholds.spo2_copd_warning: SpO2 <= 87 % -> exactly 87 is a warning, 88 nothing
        ("copd", "spo2", SPO2_COPD_WARNING,
         [("spo2_low", "warning", "open", 1, "spo2_copd_warning", 1)]),
        ("copd", "spo2", SPO2_COPD_WARNING + 1, []),
        # inr.target_ranges.0: 2.0 and 3.0 are in range
        ("anticoagulation", "inr", INR_RANGE["low"], []),
        ("anticoagulation", "inr", INR_RANGE["high"], []),
    ],
    ids=[
        "glucose 54 is level 1", "glucose 53 is level 2", "glucose 70 is no hypo",
        "SpO2 87 is a COPD warning", "SpO2 88 is in the COPD target",
        "INR 2.0 is in range", "INR 3.0 is in range",
    ],
)  # fmt: skip
def test_a_reading_exactly_at_a_reference_boundary(
    protocol, kind, value, expected, patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, protocol)
    post(patient, item(kind, value=value, **({"unit": "mg/dL"} if kind == "glucose" else {})))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == expected
    assert pending(patient) == 0


# --- Stale data -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stale_critical_reading_raises_an_alert_marked_late_with_its_measured_time(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: a phone offline for days uploads a level-2 low measured before the stale age
    enrolled(patient, "diabetes")
    stale = settings.VIGIL_STALE_READING_AGE + timedelta(minutes=1)
    post(patient, glucose(HYPO_2["upper"]["value"] - 10, stale))

    # when
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the team reviews it, told when it was measured
    measured = (NOW - stale).astimezone(patient.zone)
    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.title, alert.values, len(enqueued)) == (
        "critical",
        f"Late reading, measured {format_instant(measured, patient.zone)}: "
        "Glucose is below 54 mg/dL",
        {
            "observed": f"{HYPO_2['upper']['value'] - 10} mg/dL",
            "late": True,
            "measured": f"{measured:%Y-%m-%d %H:%M %Z}",
        },
        1,
    )
    assert list(Reading.objects.filter(patient=patient).values_list("evaluated_at", flat=True)) == [
        NOW
    ]


@pytest.mark.django_db
def test_a_stale_warning_raises_nothing_but_is_marked_evaluated(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    stale = settings.VIGIL_STALE_READING_AGE + timedelta(minutes=1)
    post(patient, glucose(LOW_GLUCOSE, stale))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert (alerts_of(patient), events_of(patient), enqueued) == ([], [], [])
    assert list(Reading.objects.filter(patient=patient).values_list("evaluated_at", flat=True)) == [
        NOW
    ]


@pytest.mark.django_db
def test_a_reading_exactly_the_stale_age_old_still_alerts(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    post(patient, glucose(HYPO_2["upper"]["value"] - 10, settings.VIGIL_STALE_READING_AGE))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [("glucose_low", "critical", "open", 1, "hypoglycemia_level_2", 1)]


# --- Per-patient values win -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_tailored_rule_beats_the_default_and_the_alert_records_its_version(
    team, physician, clock, django_capture_on_commit_callbacks
):
    # given: two diabetes patients; one's level-1 limit raised to < 80 mg/dL
    tailored, default = PatientFactory.create_batch(2, care_team=team)
    enrolled(tailored, "diabetes")
    enrolled(default, "diabetes")
    higher = {
        "conditions": [
            {"component": "value", "op": "ge", "value": HYPO_1["lower"]["value"]},
            {"component": "value", "op": "lt", "value": 80},
        ],
        "match": "all",
    }
    change_rule(
        rule=Rule.objects.get(patient=tailored, key="hypoglycemia_level_1"),
        user=physician,
        parameters=higher,
    )
    between = HYPO_1["upper"]["value"] + 5  # 75 mg/dL: low for one of them only

    # when
    post(tailored, glucose(between))
    post(default, glucose(between))
    evaluate(tailored, django_capture_on_commit_callbacks)
    evaluate(default, django_capture_on_commit_callbacks)

    # then
    assert alerts_of(tailored) == [("glucose_low", "warning", "open", 1, "hypoglycemia_level_1", 2)]
    assert Alert.objects.get(patient=tailored).rule_parameters == higher
    assert [data for _, _, data in events_of(tailored)] == [
        {"severity": "warning", "rule_version": 2}
    ]
    assert alerts_of(default) == []


@pytest.mark.django_db
def test_a_loosened_rule_stays_quiet_where_the_default_would_alert(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    # A COPD patient whose usual saturation is 86 %: the clinician sets the warning at <= 85.
    enrolled(patient, "copd")
    change_rule(
        rule=Rule.objects.get(patient=patient, key="spo2_copd_warning"),
        user=physician,
        parameters={"conditions": [{"component": "value", "op": "le", "value": 85}]},
    )
    post(patient, item("spo2", value=SPO2_COPD_WARNING - 1))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert (alerts_of(patient), events_of(patient), enqueued, pending(patient)) == ([], [], [], 0)


@pytest.mark.django_db
def test_an_open_alert_fired_again_by_its_tailored_rule_records_the_new_version(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    # given: an open level-1 alert raised by the default (version 1)
    enrolled(patient, "diabetes")
    post(patient, glucose(LOW_GLUCOSE, timedelta(hours=3)))
    evaluate(patient, django_capture_on_commit_callbacks)
    level_1 = Rule.objects.get(patient=patient, key="hypoglycemia_level_1")
    higher = level_1.parameters | {
        "conditions": [
            {"component": "value", "op": "ge", "value": HYPO_1["lower"]["value"]},
            {"component": "value", "op": "lt", "value": 80},
        ]
    }

    # when: the clinician raises the limit and a 75 mg/dL reading fires the new version
    change_rule(rule=level_1, user=physician, parameters=higher)
    post(patient, glucose(HYPO_1["upper"]["value"] + 5))
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: the new version is recorded; the values stay those of the worse (lower) reading
    alert = Alert.objects.get(patient=patient)
    assert (alert.occurrences, alert.rule_version, alert.rule_parameters, alert.values) == (
        2,
        2,
        higher,
        {"observed": f"{LOW_GLUCOSE} mg/dL"},
    )


@pytest.mark.django_db
def test_a_switched_off_rule_raises_nothing(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "copd")
    for key in ("spo2_copd_warning", "spo2_copd_critical"):
        change_rule(rule=Rule.objects.get(patient=patient, key=key), user=physician, active=False)
    post(patient, item("spo2", value=SPO2_COPD_WARNING - 10))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == []


# --- Idempotency ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_evaluating_again_changes_nothing(patient, clock, django_capture_on_commit_callbacks):
    # given: an evaluated upload that raised alerts on several metrics
    enrolled(patient, "diabetes", "copd")
    upload = [
        glucose(LOW_GLUCOSE, timedelta(hours=2)),
        glucose(HYPO_2["upper"]["value"] - 4),
        item("spo2", value=SPO2_COPD_WARNING),
        item("heart_rate", value=HR_HIGH_CRITICAL),
    ]
    post(patient, *upload)
    evaluate(patient, django_capture_on_commit_callbacks)
    before = snapshot(patient)
    assert len(before[0]) == 3

    # when: the task runs again (redelivery), later; the app re-sends the same upload, and
    # the task runs once more
    clock.move_to(NOW + timedelta(minutes=5), tick=False)
    with django_capture_on_commit_callbacks() as callbacks:
        counts = [evaluate_pending_readings(patient_id=patient.pk)]
        resent = record_readings(patient=patient, items=upload)
        counts.append(evaluate_pending_readings(patient_id=patient.pk))

    # then
    assert (resent.created, resent.count("duplicate")) == (0, len(upload))
    assert (counts, callbacks) == ([0, 0], [])
    assert snapshot(patient) == before


# --- Bounded queries ------------------------------------------------------------------------


def mixed_upload(per_metric: int) -> list[dict]:
    """Readings of five metrics over the last 20 hours; the same alerts fire whatever the size:
    level-1 lows (glucose) and the COPD SpO2 warning, with weight, BP and pulse normal."""
    step = timedelta(hours=20) / per_metric
    items = []
    for i in range(per_metric):
        before = timedelta(minutes=5) + step * i
        items += [
            glucose(LOW_GLUCOSE, before),
            item("spo2", before, value=SPO2_COPD_WARNING),
            item("heart_rate", before, value=72),
            item("weight", before, value=80.0, unit="kg"),
            item("blood_pressure", before, systolic=124, diastolic=78),
        ]
    return items


@pytest.mark.django_db
def test_evaluation_makes_as_many_queries_for_200_readings_as_for_one_per_metric(
    team, clock, django_assert_max_num_queries
):
    # given: the same patient set-up twice, one with 5 pending readings, one with 200
    few, many = PatientFactory.create_batch(2, care_team=team)
    for patient in (few, many):
        enrolled(patient, "heart_failure", "hypertension", "diabetes", "copd")
    post(few, *mixed_upload(1))
    post(many, *mixed_upload(40))
    with CaptureQueriesContext(connection) as baseline:
        assert evaluate_pending_readings(patient_id=few.pk) == 5

    # when / then
    with django_assert_max_num_queries(len(baseline)):
        assert evaluate_pending_readings(patient_id=many.pk) == 200
    assert sorted(a[:2] for a in alerts_of(many)) == sorted(a[:2] for a in alerts_of(few))
    assert sorted(a[:4] for a in alerts_of(many)) == [
        ("glucose_low", "warning", "open", 40),
        ("spo2_low", "warning", "open", 40),
    ]


# --- Round trips ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.direct_database  # behind a pooler nothing is prepared, nor sent together
@pytest.mark.django_db(transaction=True)
def test_a_live_reading_is_evaluated_in_four_round_trips(team, clock):
    # given: two patients with a normal glucose waiting, on a new connection (whose
    # statements are prepared, and so sent with their text, on first use)
    first, second = PatientFactory.create_batch(2, care_team=team)
    for patient in (first, second):
        enrolled(patient, "diabetes", "hypertension")
        post(patient, glucose(NORMAL_GLUCOSE))
    connection.close()

    # when
    with round_trips() as new_connection:
        assert evaluate_pending_readings(patient_id=first.pk) == 1
    with round_trips() as prepared:
        assert evaluate_pending_readings(patient_id=second.pk) == 1

    # then: the lock and the pending readings in one round trip; the rules, the schedules,
    # the unresolved alerts and the update of evaluated_at in the next (psycopg's BEGIN has
    # one of its own)
    statements = [[named(text) for text in trip.statements()] for trip in new_connection]
    assert statements[:3] == [
        ["BEGIN"],
        ["unnest($2::integer[])", '"monitoring_reading"'],
        ['"monitoring_rule"', '"monitoring_measurementschedule"', '"alerts_alert"', "UPDATE"],
    ]
    assert statements[-1] == ["COMMIT"]
    # once prepared: BEGIN; lock + pending; rules + schedules + alerts + update; COMMIT
    assert [trip.executes() for trip in prepared] == [1, 2, 4, 1]


def named(statement: str) -> str:
    """A statement by what it reads (its first FROM) or does (its first word)."""
    if " FROM " in statement:
        return statement.split(" FROM ")[-1].split()[0]
    return statement.split()[0]


@pytest.mark.postgres
@pytest.mark.direct_database
@pytest.mark.django_db
def test_the_evaluations_statements_are_planned_once_not_at_every_reading(team, clock):
    # given: a patient whose readings arrive one by one, each evaluated on arrival
    patient = enrolled(PatientFactory(care_team=team), "diabetes", "hypertension")

    # when: more readings than PostgreSQL plans anew before it weighs a generic plan (5)
    for minutes in range(8):
        post(patient, glucose(NORMAL_GLUCOSE, timedelta(minutes=minutes)))
        assert evaluate_pending_readings(patient_id=patient.pk) == 1

    # then: the lock, the pending readings, the rules, the schedules, the unresolved alerts
    # and the update of the (partitioned) readings each have one plan, planned once
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE generic_plans + custom_plans >= 8"
        )
        plans = {named(statement): (generic, custom) for statement, generic, custom in cursor}
    for statement in ["unnest($2::integer[])", '"monitoring_reading"', '"monitoring_rule"',
                      '"monitoring_measurementschedule"', '"alerts_alert"', "UPDATE"]:  # fmt: skip
        assert plans[statement] == (8, 0), statement


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_readings_evaluated_while_the_lock_was_awaited_are_not_evaluated_again(team, clock):
    # given: a patient's low glucose waiting, and another session holding the patient's
    # evaluation lock (a worker in the middle of evaluating it)
    patient = enrolled(PatientFactory(care_team=team), "diabetes")
    post(patient, glucose(LOW_GLUCOSE))
    other = psycopg.connect(**psycopg_settings())
    other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PATIENT_LOCK, patient.pk])
    evaluated = []
    waiting = threading.Thread(
        target=lambda: (
            evaluated.append(evaluate_pending_readings(patient_id=patient.pk)),
            connection.close(),
        )
    )

    # when: an evaluation sends its lock and its read of the pending readings together, and
    # the other session marks the reading evaluated and commits while it waits
    waiting.start()
    wait_for_lock_waiter(other, patient.pk)
    other.execute(
        "UPDATE monitoring_reading SET evaluated_at = now() WHERE patient_id = %s", [patient.pk]
    )
    other.commit()
    waiting.join(timeout=30)
    other.close()

    # then: the read ran after the lock was granted, and saw the reading evaluated
    assert evaluated == [0]
    assert Alert.objects.filter(patient=patient).count() == 0


def psycopg_settings() -> dict:
    params = connection.get_connection_params()
    return {key: params[key] for key in ("dbname", "host", "port", "user") if key in params}


def wait_for_lock_waiter(session, patient_id: int) -> None:
    for _ in range(200):
        waiting = session.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s",
            [PATIENT_LOCK, patient_id],
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("no evaluation waited for the patient's lock")
