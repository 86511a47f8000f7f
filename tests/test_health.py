"""GET /healthz: what an orchestrator probes. Real PostgreSQL and Redis; a dead port for failure."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from config.celery import app as celery_app
from tests.factories import AlertEventFactory, ReadingFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Nothing listens on port 1: the connection is refused at once, as with a broker that is down.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.mark.django_db
def test_healthz_is_200_when_the_database_and_the_broker_answer(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "channel_faults": 0,
        "overdue_evaluations": 0,
        "failed_evaluations": 0,
        "overdue_routings": 0,
    }


@pytest.mark.django_db
def test_healthz_is_503_and_names_the_broker_when_it_is_down(client, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_write_url", UNREACHABLE_BROKER)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unhealthy",
        "database": "ok",
        "broker": "unreachable",
        "channel_faults": 0,
        "overdue_evaluations": 0,
        "failed_evaluations": 0,
        "overdue_routings": 0,
    }


@pytest.mark.django_db
def test_healthz_needs_no_credentials_and_only_answers_get(client):
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer garbage").status_code == 200
    assert client.post("/healthz").status_code == 405


# --- Evaluation backlog: degraded, still 200 ----------------------------------------------


def waited(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.django_db
def test_healthz_is_degraded_while_a_reading_waits_for_evaluation_beyond_the_grace(
    client, time_machine
):
    # given: one reading just past the grace, one just within it, one evaluated long ago
    time_machine.move_to(NOW, tick=False)
    grace = settings.VIGIL_EVALUATION_GRACE.total_seconds()
    ReadingFactory(received_at=waited(grace + 1))
    ReadingFactory(received_at=waited(grace))
    ReadingFactory(received_at=waited(grace + 3600), evaluated_at=waited(grace + 3599))

    # when
    response = client.get("/healthz")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "broker": "ok",
        "channel_faults": 0,
        "overdue_evaluations": 1,
        "failed_evaluations": 0,
        "overdue_routings": 0,
    }


@pytest.mark.django_db
def test_healthz_is_ok_while_readings_wait_within_the_grace(client, time_machine):
    time_machine.move_to(NOW, tick=False)
    ReadingFactory(received_at=waited(settings.VIGIL_EVALUATION_GRACE.total_seconds()))

    response = client.get("/healthz")

    assert (response.status_code, response.json()["status"]) == (200, "ok")
    assert response.json()["overdue_evaluations"] == 0


@pytest.mark.django_db
def test_healthz_is_degraded_and_counts_readings_whose_evaluation_failed(client, time_machine):
    # given: a failure just marked (still within the grace) and an older one
    time_machine.move_to(NOW, tick=False)
    grace = settings.VIGIL_EVALUATION_GRACE.total_seconds()
    for received in (waited(1), waited(grace + 60)):
        ReadingFactory(
            received_at=received,
            evaluation_failed_at=received,
            evaluation_error="RuntimeError at monitoring/rules/threshold.py:40 in evaluate",
        )

    # when
    response = client.get("/healthz")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "broker": "ok",
        "channel_faults": 0,
        "overdue_evaluations": 1,
        "failed_evaluations": 2,
        "overdue_routings": 0,
    }


@pytest.mark.django_db
def test_healthz_is_degraded_while_a_page_is_two_sweeps_past_its_grace(client, time_machine):
    # given: a raised event whose routing never ran, and how long the sweep may take for it
    time_machine.move_to(NOW, tick=False)
    sweep = timedelta(
        seconds=settings.CELERY_BEAT_SCHEDULE["enqueue-unrouted-alert-events"]["schedule"]
    )
    due = settings.VIGIL_EVALUATION_GRACE + 2 * sweep
    stuck = AlertEventFactory(at=NOW - due - timedelta(seconds=1))
    AlertEventFactory(at=NOW - due + timedelta(seconds=1))  # the sweep may still route it
    AlertEventFactory(at=NOW - 10 * due, routed_at=NOW - 10 * due)  # routed long ago

    # when
    response = client.get("/healthz")

    # then
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["overdue_routings"]) == ("degraded", 1)
    assert stuck.kind == "raised"


@pytest.mark.django_db
def test_healthz_with_the_broker_down_is_unhealthy_whatever_waits(
    client, monkeypatch, time_machine
):
    time_machine.move_to(NOW, tick=False)
    ReadingFactory(received_at=waited(settings.VIGIL_EVALUATION_GRACE.total_seconds() + 1))
    monkeypatch.setitem(celery_app.conf, "broker_write_url", UNREACHABLE_BROKER)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert (response.json()["status"], response.json()["overdue_evaluations"]) == (
        "unhealthy",
        1,
    )
