"""What a scheduled rule's evaluation loads (monitoring/evaluation/scheduled.py): its window,
and for an INR time in range the latest INR before it, one row, however long the history."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert
from monitoring.evaluation import claim_due_scheduled_rules, evaluate_scheduled_rules
from monitoring.evaluation.scheduled import window_history
from monitoring.patient_rules import apply_protocols
from tests.factories import ReadingFactory
from tests.monitoring.rules.conftest import reference

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TARGET = reference("inr.target_ranges.0")  # 2.0–3.0
BELOW = TARGET["low"] - 1


@pytest.fixture(autouse=True)
def frozen(time_machine):
    """Rules enrolled at NOW are due at NOW."""
    time_machine.move_to(NOW, tick=False)


def inr(patient, days_ago: float, value: float):
    return ReadingFactory(
        patient=patient,
        metric="inr",
        value=value,
        unit="",
        measured_at=NOW - timedelta(days=days_ago),
        evaluated_at=NOW,
    )


def test_the_history_holds_the_latest_reading_before_the_window_and_no_earlier_one(patient):
    # given: a year of weekly INRs, 10 of them in the last 70 days
    readings = [inr(patient, 7 * week, 2.5) for week in range(52, 0, -1)]

    # when
    with CaptureQueriesContext(connection) as queries:
        history = window_history(
            patient_id=patient.pk,
            metric="inr",
            since=NOW - timedelta(days=70),
            now=NOW,
            reading_before=True,
        )

    # then: day -70 is inside (the window includes its start); day -77 is the one before
    assert [reading.id for reading in history] == [r.pk for r in readings[-11:]]
    assert history[0].measured_at == NOW - timedelta(days=77)
    assert len(queries.captured_queries) == 2


def test_without_reading_before_the_history_is_the_window(patient):
    readings = [inr(patient, days, 2.5) for days in (30, 20, 10)]

    history = window_history(
        patient_id=patient.pk,
        metric="inr",
        since=NOW - timedelta(days=25),
        now=NOW,
        reading_before=False,
    )

    assert [reading.id for reading in history] == [r.pk for r in readings[1:]]


def test_no_reading_before_the_window_adds_nothing(patient):
    readings = [inr(patient, days, 2.5) for days in (20, 10)]

    history = window_history(
        patient_id=patient.pk,
        metric="inr",
        since=NOW - timedelta(days=25),
        now=NOW,
        reading_before=True,
    )

    assert [reading.id for reading in history] == [r.pk for r in readings]


def test_the_scheduled_ttr_rule_interpolates_from_the_inr_before_its_window(patient):
    # given: 1.0 three days before the 183-day window, 1.0 ten days into it and 2.5 twenty
    # days into it: the window's first 10 days below (of the interval's 13), then 1.0 → 2.5
    # over 10 days (7 below, 3 in range)
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = patient.rules.get(key="inr_ttr_rosendaal")
    window_days = rule.parameters["window_days"]
    inr(patient, window_days + 3, BELOW)
    inr(patient, window_days - 10, BELOW)
    inr(patient, window_days - 20, (TARGET["low"] + TARGET["high"]) / 2)

    # when
    claimed = claim_due_scheduled_rules(now=NOW)
    findings = evaluate_scheduled_rules(
        patient_id=patient.pk, rule_ids=claimed[patient.pk], now=NOW
    )

    # then: 3 of 20 days in range (without the INR before the window: 3 of 10)
    assert findings == 1
    alert = Alert.objects.get(patient=patient)
    assert (alert.dedupe_key, alert.values) == ("inr_ttr", {"ttr_percent": 15.0, "days": 20})


def test_a_cgm_summary_does_not_load_a_reading_before_its_window(patient):
    # given: 13 days of a full 5-minute sensor, and one reading 20 days ago, before the
    # window: it does not stretch the data's span to 20 days
    apply_protocols(patient=patient, codes=["diabetes"])
    interval = timedelta(
        minutes=patient.rules.get(key="cgm_cv").parameters["sensor_interval_minutes"]
    )
    for i in range(13 * 288 + 1):
        ReadingFactory(
            patient=patient,
            metric="glucose",
            value=50 if i % 2 else 300,
            unit="mg/dL",
            measured_at=NOW - interval * i,
            evaluated_at=NOW,
        )
    ReadingFactory(
        patient=patient,
        metric="glucose",
        value=100,
        unit="mg/dL",
        measured_at=NOW - timedelta(days=20),
        evaluated_at=NOW,
    )

    # when
    claimed = claim_due_scheduled_rules(now=NOW)
    findings = evaluate_scheduled_rules(
        patient_id=patient.pk, rule_ids=claimed[patient.pk], now=NOW
    )

    # then: not sufficient, so no CGM finding (the glucose rules would all fire on these)
    assert findings == 0
    assert not Alert.objects.filter(patient=patient).exists()
