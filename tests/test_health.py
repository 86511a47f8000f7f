"""GET /healthz: what an orchestrator probes. Real PostgreSQL and Redis; a dead port for failure."""

import pytest

from config.celery import app as celery_app

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
    }


@pytest.mark.django_db
def test_healthz_needs_no_credentials_and_only_answers_get(client):
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer garbage").status_code == 200
    assert client.post("/healthz").status_code == 405
