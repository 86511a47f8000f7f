"""A patient's newest readings are looked for in a recent window first, and before it only when
the window has too few (Reading.objects.newest, the alert queue's latest value): on
PostgreSQL an unbounded "newest first" opens every monthly partition of the readings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert
from alerts.triage import with_queue_annotations
from monitoring.models import Reading
from tests.factories import AlertFactory, PatientFactory, ReadingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def patient():
    return PatientFactory()


def glucose(patient, *, value, at):
    return ReadingFactory(
        patient=patient, metric="glucose", value=value, unit="mg/dL", measured_at=at
    )


def newest_first(patient):
    return Reading.objects.filter(patient=patient).order_by("-measured_at", "-id")


def test_the_newest_readings_found_in_the_window_take_one_query(patient, now):
    glucose(patient, value=101, at=now - timedelta(days=1))
    glucose(patient, value=102, at=now - timedelta(days=2))
    glucose(patient, value=103, at=now - timedelta(days=400))

    with CaptureQueriesContext(connection) as queries:
        rows = (
            newest_first(patient)
            .values_list("value", flat=True)
            .newest(2, since=now - timedelta(days=30))
        )

    assert rows == [101, 102]
    assert len(queries.captured_queries) == 1


def test_a_sparse_history_is_completed_from_before_the_window_newest_first(patient, now):
    glucose(patient, value=101, at=now - timedelta(days=1))
    glucose(patient, value=140, at=now - timedelta(days=40))
    glucose(patient, value=160, at=now - timedelta(days=400))
    glucose(patient, value=180, at=now - timedelta(days=500))

    with CaptureQueriesContext(connection) as queries:
        rows = (
            newest_first(patient)
            .values_list("value", flat=True)
            .newest(3, since=now - timedelta(days=30))
        )

    assert rows == [101, 140, 160]
    assert len(queries.captured_queries) == 2


def test_the_queue_shows_a_latest_reading_older_than_its_recent_window(patient, now):
    glucose(patient, value=150, at=now - timedelta(days=90))
    glucose(patient, value=90, at=now - timedelta(days=200))
    alert = AlertFactory(patient=patient, rule__metric="glucose")

    (annotated,) = with_queue_annotations(Alert.objects.filter(pk=alert.pk))

    assert annotated.latest_reading["value"] == 150


def test_the_queue_shows_the_recent_latest_reading(patient, now):
    glucose(patient, value=150, at=now - timedelta(days=90))
    glucose(patient, value=120, at=now - timedelta(hours=2))
    alert = AlertFactory(patient=patient, rule__metric="glucose")

    (annotated,) = with_queue_annotations(Alert.objects.filter(pk=alert.pk))

    assert annotated.latest_reading["value"] == 120


def test_the_queue_shows_no_latest_reading_when_the_metric_has_none(patient):
    glucose(patient, value=150, at=timezone.now() - timedelta(days=3))
    alert = AlertFactory(patient=patient, rule__metric="weight")

    (annotated,) = with_queue_annotations(Alert.objects.filter(pk=alert.pk))

    assert annotated.latest_reading is None
