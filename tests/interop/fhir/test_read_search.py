"""Reading back: metadata, Patient read/search, Observation read/search with next links."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import AuditEvent, Reading
from tests.factories import ReadingFactory
from tests.interop.fhir.helpers import assert_valid_r4, fhir_id, issues

pytestmark = pytest.mark.django_db


def test_metadata_needs_no_credential_and_is_a_capability_statement(anonymous_client):
    response = anonymous_client.get("/fhir/metadata")

    assert response.status_code == 200
    body = assert_valid_r4(response.json())
    assert body["fhirVersion"] == "4.0.1"
    assert [r["type"] for r in body["rest"][0]["resource"]] == ["Patient", "Observation"]


def test_a_patient_reads_itself_and_no_one_else(patient, other_patient, patient_client, settings):
    settings.VIGIL_BASE_URL = "https://vigil.clinic.example"
    own = patient_client.get(f"/fhir/Patient/{patient.pk}")
    other = patient_client.get(f"/fhir/Patient/{other_patient.pk}")

    assert own.status_code == 200
    body = assert_valid_r4(own.json())
    assert body["identifier"] == [
        {
            "system": "https://vigil.clinic.example/fhir/sid/patient-external-id",
            "value": patient.external_id,
        }
    ]
    assert other.status_code == 404
    assert issues(other) == [(f"Patient/{other_patient.pk} is not known.", [])]


def test_staff_find_their_teams_patients_by_identifier(
    patient, nurse_client, outsider_client, settings
):
    settings.VIGIL_BASE_URL = "https://vigil.clinic.example"
    system = "https://vigil.clinic.example/fhir/sid/patient-external-id"
    query = f"identifier={system}|{patient.external_id}"

    found = nurse_client.get(f"/fhir/Patient?{query}")
    hidden = outsider_client.get(f"/fhir/Patient?{query}")

    body = assert_valid_r4(found.json())
    assert [entry["resource"]["id"] for entry in body["entry"]] == [str(patient.pk)]
    assert assert_valid_r4(hidden.json())["entry"] == []


@pytest.mark.parametrize(
    "path", ["/fhir/Patient/abc", "/fhir/Patient/²", "/fhir/Observation/99999999999999999999"]
)
def test_ids_that_name_nothing_are_404(patient_client, path):
    assert patient_client.get(path).status_code == 404


def test_a_device_key_does_not_read(patient, device_client):
    response = device_client.get(f"/fhir/Patient/{patient.pk}")

    assert response.status_code == 403


def encoded_cursor(moment: str, pk: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([moment, pk]).encode()).decode()


def _readings(patient, count: int) -> list[Reading]:
    start = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    return [
        ReadingFactory(
            patient=patient,
            metric="glucose",
            value=100 + n,
            unit="mg/dL",
            measured_at=start + timedelta(hours=n),
            utc_offset_minutes=-300,
        )
        for n in range(count)
    ]


def test_observation_search_pages_newest_first_with_next_links(patient, patient_client):
    readings = _readings(patient, 5)
    ReadingFactory(
        patient=patient, metric="weight", measured_at=datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    )
    url = (
        f"/fhir/Observation?patient=Patient/{patient.pk}&code=http://loinc.org|2339-0"
        "&date=ge2026-03-01T07:00:00Z&date=le2026-03-01T10:00:00Z&_count=2&_sort=-date"
    )

    pages, seen = 0, []
    while url:
        response = patient_client.get(url)
        assert response.status_code == 200
        body = assert_valid_r4(response.json())
        seen += [entry["resource"]["id"] for entry in body["entry"]]
        nexts = [link["url"] for link in body["link"] if link["relation"] == "next"]
        url = nexts[0].removeprefix("http://testserver") if nexts else None
        pages += 1

    # 07:00..10:00 UTC holds the readings at 07, 08, 09 and 10 o'clock.
    assert seen == [fhir_id(r) for r in reversed(readings[1:5])]
    assert pages == 2


def test_a_found_observation_states_the_offset_it_was_measured_with(patient, patient_client):
    [reading] = _readings(patient, 1)

    body = patient_client.get(f"/fhir/Observation/{fhir_id(reading)}").json()

    assert_valid_r4(body)
    assert body["effectiveDateTime"] == "2026-03-01T01:00:00-05:00"


def test_observation_search_of_another_patient_is_404(
    patient, other_patient, patient_client, outsider_client
):
    _readings(patient, 1)

    assert (
        patient_client.get(f"/fhir/Observation?patient=Patient/{other_patient.pk}").status_code
        == 404
    )
    assert outsider_client.get(f"/fhir/Observation?patient=Patient/{patient.pk}").status_code == 404


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("code=http://loinc.org|9279-1", ["code"]),
        ("date=eq2026-03-01", ["date"]),
        ("date=ge2026-13-01", ["date"]),
        ("_count=0", ["_count"]),
        ("_count=501", ["_count"]),
        ("_sort=date", ["_sort"]),
        ("_cursor=garbage", ["_cursor"]),
        # A well-formed cursor naming an id past bigint: refused before the query.
        ("_cursor=" + encoded_cursor("2026-03-01T00:00:00+00:00", 10**30), ["_cursor"]),
        ("_count=²", ["_count"]),
        ("color=red", ["color"]),
    ],
)
def test_bad_search_parameters_are_400_naming_the_parameter(patient_client, query, expression):
    response = patient_client.get(f"/fhir/Observation?{query}")

    assert response.status_code == 400
    assert [found for _, found in issues(response)] == [expression]


def test_a_patient_token_searches_its_own_observations_without_naming_itself(
    patient, patient_client
):
    readings = _readings(patient, 2)

    body = patient_client.get("/fhir/Observation").json()

    assert [entry["resource"]["id"] for entry in body["entry"]] == [
        fhir_id(r) for r in reversed(readings)
    ]


def test_what_staff_read_through_fhir_is_in_the_audit_log(patient, nurse, nurse_client):
    [reading] = _readings(patient, 1)

    nurse_client.get(f"/fhir/Patient/{patient.pk}")
    nurse_client.get(f"/fhir/Observation/{fhir_id(reading)}")
    nurse_client.get(f"/fhir/Observation?patient=Patient/{patient.pk}")

    events = AuditEvent.objects.order_by("id").values_list(
        "user_id", "patient_id", "action", "model", "object_id", "surface", "method"
    )
    assert list(events) == [
        (nurse.pk, patient.pk, "view", "monitoring.patient", str(patient.pk), "api", "GET"),
        (nurse.pk, patient.pk, "view", "monitoring.reading", str(reading.pk), "api", "GET"),
        (nurse.pk, patient.pk, "view", "monitoring.reading", "", "api", "GET"),
    ]


def test_a_refused_read_writes_no_audit_event_of_the_data(other_patient, nurse_client):
    nurse_client.get(f"/fhir/Patient/{other_patient.pk}")

    assert not AuditEvent.objects.filter(action="view").exists()


def test_another_patients_observation_is_404_to_a_patient_and_an_outsider(
    patient, other_patient, patient_client, outsider_client, nurse_client
):
    [theirs] = _readings(other_patient, 1)
    [own] = _readings(patient, 1)
    # The client id of another patient's reading under one's own patient id names nothing.
    forged = f"{patient.pk}-{theirs.client_id}"

    assert patient_client.get(f"/fhir/Observation/{fhir_id(theirs)}").status_code == 404
    assert patient_client.get(f"/fhir/Observation/{forged}").status_code == 404
    assert outsider_client.get(f"/fhir/Observation/{fhir_id(own)}").status_code == 404
    assert nurse_client.get(f"/fhir/Observation/{fhir_id(own)}").status_code == 200
