"""POST /fhir: batch and transaction Bundles of Observation POSTs."""

from __future__ import annotations

import pytest

from monitoring.models import AuditEvent, Reading
from tests.factories import PatientFactory
from tests.interop.fhir.helpers import (
    assert_valid_r4,
    blood_pressure,
    bundle,
    fhir_id,
    issues,
    observation,
    post,
)

pytestmark = pytest.mark.django_db


def test_a_batch_answers_each_entry_in_order(patient, patient_client):
    stored = observation(patient, "8867-4", value=64, unit="/min", identifier="hr-1")
    post(patient_client, "/fhir/Observation", stored)
    entries = [
        observation(patient, "2339-0", value=100, unit="mg/dL", identifier="g-1"),
        stored,  # already stored: a duplicate
        observation(patient, "2339-0", value=5000, unit="mg/dL", identifier="g-2"),
        observation(patient, "9279-1", value=16, unit="/min"),
        blood_pressure(patient, 128, 82, identifier="bp-1"),
    ]

    response = post(patient_client, "/fhir", bundle("batch", entries))

    assert response.status_code == 200
    body = assert_valid_r4(response.json())
    assert body["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in body["entry"]]
    assert statuses == [
        "201 Created",
        "200 OK",
        "400 Bad Request",
        "422 Unprocessable Entity",
        "201 Created",
    ]
    glucose = Reading.objects.get(patient=patient, metric="glucose")
    assert body["entry"][0]["response"]["location"] == f"Observation/{fhir_id(glucose)}"
    assert body["entry"][2]["response"]["outcome"]["issue"][0]["expression"] == [
        "Bundle.entry[2].resource.valueQuantity.value"
    ]
    assert body["entry"][3]["response"]["outcome"]["issue"][0]["expression"] == [
        "Bundle.entry[3].resource.code"
    ]
    assert sorted(Reading.objects.filter(patient=patient).values_list("metric", flat=True)) == [
        "blood_pressure",
        "glucose",
        "heart_rate",
    ]


def test_a_transaction_is_all_or_nothing(patient, patient_client):
    entries = [
        observation(patient, "2339-0", value=100, unit="mg/dL", identifier="g-1"),
        observation(patient, "2339-0", value=5000, unit="mg/dL", identifier="g-2"),
    ]

    response = post(patient_client, "/fhir", bundle("transaction", entries))

    assert response.status_code == 400
    assert issues(response) == [
        (
            "glucose 5000 mg/dL is outside the plausible range 10–1000 mg/dL",
            ["Bundle.entry[1].resource.valueQuantity.value"],
        )
    ]
    assert not Reading.objects.exists()


def test_a_transaction_that_maps_is_stored_whole(patient, patient_client):
    entries = [
        observation(patient, "2339-0", value=100 + n, unit="mg/dL", identifier=f"g-{n}")
        for n in range(3)
    ]

    response = post(patient_client, "/fhir", bundle("transaction", entries))

    assert response.status_code == 200
    body = assert_valid_r4(response.json())
    assert body["type"] == "transaction-response"
    assert [entry["response"]["status"] for entry in body["entry"]] == ["201 Created"] * 3
    assert Reading.objects.filter(patient=patient).count() == 3


def test_a_transaction_naming_an_unreachable_patient_stores_nothing(
    patient, other_patient, patient_client
):
    entries = [
        observation(patient, "2339-0", value=100, unit="mg/dL"),
        observation(other_patient, "2339-0", value=100, unit="mg/dL"),
    ]

    response = post(patient_client, "/fhir", bundle("transaction", entries))

    assert response.status_code == 404
    assert issues(response) == [
        (f"Patient/{other_patient.pk} is not known.", ["Bundle.entry[1].resource.subject"])
    ]
    assert not Reading.objects.exists()


def test_staff_batch_for_several_patients_of_their_teams(patient, nurse, nurse_client, team):
    second = PatientFactory(care_team=team)
    entries = [
        observation(patient, "2339-0", value=100, unit="mg/dL"),
        observation(second, "2339-0", value=101, unit="mg/dL"),
    ]

    response = post(nurse_client, "/fhir", bundle("batch", entries))

    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created"] * 2
    assert Reading.objects.get(patient=second).value == 101.0
    # One audit event per patient the batch stored readings for, as a native batch.
    events = AuditEvent.objects.order_by("patient_id").values_list(
        "user_id", "patient_id", "action", "model"
    )
    assert list(events) == [
        (nurse.pk, patient.pk, "create", "monitoring.reading"),
        (nurse.pk, second.pk, "create", "monitoring.reading"),
    ]


def test_a_bundle_of_501_entries_is_refused_whole(patient, patient_client):
    entries = [observation(patient, "8867-4", value=60, unit="/min")] * 501

    response = post(patient_client, "/fhir", bundle("batch", entries))

    assert response.status_code == 400
    assert issues(response) == [
        (
            "A Bundle holds at most 500 entries; this one has 501. Split it into smaller Bundles.",
            ["Bundle.entry"],
        )
    ]
    assert not Reading.objects.exists()


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({"resourceType": "Observation"}, ["Bundle.resourceType"]),
        ({"resourceType": "Bundle", "type": "collection"}, ["Bundle.type"]),
        ({"resourceType": "Bundle", "type": "batch", "entry": {}}, ["Bundle.entry"]),
    ],
)
def test_what_is_not_a_batch_or_transaction_is_refused(patient_client, body, expression):
    response = post(patient_client, "/fhir", body)

    assert response.status_code == 400
    assert [found for _, found in issues(response)] == [expression]


def test_an_entry_that_is_not_an_observation_post_is_refused_alone(patient, patient_client):
    body = bundle("batch", [observation(patient, "2339-0", value=100, unit="mg/dL")])
    body["entry"].append({"request": {"method": "DELETE", "url": "Observation/1"}})
    body["entry"].append("nonsense")

    response = post(patient_client, "/fhir", body)

    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "400 Bad Request"]
    assert response.json()["entry"][1]["response"]["outcome"]["issue"][0]["expression"] == [
        "Bundle.entry[1].request"
    ]
    assert Reading.objects.count() == 1
