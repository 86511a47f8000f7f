"""Constants, builders and fixtures shared by test_readings.py, test_readings_list.py,
test_readings_malformed.py (imported by name: a fixture here applies only where a test module
imports it)."""

from datetime import UTC, datetime

import pytest

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


RECEIVED = "2026-03-01T12:00:00+00:00"


READINGS = "/api/v1/readings"


RESULT_STATUSES = {"created", "duplicate", "conflict", "rejected"}


@pytest.fixture(autouse=True)
def _frozen_clock(request, time_machine):
    # Requests run at NOW so received_at and the future-skew limit are exact. The live-server
    # race tests keep the real clock: their server threads, sockets and pools need time to move.
    if "live_server" not in request.fixturenames:
        time_machine.move_to(NOW, tick=False)


def post(client, body):
    return client.post(READINGS, body, format="json")


def post_raw(client, data, content_type="application/json"):
    return client.post(READINGS, data=data, content_type=content_type)


def patient_readings(patient_id: int) -> str:
    return f"/api/v1/patients/{patient_id}/readings"
