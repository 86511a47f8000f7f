"""evaluate_patients_together (monitoring/evaluation/readings.py): several patients in one
transaction, one statement per kind of row for all of them, each deciding exactly what its
evaluation alone decides.

The property: twins (the same protocols, schedules, plan and zone) receive the same rounds of
readings; one of each pair is evaluated alone after each round, the others all together;
alerts, their events, slots and evaluated readings are then the same, reading for reading.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts.models import Alert, AlertEvent
from monitoring.evaluation import evaluate_patients_together, evaluate_pending_readings
from monitoring.evaluation import readings as module
from monitoring.evaluation.locking import PATIENT_LOCK
from monitoring.models import Reading, Slot
from monitoring.patient_rules import apply_protocols
from monitoring.schedules import apply_protocol_schedules
from tests.factories import CareTeamFactory, MedicationPlanFactory, PatientFactory
from tests.monitoring.evaluation.helpers import (
    LOW_GLUCOSE,
    NORMAL_GLUCOSE,
    clock,  # noqa: F401
    enrolled,
    glucose,
    pending,
    post,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

PROTOCOLS = ["anticoagulation", "copd", "diabetes", "heart_failure", "hypertension"]
# (type, fields): values on both sides of the reference's limits of each metric, so that
# rounds raise, fold, worsen and clear alerts.
READINGS = [
    ("glucose", {"value": 112, "unit": "mg/dL"}),
    ("glucose", {"value": 62, "unit": "mg/dL"}),
    ("glucose", {"value": 45, "unit": "mg/dL"}),
    ("glucose", {"value": 260, "unit": "mg/dL"}),
    ("glucose", {"value": 420, "unit": "mg/dL"}),
    ("blood_pressure", {"systolic": 122, "diastolic": 78}),
    ("blood_pressure", {"systolic": 165, "diastolic": 102}),
    ("blood_pressure", {"systolic": 192, "diastolic": 124}),
    ("inr", {"value": 2.5}),
    ("inr", {"value": 4.1}),
    ("inr", {"value": 6.1}),
    ("spo2", {"value": 97}),
    ("spo2", {"value": 86}),
    ("heart_rate", {"value": 72}),
    ("heart_rate", {"value": 142}),
    ("weight", {"value": 80.0, "unit": "kg"}),
    ("weight", {"value": 82.5, "unit": "kg"}),
    ("dose", {"medication": "warfarin-5mg", "status": "taken"}),
    ("dose", {"medication": "warfarin-5mg", "status": "skipped"}),
]
NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)

reading = st.tuples(
    st.sampled_from(range(len(READINGS))), st.integers(min_value=1, max_value=36 * 60)
)
patient = st.tuples(
    st.lists(st.sampled_from(PROTOCOLS), min_size=1, max_size=3, unique=True),
    # rounds of readings; a patient may have none in a round
    st.lists(st.lists(reading, max_size=4), min_size=1, max_size=3),
)


def _twins(protocols: list[str]):
    team = CareTeamFactory()
    pair = []
    for _ in range(2):
        person = PatientFactory(care_team=team, timezone="America/New_York")
        apply_protocols(patient=person, codes=protocols)
        apply_protocol_schedules(patient=person, codes=protocols, now=NOW - timedelta(days=2))
        MedicationPlanFactory(patient=person, dose_times=["08:00", "20:00"])
        pair.append(person)
    return pair


def _items(drawn: list[tuple[int, int]]) -> list[dict]:
    """The round's items for one twin. The twins' ids differ and sort alike (ingest may
    insert a batch in id order, and readings of one minute are evaluated in insert order)."""
    items = []
    for number, (index, minutes_ago) in enumerate(drawn):
        kind, fields = READINGS[index]
        measured = NOW - timedelta(minutes=minutes_ago)
        item = {
            "id": f"{number:08x}{str(uuid.uuid4())[8:]}",
            "type": kind,
            "measured_at": measured.isoformat(),
        }
        if kind == "dose":
            item["scheduled_for"] = measured.replace(minute=0).isoformat()
        items.append(item | fields)
    return items


def _state(person) -> tuple:
    """Everything an evaluation decides for a patient, with readings named by what they say
    (the twins' ids, and the order ingest inserts a batch in, differ) and alerts by group."""
    position = {
        pk: said
        for pk, *said in Reading.objects.filter(patient=person).values_list(
            "id", "measured_at", "metric", "value", "systolic", "diastolic", "dose_status"
        )
    }
    alerts = [
        (
            a.dedupe_key, a.severity, a.status, a.title, a.detail, a.occurrences,
            a.first_triggered_at, a.last_triggered_at, a.condition_cleared_at, a.values,
            [position.get(pk, pk) for pk in a.reading_ids], a.rule.key, a.next_escalation_at,
        )
        for a in Alert.objects.filter(patient=person).select_related("rule").order_by("id")
    ]  # fmt: skip
    events = list(
        AlertEvent.objects.filter(alert__patient=person)
        .order_by("id")
        .values_list("alert__dedupe_key", "kind", "at", "data", "routed_at")
    )
    slots = sorted(
        (
            slot.schedule.key if slot.schedule_id else slot.plan.medication,
            slot.due_at,
            slot.status,
            position.get(slot.fulfilled_by_id),
        )
        for slot in Slot.objects.filter(patient=person).select_related("schedule", "plan")
    )
    readings = sorted(
        (position[pk], evaluated_at, failed_at)
        for pk, evaluated_at, failed_at in Reading.objects.filter(patient=person).values_list(
            "id", "evaluated_at", "evaluation_failed_at"
        )
    )
    return alerts, events, slots, readings


PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=int(os.environ.get("VIGIL_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def test_patients_evaluated_together_decide_what_each_decides_alone(time_machine):
    @PROPERTY_SETTINGS
    @given(patients=st.lists(patient, min_size=2, max_size=3))
    def check(patients):
        time_machine.move_to(NOW, tick=False)
        pairs = [_twins(protocols) for protocols, _ in patients]
        rounds = max(len(drawn_rounds) for _, drawn_rounds in patients)
        for number in range(rounds):
            for (_, drawn_rounds), (alone, together) in zip(patients, pairs, strict=True):
                if number < len(drawn_rounds) and drawn_rounds[number]:
                    post(alone, *_items(drawn_rounds[number]))
                    post(together, *_items(drawn_rounds[number]))
            for alone, _ in pairs:
                evaluate_pending_readings(patient_id=alone.pk)
            evaluate_patients_together(patient_ids=[together.pk for _, together in pairs])
        for alone, together in pairs:
            assert _state(together) == _state(alone)
            assert pending(together) == 0

    check()


def test_the_statements_are_the_same_for_two_patients_as_for_six(clock):
    def waiting(count: int) -> list[int]:
        team = CareTeamFactory()
        people = [
            enrolled(PatientFactory(care_team=team), "diabetes", "hypertension")
            for _ in range(count)
        ]
        for person in people:
            post(person, glucose(NORMAL_GLUCOSE))
        return [person.pk for person in people]

    two, six = waiting(2), waiting(6)

    def statements(patient_ids: list[int]) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert evaluate_patients_together(patient_ids=patient_ids) == len(patient_ids)
        return [query["sql"].split()[0] for query in captured.captured_queries]

    # (the test's transaction makes the evaluation's a savepoint) the lock, the pending
    # readings, the rules, the schedules, the unresolved alerts, the update
    shared = ["SAVEPOINT", "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "UPDATE", "RELEASE"]
    assert statements(two) == shared
    assert statements(six) == shared


def test_the_patients_locks_are_taken_together_and_held_to_the_commit(clock):
    team = CareTeamFactory()
    people = [enrolled(PatientFactory(care_team=team), "diabetes") for _ in range(3)]
    for person in people:
        post(person, glucose(NORMAL_GLUCOSE))
    held = []

    def record_locks(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("UPDATE"):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                    "AND pid = pg_backend_pid() ORDER BY objid",
                    [PATIENT_LOCK],
                )
                held.extend(row[0] for row in cursor.fetchall())
        return result

    with connection.execute_wrapper(record_locks):
        evaluate_patients_together(patient_ids=[person.pk for person in reversed(people)])

    assert held == sorted(person.pk for person in people)


def test_a_patient_whose_evaluation_fails_is_evaluated_alone_and_the_others_still_are(
    clock, caplog
):
    # given
    team = CareTeamFactory()
    fine, failing = (enrolled(PatientFactory(care_team=team), "diabetes") for _ in range(2))
    post(fine, glucose(LOW_GLUCOSE))
    post(failing, glucose(NORMAL_GLUCOSE), glucose(LOW_GLUCOSE, before=timedelta(minutes=30)))
    real = module._evaluate_new_readings

    def breaks_for_failing(person, rules, readings, now):
        if person.pk == failing.pk and any(r.value == LOW_GLUCOSE for r in readings):
            raise ValueError("a rule kind's bug")
        return real(person, rules, readings, now)

    # when
    with mock.patch.object(module, "_evaluate_new_readings", breaks_for_failing):
        evaluated = evaluate_patients_together(patient_ids=[fine.pk, failing.pk])

    # then: the fine patient's alert raised; the failing patient's reading that breaks is
    # marked failed, its other reading evaluated, as evaluating it alone does
    assert evaluated == 2
    assert list(Alert.objects.filter(patient=fine).values_list("dedupe_key", flat=True)) == [
        "glucose_low"
    ]
    assert not Alert.objects.filter(patient=failing).exists()
    states = sorted(
        (value, evaluated_at is not None, failed_at is not None)
        for value, evaluated_at, failed_at in Reading.objects.filter(patient=failing).values_list(
            "value", "evaluated_at", "evaluation_failed_at"
        )
    )
    assert states == [(LOW_GLUCOSE, False, True), (NORMAL_GLUCOSE, True, False)]
    assert "evaluating each alone" in caplog.text


def test_more_pending_readings_than_one_run_takes_are_evaluated_patient_by_patient(clock):
    team = CareTeamFactory()
    people = [enrolled(PatientFactory(care_team=team), "diabetes") for _ in range(2)]
    for person in people:
        post(person, *(glucose(NORMAL_GLUCOSE, before=timedelta(minutes=m)) for m in (5, 10, 15)))

    with mock.patch("monitoring.evaluation.readings.MAX_READINGS_PER_RUN", 4):
        evaluated = evaluate_patients_together(patient_ids=[person.pk for person in people])

    assert evaluated == 6
    assert [pending(person) for person in people] == [0, 0]
