"""Observation <-> native reading item: the FHIR mapping of Vigil's readings.

Inbound, an Observation becomes a native ITEM dict (docs/api.md) that
monitoring.ingest.record_readings validates, converts and stores like any other: this module
only picks the fields out of the resource and remembers where in it each came from, so the
native per-field errors can be reported as OperationOutcome issues with FHIRPath
expressions. It reads plain dicts (json.loads output), no models: a 500-entry Bundle is
mapped without a query and without building a pydantic tree per entry.

Outbound, a stored Reading becomes an R4 Observation (vital-signs profile, LOINC code,
UCUM valueQuantity, the stated UTC offset).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta, timezone

from django.conf import settings
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from interop.fhir import codes
from interop.fhir.outcomes import FhirError, Issue
from monitoring.models import Entry, Reading, ReadingSource

# Idempotency: an Observation's identifier (system|value) is the key a client retries with.
# Vigil's key is a UUID per patient (Reading.client_id), so the identifier is mapped to one
# by uuid5 — the same identifier always lands on the same reading. An identifier that is
# itself a UUID URN (urn:ietf:rfc:3986 | urn:uuid:…, what Vigil emits) is that UUID.
IDENTIFIER_NAMESPACE = uuid.UUID("0b7f4e8c-52a1-4c3e-9d6f-4a1e2b3c5d7f")
# Without an identifier the key is derived from the content, so a retried POST of the same
# Observation is a duplicate rather than a second reading.
CONTENT_NAMESPACE = uuid.UUID("5c2d9a71-3e84-4b6a-8f10-7d2e6c9b0a43")
URI_SYSTEM = "urn:ietf:rfc:3986"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL_SIGNS_CATEGORY = {
    "coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}]
}
# Observation.status values that state a result; entered-in-error, cancelled, registered
# and unknown carry none to monitor.
RESULT_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/(?P<id>[0-9]{1,18})$")
ENTRIES = frozenset(Entry.values)


def entry_extension_url() -> str:
    """The extension that says how a value was entered (device | manual)."""
    return f"{settings.VIGIL_BASE_URL}/fhir/StructureDefinition/reading-entry"


@dataclass
class MappedObservation:
    """One inbound Observation as a native item, with where each item field came from."""

    item: dict
    patient_id: int
    paths: dict[str, str] = field(default_factory=dict)


class _Problems:
    """The issues found in one Observation. The answer is 400 when any says the resource
    is not well-formed, else 422: well-formed FHIR that Vigil cannot take (a code it does
    not monitor, a status without a result)."""

    def __init__(self, base: str):
        self.base = base
        self.issues: list[Issue] = []
        self.malformed = False

    @property
    def status(self) -> int:
        return 400 if self.malformed else 422

    def add(self, path: str, message: str, *, code: str = "invalid", status: int = 400) -> None:
        self.issues.append(Issue(message, (f"{self.base}.{path}" if path else self.base,), code))
        self.malformed = self.malformed or status == 400


def _get(data: dict, name: str, kind: type, problems: _Problems, path: str):
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = {dict: "an object", list: "an array", str: "a string"}.get(kind, kind.__name__)
        problems.add(path, f"Must be {expected}.", code="structure")
        return None
    return value


def _loinc_codes(concept: object) -> list[str]:
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return []
    return [
        coding["code"]
        for coding in concept["coding"]
        if isinstance(coding, dict)
        and coding.get("system") == codes.LOINC
        and isinstance(coding.get("code"), str)
    ]


def _quantity(raw: object, path: str, problems: _Problems) -> tuple[object, object]:
    """(value, unit) of a Quantity, as the native item takes them: the UCUM code, else the
    unit text. The value is passed on as sent: the native validation judges it."""
    if raw is None:
        problems.add(path, "This field is required: the measured value as a UCUM Quantity.")
        return None, None
    if not isinstance(raw, dict):
        problems.add(path, "Must be a Quantity object.", code="structure")
        return None, None
    value = raw.get("value")
    if value is None:
        problems.add(f"{path}.value", "This field is required.", code="required")
    unit = raw.get("code") if raw.get("code") is not None else raw.get("unit")
    return value, unit


def _effective(resource: dict, problems: _Problems) -> tuple[object, str]:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if resource.get(name) is not None:
            return resource[name], name
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and period.get("start") is not None:
        # A measurement reported as a period (FHIR's f001 example): when it started.
        return period["start"], "effectivePeriod.start"
    problems.add(
        "effectiveDateTime",
        "This field is required: when it was measured, with a UTC offset.",
        code="required",
    )
    return None, "effectiveDateTime"


def _patient_id(resource: dict, problems: _Problems) -> int | None:
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        problems.add(
            "subject", "This field is required: a reference Patient/{id}.", code="required"
        )
        return None
    match = PATIENT_REFERENCE.search(reference)
    if match is None:
        problems.add("subject.reference", "Must be a reference Patient/{id}.")
        return None
    return int(match["id"])


def identifier_key(resource: dict, problems: _Problems) -> tuple[str, str] | None:
    identifiers = _get(resource, "identifier", list, problems, "identifier") or []
    for position, identifier in enumerate(identifiers):
        if not isinstance(identifier, dict):
            problems.add(f"identifier[{position}]", "Must be an Identifier.", code="structure")
            return None
        system, value = identifier.get("system", ""), identifier.get("value")
        if isinstance(value, str) and value and isinstance(system, str):
            return system, value
    return None


def client_id_for(identifier: tuple[str, str] | None, item: dict) -> uuid.UUID:
    if identifier is None:
        content = json.dumps(item, sort_keys=True, default=str)
        return uuid.uuid5(CONTENT_NAMESPACE, content)
    system, value = identifier
    if system == URI_SYSTEM and value.lower().startswith("urn:uuid:"):
        try:
            return uuid.UUID(value[len("urn:uuid:") :])
        except ValueError:
            pass
    return uuid.uuid5(IDENTIFIER_NAMESPACE, f"{system}|{value}")


def _device(resource: dict, item: dict, paths: dict, problems: _Problems) -> None:
    device = resource.get("device")
    if device is None:
        return
    if not isinstance(device, dict):
        problems.add("device", "Must be a Reference.", code="structure")
        return
    identifier = device.get("identifier")
    if device.get("display") is not None:
        item["device"], paths["device"] = device["display"], "device.display"
    elif isinstance(identifier, dict) and identifier.get("value") is not None:
        item["device"], paths["device"] = identifier["value"], "device.identifier.value"


def _entry(resource: dict, item: dict, paths: dict, problems: _Problems) -> None:
    extensions = resource.get("extension")
    if not isinstance(extensions, list):
        return
    url = entry_extension_url()
    for position, extension in enumerate(extensions):
        if isinstance(extension, dict) and extension.get("url") == url:
            value = extension.get("valueCode")
            path = f"extension[{position}].valueCode"
            if not isinstance(value, str) or value not in ENTRIES:
                problems.add(path, f"Must be one of: {', '.join(Entry.values)}.")
                return
            item["entry"], paths["entry"] = value, path


def _blood_pressure(resource: dict, item: dict, paths: dict, problems: _Problems) -> None:
    bp = codes.blood_pressure_codes()
    wanted = {bp.systolic.code: "systolic", bp.diastolic.code: "diastolic"}
    heart_rate = {code.code for code in codes.codes_by_metric()["heart_rate"]}
    units: dict[str, object] = {}
    for position, component in enumerate(
        _get(resource, "component", list, problems, "component") or []
    ):
        component_codes = set(
            _loinc_codes(component.get("code") if isinstance(component, dict) else None)
        )
        name = next((wanted[code] for code in component_codes if code in wanted), None)
        if name is None and component_codes & heart_rate:
            name = "pulse"
        if name is None or name in item:
            continue
        path = f"component[{position}].valueQuantity"
        value, unit = _quantity(component.get("valueQuantity"), path, problems)
        item[name], paths[name] = value, f"{path}.value"
        if name != "pulse":
            units[name] = unit
            paths["unit"] = f"{path}.code"
    for name, code in (("systolic", bp.systolic), ("diastolic", bp.diastolic)):
        if name not in item:
            problems.add(
                "component",
                f"A blood pressure panel needs its {name} component (LOINC {code.code}).",
                code="required",
            )
    if len({json.dumps(unit) for unit in units.values()}) > 1:
        problems.add("component", "Systolic and diastolic must be in the same unit.")
    item["unit"] = next(iter(units.values()), None)


def _check_status(resource: dict, problems: _Problems) -> None:
    status = resource.get("status")
    if status is None:
        problems.add("status", "This field is required.", code="required")
    elif not isinstance(status, str) or status not in RESULT_STATUSES:
        problems.add(
            "status",
            f"Must be one of: {', '.join(sorted(RESULT_STATUSES))} (a result to monitor).",
            code="value",
            status=422,
        )


def _metric(resource: dict, problems: _Problems) -> str:
    """The metric the first LOINC coding Vigil knows names, or FhirError (422)."""
    loinc = _loinc_codes(resource.get("code"))
    known = codes.metric_by_code()
    metric = next((known[code] for code in loinc if code in known), None)
    if metric is not None:
        return metric
    if set(loinc) & codes.component_codes():
        message = "A blood pressure is sent as the 85354-9 panel with both components."
    else:
        message = (
            "Not a metric Vigil monitors: code must carry a LOINC code of blood glucose, "
            "blood pressure (panel), body weight, INR, heart rate, SpO2 or body temperature."
        )
    problems.add("code", message, code="not-supported", status=422)
    raise FhirError(problems.status, problems.issues)


def to_item(resource: object, *, base: str = "Observation") -> MappedObservation:
    """The native item an Observation stands for, or FhirError (400 malformed, 422 not a
    reading Vigil monitors) with every issue found. Id: see client_id_for."""
    problems = _Problems(base)
    if not isinstance(resource, dict):
        raise FhirError.one(400, "Must be an Observation resource (a JSON object).", base)
    if resource.get("resourceType") != "Observation":
        raise FhirError.one(
            400, "resourceType must be 'Observation'.", f"{base}.resourceType", code="structure"
        )
    _check_status(resource, problems)
    metric = _metric(resource, problems)
    patient_id = _patient_id(resource, problems)
    measured_at, effective_path = _effective(resource, problems)
    item: dict = {"type": metric, "measured_at": measured_at}
    paths = {"type": "code", "measured_at": effective_path, "id": "identifier"}
    if metric == "blood_pressure":
        _blood_pressure(resource, item, paths, problems)
    else:
        value, unit = _quantity(resource.get("valueQuantity"), "valueQuantity", problems)
        item.update(value=value, unit=unit)
        paths.update(value="valueQuantity.value", unit="valueQuantity.code")
    _device(resource, item, paths, problems)
    _entry(resource, item, paths, problems)
    identifier = identifier_key(resource, problems)
    if problems.issues:
        raise FhirError(problems.status, problems.issues)
    item = {"id": str(client_id_for(identifier, item)), **item}
    return MappedObservation(item=item, patient_id=patient_id, paths=paths)


def check_structure(resource: object, *, base: str = "Observation") -> None:
    """FhirError(400) unless `resource` is a structurally valid R4 Observation, judged by
    fhir.resources (R4B models: R4's Observation, Bundle and Patient are unchanged in R4B).

    Used for a single POST. Bundle entries skip it: validating 500 Observations took 223 ms
    here against 12 ms for mapping them with to_item (and ~35 ms for the native
    validation of the items) — it would have been most of a Bundle's time. to_item checks
    every field it reads; the resources Vigil emits are validated with it in the tests.
    """
    if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
        return  # to_item says what is wrong with it
    try:
        get_fhir_model_class("Observation").model_validate(resource)
    except ValidationError as error:
        issues = [
            Issue(problem["msg"], (_fhirpath(base, problem["loc"]),), "structure")
            for problem in error.errors(include_url=False, include_input=False)[:20]
        ]
        raise FhirError(400, issues) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise FhirError.one(
            400, f"Not a valid Observation: {type(error).__name__}.", base
        ) from None


def _fhirpath(base: str, location: tuple) -> str:
    path = base
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def native_issues(
    errors: dict[str, list[str]], mapped: MappedObservation, base: str
) -> list[Issue]:
    """record_readings' per-field errors, placed where the Observation carried the field."""
    return [
        Issue(message, (f"{base}.{mapped.paths.get(name, '')}".rstrip("."),), "invalid")
        for name, messages in errors.items()
        for message in messages
    ]


# --- Reading -> Observation ---------------------------------------------------------------


def observation_id(patient_id: int, client_id) -> str:
    """An Observation's id: the reading's key, `{patient id}-{client id}` (a client id is
    unique per patient). Naming a created reading needs no query, and the id does not
    depend on the table's own primary key."""
    return f"{patient_id}-{client_id}"


OBSERVATION_ID = re.compile(
    r"^(?P<patient>[0-9]{1,18})-(?P<client>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


def parse_observation_id(text: str) -> tuple[int, str] | None:
    match = OBSERVATION_ID.match(text)
    return (int(match["patient"]), match["client"]) if match else None


def _number(value: float) -> float | int:
    return int(value) if math.isfinite(value) and value == int(value) else value


def _quantity_out(value: float, unit: str) -> dict:
    shown = {"mm[Hg]": "mmHg"}.get(unit, unit)
    return {"value": _number(value), "unit": shown, "system": codes.UCUM, "code": unit}


def _local(moment, offset_minutes: int) -> str:
    return moment.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat()


def to_observation(reading: Reading) -> dict:
    """A stored measurement as an R4 vital-signs Observation."""
    metric = reading.metric
    cgm = metric == "glucose" and (
        reading.source == ReadingSource.NIGHTSCOUT or bool(reading.trend)
    )
    resource = {
        "resourceType": "Observation",
        "id": observation_id(reading.patient_id, reading.client_id),
        "meta": {"profile": codes.profiles(metric)},
        "identifier": [{"system": URI_SYSTEM, "value": f"urn:uuid:{reading.client_id}"}],
        "status": "final",
        "category": [VITAL_SIGNS_CATEGORY],
        "code": {"coding": list(codes.emitted_codings(metric, cgm=cgm))},
        "subject": {"reference": f"Patient/{reading.patient_id}"},
        "effectiveDateTime": _local(reading.measured_at, reading.utc_offset_minutes),
        "issued": reading.received_at.isoformat(),
        "extension": [{"url": entry_extension_url(), "valueCode": reading.entry}],
    }
    if metric == "blood_pressure":
        bp = codes.blood_pressure_codes()
        resource["component"] = [
            {
                "code": {"coding": [code.coding()]},
                "valueQuantity": _quantity_out(value, reading.unit),
            }
            for code, value in ((bp.systolic, reading.systolic), (bp.diastolic, reading.diastolic))
        ]
    else:
        resource["valueQuantity"] = _quantity_out(
            reading.value, reading.unit or codes.canonical_unit(metric)
        )
    if reading.device_serial:
        resource["device"] = {"display": reading.device_serial}
    return resource
