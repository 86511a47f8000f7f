"""alerts/lifecycle.py through evaluation: readings become alerts.

At most one unresolved alert per patient and dedupe key (the rule group); a new trigger adds
occurrences and raises the severity if worse, never lowers it; only a person resolves a
warning or critical alert; info alerts expire. Every transition writes an AlertEvent.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alerts.models import Alert, AlertEvent, Silence
from alerts.tasks import route_alert_event_task
from monitoring.evaluation import evaluate_pending_readings
from tests.alerts.lifecycle_helpers import (
    MINUTE,
    NOW,
    rule,  # noqa: F401
)
from tests.factories import (
    ReadingFactory,
)
from tests.monitoring.conftest import QueuedTask

pytestmark = pytest.mark.django_db


# --- Through evaluation: readings become alerts -------------------------------------------


def low_glucose(patient, value: float, at: datetime):
    return ReadingFactory(
        patient=patient,
        metric="glucose",
        value=value,
        unit="mg/dL",
        measured_at=at,
        received_at=at,
    )


def route_task(alert, kind: str) -> QueuedTask:
    event = AlertEvent.objects.get(alert=alert, kind=kind)
    return QueuedTask(name=route_alert_event_task.name, args=[event.pk], kwargs={})


def test_low_readings_make_one_alert_counting_each_and_page_once(
    patient, rule, notifications_queue, django_capture_on_commit_callbacks
):
    # given: two low readings, then a third in a later upload
    low_glucose(patient, 62, NOW - 20 * MINUTE)
    low_glucose(patient, 65, NOW - 10 * MINUTE)
    low_glucose(patient, 110, NOW - 15 * MINUTE)  # in range: not an occurrence

    # when
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_pending_readings(patient_id=patient.pk, now=NOW)
    low_glucose(patient, 60, NOW + 5 * MINUTE)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_pending_readings(patient_id=patient.pk, now=NOW + 6 * MINUTE)

    # then
    alert = Alert.objects.get()
    assert (alert.dedupe_key, alert.severity, alert.status) == ("glucose_low", "warning", "open")
    assert alert.occurrences == 3
    assert (alert.first_triggered_at, alert.last_triggered_at) == (
        NOW - 20 * MINUTE,
        NOW + 5 * MINUTE,
    )
    assert notifications_queue.tasks() == [route_task(alert, "raised")]


def test_evaluating_the_same_readings_again_counts_nothing_twice(
    patient, rule, notifications_queue, django_capture_on_commit_callbacks
):
    low_glucose(patient, 62, NOW - 20 * MINUTE)
    evaluate_pending_readings(patient_id=patient.pk, now=NOW)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert evaluate_pending_readings(patient_id=patient.pk, now=NOW + MINUTE) == 0

    assert Alert.objects.get().occurrences == 1
    assert callbacks == []
    assert len(notifications_queue) == 0


def test_a_silenced_patient_still_gets_the_alert_recorded_but_nobody_is_paged(
    patient, rule, nurse, notifications_queue, django_capture_on_commit_callbacks
):
    Silence.objects.create(
        patient=patient,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
        author=nurse,
        reason="Sensor warm-up after insertion",
    )
    low_glucose(patient, 62, NOW - 20 * MINUTE)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        evaluate_pending_readings(patient_id=patient.pk, now=NOW)

    alert = Alert.objects.get()
    assert (alert.status, alert.occurrences) == ("open", 1)
    assert callbacks == []
    assert len(notifications_queue) == 0
