import uuid

import pytest

from monitoring.models import Reading


@pytest.mark.django_db
def test_a_valid_glucose_reading_is_stored_in_mg_dl(patient, patient_client):
    reading_id = str(uuid.uuid4())
    response = patient_client.post(
        "/api/v1/readings",
        {
            "id": reading_id,
            "type": "glucose",
            "value": 5.5,
            "unit": "mmol/L",
            "measured_at": "2026-01-10T07:00:00+01:00",
        },
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["results"] == [{"id": reading_id, "status": "created"}]
    stored = Reading.objects.get(patient=patient)
    assert stored.value == pytest.approx(99.0858)
