"""POST /fhir/Observation: one Observation into the native ingest path, idempotent on its
identifier, every refusal an OperationOutcome that says where."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from interop.fhir.observations import IDENTIFIER_NAMESPACE
from monitoring.models import Reading
from tests.interop.fhir.helpers import (
    assert_valid_r4,
    blood_pressure,
    fhir_id,
    fixture,
    issues,
    observation,
    post,
)

pytestmark = pytest.mark.django_db


def test_a_glucose_observation_is_stored_as_a_reading_and_answered_as_r4(patient, patient_client):
    # when
    response = post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=112, unit="mg/dL", identifier="obs-1"),
    )
    # then
    assert response.status_code == 201
    assert response["Content-Type"] == "application/fhir+json; charset=utf-8"
    reading = Reading.objects.get(patient=patient)
    assert response["Location"] == f"http://testserver/fhir/Observation/{fhir_id(reading)}"
    assert (reading.metric, reading.value, reading.unit, reading.source, reading.entry) == (
        "glucose",
        112.0,
        "mg/dL",
        "fhir",
        "device",
    )
    assert reading.measured_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert reading.utc_offset_minutes == 60
    assert reading.client_id == uuid.uuid5(IDENTIFIER_NAMESPACE, "https://clinic.example/obs|obs-1")
    body = assert_valid_r4(response.json())
    assert body["id"] == f"{patient.pk}-{reading.client_id}"
    assert body["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]
    assert body["code"]["coding"] == [
        {
            "system": "http://loinc.org",
            "code": "2339-0",
            "display": "Glucose [Mass/volume] in Blood",
        }
    ]
    assert body["valueQuantity"] == {
        "value": 112,
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert body["effectiveDateTime"] == "2026-03-01T07:30:00+01:00"
    assert body["subject"] == {"reference": f"Patient/{patient.pk}"}
    assert body["identifier"] == [
        {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{reading.client_id}"}
    ]


def test_a_re_post_of_the_same_identifier_is_answered_200_with_the_stored_resource(
    patient, patient_client
):
    resource = observation(patient, "2339-0", value=112, unit="mg/dL", identifier="obs-1")
    first = post(patient_client, "/fhir/Observation", resource)

    again = post(patient_client, "/fhir/Observation", resource)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert "Location" not in again
    assert Reading.objects.filter(patient=patient).count() == 1


def test_the_same_identifier_with_other_content_is_a_conflict_and_changes_nothing(
    patient, patient_client
):
    post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=112, unit="mg/dL", identifier="obs-1"),
    )

    response = post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=140, unit="mg/dL", identifier="obs-1"),
    )

    assert response.status_code == 409
    assert issues(response) == [
        (
            "An Observation with this identifier is already stored with other content.",
            ["Observation.identifier"],
        )
    ]
    assert list(Reading.objects.filter(patient=patient).values_list("value", flat=True)) == [112.0]


def test_if_none_exist_names_the_identifier_that_keys_the_observation(patient, patient_client):
    resource = observation(patient, "29463-7", value=81.5, unit="kg")
    header = {"HTTP_IF_NONE_EXIST": "identifier=https://scale.example|w-9"}

    first = post(patient_client, "/fhir/Observation", resource, **header)
    again = post(patient_client, "/fhir/Observation", resource, **header)

    assert (first.status_code, again.status_code) == (201, 200)
    assert Reading.objects.get(patient=patient).client_id == uuid.uuid5(
        IDENTIFIER_NAMESPACE, "https://scale.example|w-9"
    )


def test_without_an_identifier_a_retried_post_is_a_duplicate_not_a_second_reading(
    patient, patient_client
):
    resource = observation(patient, "8867-4", value=64, unit="/min")

    first = post(patient_client, "/fhir/Observation", resource)
    retried = post(patient_client, "/fhir/Observation", resource)
    other = post(
        patient_client, "/fhir/Observation", observation(patient, "8867-4", value=65, unit="/min")
    )

    assert (first.status_code, retried.status_code, other.status_code) == (201, 200, 201)
    assert sorted(Reading.objects.filter(patient=patient).values_list("value", flat=True)) == [
        64.0,
        65.0,
    ]


def test_a_blood_pressure_panel_with_a_heart_rate_component_is_a_bp_and_a_pulse(
    patient, patient_client
):
    response = post(
        patient_client,
        "/fhir/Observation",
        blood_pressure(patient, 128, 82, pulse=71, device={"display": "BP-77"}),
    )

    assert response.status_code == 201
    bp = Reading.objects.get(patient=patient, metric="blood_pressure")
    pulse = Reading.objects.get(patient=patient, metric="heart_rate")
    assert (bp.systolic, bp.diastolic, bp.device_serial) == (128.0, 82.0, "BP-77")
    assert (pulse.value, pulse.part_of) == (71.0, bp.client_id)
    body = assert_valid_r4(response.json())
    assert body["meta"]["profile"] == [
        "http://hl7.org/fhir/StructureDefinition/vitalsigns",
        "http://hl7.org/fhir/StructureDefinition/bp",
    ]
    assert [c["code"]["coding"][0]["code"] for c in body["component"]] == ["8480-6", "8462-4"]
    assert [c["valueQuantity"]["value"] for c in body["component"]] == [128, 82]
    assert body["device"] == {"display": "BP-77"}


def test_manual_entry_is_said_with_the_entry_extension(patient, patient_client, settings):
    url = f"{settings.VIGIL_BASE_URL}/fhir/StructureDefinition/reading-entry"
    resource = observation(
        patient, "29463-7", value=80, unit="kg", extension=[{"url": url, "valueCode": "manual"}]
    )

    response = post(patient_client, "/fhir/Observation", resource)

    assert response.status_code == 201
    assert Reading.objects.get(patient=patient).entry == "manual"
    assert response.json()["extension"] == [{"url": url, "valueCode": "manual"}]


@pytest.mark.parametrize(
    ("code", "value", "unit", "stored"),
    [
        ("15074-8", 6.3, "mmol/L", ("glucose", 113.0, "mg/dL")),
        ("29463-7", 185, "[lb_av]", ("weight", 83.914588, "kg")),
        ("8310-5", 100.4, "[degF]", ("temperature", 38.0, "Cel")),
        ("59408-5", 96, "%", ("spo2", 96.0, "%")),
        ("2708-6", 95, "%", ("spo2", 95.0, "%")),
        ("34714-6", 2.4, "{INR}", ("inr", 2.4, "{INR}")),
        ("8867-4", 64, "{beats}/min", ("heart_rate", 64.0, "/min")),
    ],
)
def test_ucum_units_are_converted_as_the_native_api_converts_them(
    patient, patient_client, code, value, unit, stored
):
    response = post(
        patient_client, "/fhir/Observation", observation(patient, code, value=value, unit=unit)
    )

    assert response.status_code == 201, response.json()
    reading = Reading.objects.get(patient=patient)
    assert (reading.metric, round(reading.value, 8), reading.unit) == stored
    assert_valid_r4(response.json())


# --- Refusals -----------------------------------------------------------------------------


def test_a_code_vigil_does_not_monitor_is_422_and_stores_nothing(patient, patient_client):
    # Respiratory rate: in the clinical reference, not a metric Vigil takes readings of.
    response = post(
        patient_client, "/fhir/Observation", observation(patient, "9279-1", value=16, unit="/min")
    )

    assert response.status_code == 422
    [(message, expression)] = issues(response)
    assert message.startswith("Not a metric Vigil monitors")
    assert expression == ["Observation.code"]
    assert not Reading.objects.exists()


def test_an_implausible_value_is_refused_where_the_observation_carried_it(patient, patient_client):
    response = post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=5000, unit="mg/dL"),
    )

    assert response.status_code == 400
    assert issues(response) == [
        (
            "glucose 5000 mg/dL is outside the plausible range 10–1000 mg/dL",
            ["Observation.valueQuantity.value"],
        )
    ]
    assert not Reading.objects.exists()


def test_a_unit_of_another_metric_is_refused_at_the_quantity_code(patient, patient_client):
    response = post(
        patient_client, "/fhir/Observation", observation(patient, "29463-7", value=80, unit="mg/dL")
    )

    assert response.status_code == 400
    [(message, expression)] = issues(response)
    assert message.startswith("'mg/dL' is not a unit for weight")
    assert expression == ["Observation.valueQuantity.code"]


def test_a_date_without_time_and_offset_is_refused_at_effective_date_time(patient, patient_client):
    response = post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=100, unit="mg/dL", effective="2026-03-01"),
    )

    assert response.status_code == 400
    [(message, expression)] = issues(response)
    assert message.startswith("Must be an RFC 3339 date-time with a UTC offset")
    assert expression == ["Observation.effectiveDateTime"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expression"),
    [
        ("{not json", "application/fhir+json", 400, []),
        ('{"value": NaN}', "application/json", 400, []),
        ("[" * 100000, "application/json", 400, []),
        ("{}", "text/plain", 415, []),
        ('{"resourceType": "Patient"}', "application/fhir+json", 400, ["Observation.resourceType"]),
        ('"just a string"', "application/fhir+json", 400, ["Observation"]),
        (
            '{"resourceType": "Observation", "status": "final"}',
            "application/fhir+json",
            400,
            ["Observation.code"],
        ),
    ],
)
def test_hostile_bodies_are_4xx_operation_outcomes(
    patient_client, body, content_type, status, expression
):
    response = patient_client.post("/fhir/Observation", data=body, content_type=content_type)

    assert response.status_code == status
    [(_, found)] = issues(response)[:1]
    assert found == expression
    assert not Reading.objects.exists()


def test_huge_numbers_are_refused_not_a_500(patient, patient_client):
    # 1e400 is no double: JSON parsers read it as infinity.
    resource = observation(patient, "2339-0", value=123456789, unit="mg/dL")
    body = json.dumps(resource).replace("123456789", "1e400")
    response = patient_client.post(
        "/fhir/Observation", data=body, content_type="application/fhir+json"
    )

    assert response.status_code == 400
    assert issues(response)[0][1] == ["Observation.valueQuantity.value"]
    assert not Reading.objects.exists()


def test_an_observation_for_another_patient_is_404_and_stores_nothing(
    patient, other_patient, patient_client
):
    response = post(
        patient_client,
        "/fhir/Observation",
        observation(other_patient, "2339-0", value=100, unit="mg/dL"),
    )

    assert response.status_code == 404
    assert issues(response) == [
        (f"Patient/{other_patient.pk} is not known.", ["Observation.subject"])
    ]
    assert not Reading.objects.exists()


def test_staff_post_for_their_teams_patients_only(
    patient, other_patient, nurse_client, outsider_client
):
    resource = observation(patient, "2339-0", value=100, unit="mg/dL")

    assert post(outsider_client, "/fhir/Observation", resource).status_code == 404
    assert not Reading.objects.exists()
    assert post(nurse_client, "/fhir/Observation", resource).status_code == 201


def test_a_device_key_posts_for_its_patient_with_its_device(patient, device_client):
    response = post(
        device_client, "/fhir/Observation", observation(patient, "29463-7", value=80, unit="kg")
    )

    assert response.status_code == 201
    reading = Reading.objects.get(patient=patient)
    assert (reading.device_id, reading.device_serial) == (device_client.device.pk, "SC-1")


def test_without_a_credential_it_is_401(patient, anonymous_client):
    response = post(
        anonymous_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=100, unit="mg/dL"),
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="fhir"'
    assert issues(response) == [("Send 'Authorization: Bearer <token>'.", [])]
    assert not Reading.objects.exists()


# --- The FHIR specification's examples ----------------------------------------------------


def test_the_f001_glucose_example_is_accepted_as_it_is_sent(patient, patient_client):
    resource = fixture("observation-example-f001-glucose.json")
    resource["subject"] = {"reference": f"Patient/{patient.pk}"}

    response = post(patient_client, "/fhir/Observation", resource)

    assert response.status_code == 201, response.json()
    reading = Reading.objects.get(patient=patient)
    # 6.3 mmol/L (LOINC 15074-8) × 18.0156, kept in whole mg/dL as the native API keeps it.
    assert (reading.value, reading.sent_value, reading.sent_unit) == (113.0, 6.3, "mmol/L")
    assert reading.measured_at == datetime(2013, 4, 2, 8, 30, 10, tzinfo=UTC)
    assert reading.client_id == uuid.uuid5(
        IDENTIFIER_NAMESPACE, "http://www.bmc.nl/zorgportal/identifiers/observations|6323"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("observation-example-bloodpressure.json", {"systolic": 107.0, "diastolic": 60.0}),
        ("observation-example-bodyweight.json", {"value": 83.914588}),
    ],
)
def test_the_bp_and_body_weight_examples_need_a_time_of_day_with_an_offset(
    patient, patient_client, name, expected
):
    resource = fixture(name)
    resource["subject"] = {"reference": f"Patient/{patient.pk}"}
    # given: as published, a bare date ("2012-09-17"): no time, no offset to place it
    refused = post(patient_client, "/fhir/Observation", resource)
    assert refused.status_code == 400
    assert [expression for _, expression in issues(refused)] == [["Observation.effectiveDateTime"]]
    assert not Reading.objects.exists()
    # when: the same resource with the moment it was measured
    resource["effectiveDateTime"] = resource["effectiveDateTime"] + "T08:15:00-05:00"
    accepted = post(patient_client, "/fhir/Observation", resource)
    # then
    assert accepted.status_code == 201, accepted.json()
    stored = Reading.objects.filter(patient=patient).values(*expected).get()
    assert {name: round(value, 8) for name, value in stored.items()} == expected
    assert_valid_r4(accepted.json())


@pytest.mark.parametrize("header", ["identifier", "identifier=", "patient=Patient/1", "x|y"])
def test_an_if_none_exist_that_names_no_identifier_is_400(patient, patient_client, header):
    response = post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "2339-0", value=100, unit="mg/dL"),
        HTTP_IF_NONE_EXIST=header,
    )

    assert response.status_code == 400
    assert issues(response) == [
        ("If-None-Exist takes identifier={system}|{value}.", ["If-None-Exist"])
    ]
    assert not Reading.objects.exists()


def test_a_method_the_endpoint_does_not_have_is_405_operation_outcome(patient_client):
    response = patient_client.get("/fhir")

    assert response.status_code == 405
    assert issues(response) == [("GET is not supported here.", [])]


def test_a_lone_systolic_is_refused_pointing_at_the_panel(patient, patient_client):
    response = post(
        patient_client,
        "/fhir/Observation",
        observation(patient, "8480-6", value=120, unit="mm[Hg]"),
    )

    assert response.status_code == 422
    assert issues(response) == [
        (
            "A blood pressure is sent as the 85354-9 panel with both components.",
            ["Observation.code"],
        )
    ]


def test_a_panel_without_its_diastolic_is_refused_at_the_components(patient, patient_client):
    resource = blood_pressure(patient, 128, 82)
    del resource["component"][1]

    response = post(patient_client, "/fhir/Observation", resource)

    assert response.status_code == 400
    assert issues(response) == [
        (
            "A blood pressure panel needs its diastolic component (LOINC 8462-4).",
            ["Observation.component"],
        )
    ]
    assert not Reading.objects.exists()


def test_an_entered_in_error_observation_is_422_and_not_stored(patient, patient_client):
    resource = observation(patient, "2339-0", value=100, unit="mg/dL", status="entered-in-error")

    response = post(patient_client, "/fhir/Observation", resource)

    assert response.status_code == 422
    assert [expression for _, expression in issues(response)] == [["Observation.status"]]
    assert not Reading.objects.exists()
