"""Constants, builders and fixtures shared by test_patient_credentials.py, test_patients.py
(imported by name: a fixture here applies only where a test module imports it)."""

from datetime import UTC, datetime

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


PATIENTS_URL = "/api/v1/patients"


INVALID = "Invalid input."


def iso(moment: datetime) -> str:
    """A datetime as the API writes it."""
    return moment.isoformat().replace("+00:00", "Z")


def enrolment(team, **overrides) -> dict:
    return {
        "external_id": "MRN-100",
        "name": "Ada Example",
        "timezone": "Europe/Berlin",
        "care_team": team.pk,
        "protocols": ["hypertension", "heart_failure"],
    } | overrides


def errors(response) -> dict:
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == INVALID
    return body["errors"]


def weight_reading(reading_id: str) -> dict:
    return {
        "id": reading_id,
        "type": "weight",
        "value": 81.5,
        "unit": "kg",
        "measured_at": "2026-03-01T07:00:00+01:00",
    }
