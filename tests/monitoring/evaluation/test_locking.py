"""Two evaluations of one patient at once (monitoring/evaluation/locking.py).

Clinical numbers come from the clinical reference (read in the test, or cited by path).
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from datetime import timedelta

import pytest

from alerts.models import Alert, AlertEvent
from monitoring.evaluation import (
    evaluate_pending_readings,
)
from tests.factories import PatientFactory
from tests.monitoring.conftest import BrokerQueue
from tests.monitoring.evaluation.helpers import (
    HR_HIGH_CRITICAL,
    HYPO_2,
    LOW_GLUCOSE,
    SPO2_COPD_WARNING,
    alerts_of,
    clock,  # noqa: F401
    enrolled,
    events_of,
    glucose,
    item,
    pending,
    post,
)

# --- Two workers at once --------------------------------------------------------------------


@pytest.fixture
def notifications_queue(broker):
    """The 'notifications' queue (alert routing), empty at the start and purged afterwards.
    Transactional tests commit, so their on-commit publishes reach the real broker."""
    queue = BrokerQueue(broker, "notifications")
    queue.purge()
    yield queue
    queue.purge()


def concurrency_upload() -> list[dict]:
    return [
        glucose(LOW_GLUCOSE, timedelta(hours=4)),
        glucose(HYPO_2["upper"]["value"] - 4, timedelta(hours=3)),
        glucose(LOW_GLUCOSE, timedelta(hours=2)),
        item("spo2", timedelta(hours=2), value=SPO2_COPD_WARNING),
        item("spo2", timedelta(hours=1), value=SPO2_COPD_WARNING - 1),
        item("heart_rate", timedelta(hours=1), value=HR_HIGH_CRITICAL),
    ]


def comparable_alerts(patient) -> list[tuple]:
    return [
        (a.dedupe_key, a.severity, a.status, a.occurrences, a.rule.key, a.rule_version,
         a.first_triggered_at, a.last_triggered_at, a.values, a.reading_ids != [])
        for a in Alert.objects.filter(patient=patient).select_related("rule").order_by("dedupe_key")
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluating_one_patient_at_once_make_the_alerts_one_worker_makes(
    team, clock, notifications_queue, evaluation_queue, run_concurrently
):
    # given: two patients with the same upload
    raced, alone = PatientFactory.create_batch(2, care_team=team)
    for patient in (raced, alone):
        enrolled(patient, "diabetes", "copd")
        post(patient, *concurrency_upload())

    # when: two workers take the raced patient at the same moment, one worker the other
    counts = run_concurrently(
        lambda: evaluate_pending_readings(patient_id=raced.pk),
        lambda: evaluate_pending_readings(patient_id=raced.pk),
    )
    assert evaluate_pending_readings(patient_id=alone.pk) == 6

    # then: the readings were evaluated once, and the alerts are the same as one worker's
    assert sorted(counts) == [0, 6]
    assert comparable_alerts(raced) == comparable_alerts(alone)
    assert [alert[:4] for alert in comparable_alerts(raced)] == [
        ("glucose_low", "critical", "open", 3),
        ("heart_rate_high", "critical", "open", 1),
        ("spo2_low", "warning", "open", 2),
    ]
    assert [kind for _, kind, _ in events_of(raced)] == [kind for _, kind, _ in events_of(alone)]
    assert pending(raced) == 0
    # one routing per alert event of either patient: nobody is paged twice by the race
    routings = [task.args[0] for task in notifications_queue.tasks()]
    assert sorted(routings) == sorted(
        AlertEvent.objects.filter(alert__patient__in=[raced, alone]).values_list("pk", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_with_different_uploads_of_one_patient_count_every_occurrence_once(
    team, clock, notifications_queue, evaluation_queue, run_concurrently
):
    # given: two uploads of the same patient, each about to be evaluated by its own worker
    patient = PatientFactory(care_team=team)
    enrolled(patient, "diabetes")
    post(patient, *[glucose(LOW_GLUCOSE, timedelta(hours=h)) for h in (6, 5, 4)])

    def upload_then_evaluate():
        post(patient, *[glucose(LOW_GLUCOSE, timedelta(hours=h)) for h in (3, 2)])
        return evaluate_pending_readings(patient_id=patient.pk)

    # when
    counts = run_concurrently(
        lambda: evaluate_pending_readings(patient_id=patient.pk), upload_then_evaluate
    )

    # then: five lows, five occurrences of one alert raised once
    assert sum(counts) == 5
    assert alerts_of(patient) == [("glucose_low", "warning", "open", 5, "hypoglycemia_level_1", 1)]
    assert [kind for _, kind, _ in events_of(patient)] == ["raised"]
    assert len(notifications_queue) == 1
    assert pending(patient) == 0
