"""Constants, builders and fixtures shared by test_locking.py, test_outcomes.py,
test_outcomes_grouping.py, test_readings.py, test_scheduled.py, tests/alerts/test_silences.py
(imported by name: a fixture here applies only where a test module imports it)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from alerts.models import Alert, AlertEvent
from alerts.tasks import route_alert_event_task
from monitoring.evaluation import (
    evaluate_pending_readings,
)
from monitoring.ingest import record_readings
from monitoring.models import Reading
from monitoring.patient_rules import apply_protocols
from tests.factories import ReadingItemFactory
from tests.monitoring.rules.conftest import reference, stated_limit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # 07:00 in New York, the patient's zone


HYPO_1 = reference("blood_glucose.thresholds.hypoglycemia_level_1")  # 54 <= g < 70 mg/dL


HYPO_2 = reference("blood_glucose.thresholds.hypoglycemia_level_2")  # g < 54 mg/dL


HYPER_CRITICAL = reference("blood_glucose.thresholds.hyperglycemia_critical_default")  # > 400


INR_RANGE = reference("inr.target_ranges.0")  # 2.0–3.0


INR_CRITICAL = stated_limit("inr.thresholds.inr_critical")  # INR >= 5.0


INR_ABOVE_10 = stated_limit("inr.thresholds.inr_gt_10")  # INR > 10


SPO2_COPD_WARNING = stated_limit("spo2.thresholds.spo2_copd_warning")  # SpO2 <= 87 %


HR_HIGH_CRITICAL = stated_limit("heart_rate.thresholds.hr_high_critical")  # HR >= 131


NORMAL_GLUCOSE = 112


LOW_GLUCOSE = HYPO_1["lower"]["value"] + 6  # level 1, not level 2


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def enrolled(patient, *protocols):
    apply_protocols(patient=patient, codes=list(protocols))
    return patient


def item(kind: str, before: timedelta = timedelta(hours=1), **fields):
    """A reading as the app posts it, measured `before` the current (frozen) time."""
    measured = datetime.now(UTC) - before
    return ReadingItemFactory(type=kind, measured_at=measured.isoformat(), **fields)


def glucose(value, before=timedelta(hours=1), unit="mg/dL", **f):
    return item("glucose", before, value=value, unit=unit, **f)


def post(patient, *items):
    """Store readings the way the product does (the API's domain function)."""
    for start in range(0, len(items), settings.VIGIL_MAX_BATCH):
        batch = list(items[start : start + settings.VIGIL_MAX_BATCH])
        result = record_readings(patient=patient, items=batch)
        assert result.created == len(batch), result.as_dict()


def evaluate(patient, capture):
    """Evaluate the patient's pending readings; return the notification routings enqueued."""
    with capture() as callbacks:
        evaluate_pending_readings(patient_id=patient.pk)
    return routed(callbacks)


def routed(callbacks) -> list[int]:
    """The AlertEvent ids whose notification routing was enqueued on commit."""
    return [
        callback.args[0]
        for callback in callbacks
        if getattr(callback, "task", None) == route_alert_event_task
    ]


def alerts_of(patient) -> list[tuple]:
    return [
        (a.dedupe_key, a.severity, a.status, a.occurrences, a.rule.key, a.rule_version)
        for a in Alert.objects.filter(patient=patient).select_related("rule").order_by("id")
    ]


def events_of(patient) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert__patient=patient)
        .order_by("id")
        .values_list("alert__dedupe_key", "kind", "data")
    )


def pending(patient) -> int:
    return Reading.objects.filter(patient=patient, evaluated_at__isnull=True).count()


def snapshot(patient) -> tuple:
    alerts = list(
        Alert.objects.filter(patient=patient)
        .order_by("id")
        .values_list(
            "id", "dedupe_key", "severity", "status", "occurrences", "rule_version",
            "rule_parameters", "first_triggered_at", "last_triggered_at", "values",
            "reading_ids", "condition_cleared_at",
        )
    )  # fmt: skip
    evaluated = sorted(
        Reading.objects.filter(patient=patient).values_list("client_id", "evaluated_at")
    )
    return alerts, events_of(patient), evaluated
