"""Building FHIR requests and checking what /fhir answers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

FHIR_JSON = "application/fhir+json"
FIXTURES = Path(__file__).with_name("fixtures")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def assert_valid_r4(resource: dict) -> dict:
    """Validates `resource` (and all it contains) as FHIR R4 with fhir.resources' R4B models,
    which keep R4's Observation, Patient, Bundle, OperationOutcome and CapabilityStatement."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def quantity(value, code: str) -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def observation(
    patient,
    code: str,
    *,
    value=None,
    unit: str | None = None,
    effective: str = "2026-03-01T07:30:00+01:00",
    identifier: str | None = None,
    **extra,
) -> dict:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient.pk}"},
        "effectiveDateTime": effective,
    }
    if value is not None:
        resource["valueQuantity"] = quantity(value, unit)
    if identifier is not None:
        resource["identifier"] = [{"system": "https://clinic.example/obs", "value": identifier}]
    resource.update(extra)
    return resource


def blood_pressure(patient, systolic, diastolic, *, pulse=None, unit="mm[Hg]", **extra) -> dict:
    components = [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "valueQuantity": quantity(systolic, unit),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
            "valueQuantity": quantity(diastolic, unit),
        },
    ]
    if pulse is not None:
        components.append(
            {
                "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                "valueQuantity": quantity(pulse, "/min"),
            }
        )
    return observation(patient, "85354-9", component=components, **extra)


def bundle(kind: str, resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": copy.deepcopy(r), "request": {"method": "POST", "url": "Observation"}}
            for r in resources
        ],
    }


def post(client, path: str, body, *, content_type: str = FHIR_JSON, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type, **headers)


def issues(response) -> list[tuple[str, list[str]]]:
    """(diagnostics, expression) of each issue of an OperationOutcome answer."""
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert_valid_r4(body)
    return [(issue["diagnostics"], issue.get("expression", [])) for issue in body["issue"]]


def fhir_id(reading) -> str:
    """The Observation id of a stored reading: its key, patient and client id."""
    return f"{reading.patient_id}-{reading.client_id}"
