"""No input makes /fhir answer 5xx: any JSON value in any element of an Observation, alone
or in a Bundle, is stored or refused with an OperationOutcome."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.interop.fhir.helpers import blood_pressure, bundle, observation, post

pytestmark = pytest.mark.django_db

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["\x00", "Patient/1", "urn:uuid:x", "2026-02-30T10:00:00Z", "9" * 400]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
PATHS = [
    ("resourceType",),
    ("status",),
    ("code",),
    ("code", "coding"),
    ("code", "coding", 0, "code"),
    ("subject",),
    ("subject", "reference"),
    ("effectiveDateTime",),
    ("valueQuantity",),
    ("valueQuantity", "value"),
    ("valueQuantity", "code"),
    ("identifier",),
    ("identifier", 0, "value"),
    ("device",),
    ("extension",),
    ("component",),
    ("component", 0, "valueQuantity", "value"),
    ("component", 1, "code"),
]


def _replaced(resource: dict, path: tuple, value) -> dict:
    resource = json.loads(json.dumps(resource))
    target = resource
    for step in path[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(step, {})
        elif isinstance(target, list) and isinstance(step, int) and step < len(target):
            target = target[step]
        else:
            return resource
    settable = isinstance(target, dict) or (
        isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target)
    )
    if settable:
        target[path[-1]] = value
    return resource


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(["glucose", "bp"]), path=st.sampled_from(PATHS), value=JSON_VALUES)
def test_any_value_anywhere_is_a_4xx_or_stored_never_a_5xx(
    patient, patient_client, kind, path, value
):
    valid = (
        observation(patient, "2339-0", value=100, unit="mg/dL", identifier="x")
        if kind == "glucose"
        else blood_pressure(patient, 128, 82, identifier="y")
    )
    resource = _replaced(valid, path, value)

    single = post(patient_client, "/fhir/Observation", resource)
    batch = post(patient_client, "/fhir", bundle("batch", [resource, valid]))

    assert single.status_code < 500
    assert single.json()["resourceType"] in ("Observation", "OperationOutcome")
    assert batch.status_code == 200
    assert [entry["response"]["status"][:1] for entry in batch.json()["entry"]][1] == "2"
