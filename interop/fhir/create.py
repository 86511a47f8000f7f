"""Creating Observations: one, or the entries of a batch / transaction Bundle.

Every Observation is mapped to a native item (observations.to_item) and stored by
monitoring.ingest.record_readings with channel FHIR — the same validation, unit
conversion, idempotency, plausibility, timestamp checks and evaluation as a native batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from interop.fhir.access import reachable_patients
from interop.fhir.observations import MappedObservation, native_issues, observation_id, to_item
from interop.fhir.outcomes import FhirError, Issue
from monitoring.auth import PatientPrincipal
from monitoring.ingest import FHIR, ItemStatus, record_readings

REASONS = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    404: "404 Not Found",
    409: "409 Conflict",
    422: "422 Unprocessable Entity",
}


@dataclass
class Created:
    """What became of one Observation: the HTTP status, the stored reading's patient and
    client id (201, 200), or the issues that kept it out."""

    status: int
    patient_id: int | None = None
    client_id: str | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def observation_id(self) -> str:
        return observation_id(self.patient_id, self.client_id)

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


@dataclass
class _Pending:
    position: int
    mapped: MappedObservation
    base: str


def create_observations(
    *, principal, resources: list[tuple[object, str]], all_or_nothing: bool
) -> list[Created]:
    """Store Observations for the patients `principal` reaches; one Created per resource,
    in order. `resources`: (resource, its FHIRPath base for issues). With all_or_nothing,
    nothing is stored unless every resource is (a transaction Bundle).

    Writes Reading rows through record_readings (one call, one INSERT, per patient);
    enqueues the evaluation after commit, as it does.
    """
    outcomes: list[Created | None] = [None] * len(resources)
    pending: dict[int, list[_Pending]] = {}
    for position, (resource, base) in enumerate(resources):
        try:
            if isinstance(resource, FhirError):
                raise resource
            mapped = to_item(resource, base=base)
        except FhirError as error:
            outcomes[position] = Created(error.status, issues=error.issues)
            continue
        pending.setdefault(mapped.patient_id, []).append(_Pending(position, mapped, base))
    if all_or_nothing and any(outcome is not None for outcome in outcomes):
        return [outcome or Created(400, issues=[]) for outcome in outcomes]
    if isinstance(principal, PatientPrincipal):  # its own patient, already loaded
        patients = {principal.patient.pk: principal.patient}
    else:
        patients = reachable_patients(principal).in_bulk(list(pending))
    device = getattr(principal, "device", None)
    with transaction.atomic():
        for patient_id, entries in pending.items():
            patient = patients.get(patient_id)
            if patient is None:
                for entry in entries:
                    outcomes[entry.position] = Created(
                        404,
                        issues=[
                            Issue(
                                f"Patient/{patient_id} is not known.",
                                (f"{entry.base}.subject",),
                                "not-found",
                            )
                        ],
                    )
                continue
            _store(patient, entries, device, outcomes)
        if all_or_nothing and not all(outcome.ok for outcome in outcomes):
            transaction.set_rollback(True)  # and the evaluation enqueued on commit with it
    return outcomes


def _store(patient, entries: list[_Pending], device, outcomes: list) -> None:
    result = record_readings(
        patient=patient,
        items=[entry.mapped.item for entry in entries],
        device=device,
        channel=FHIR,
    )
    # The Observation id is the reading's key (patient, client id): no query to name it.
    for entry, item in zip(entries, result.results, strict=True):
        if item.status == ItemStatus.CREATED:
            outcomes[entry.position] = Created(201, patient.pk, entry.mapped.item["id"])
        elif item.status == ItemStatus.DUPLICATE:
            outcomes[entry.position] = Created(200, patient.pk, entry.mapped.item["id"])
        elif item.status == ItemStatus.CONFLICT:
            outcomes[entry.position] = Created(
                409,
                issues=[
                    Issue(
                        "An Observation with this identifier is already stored with other content.",
                        (f"{entry.base}.identifier",),
                        "conflict",
                    )
                ],
            )
        else:
            outcomes[entry.position] = Created(
                400, issues=native_issues(item.errors or {}, entry.mapped, entry.base)
            )


def bundle_entries(bundle: object) -> tuple[str, list[tuple[object, str]]]:
    """The type of a batch/transaction Bundle and its Observations, or FhirError (400)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.one(
            400, "POST /fhir takes a Bundle.", "Bundle.resourceType", code="structure"
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError.one(400, "Bundle.type must be 'batch' or 'transaction'.", "Bundle.type")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError.one(400, "Must be an array.", "Bundle.entry", code="structure")
    if len(entries) > settings.VIGIL_MAX_BATCH:
        raise FhirError.one(
            400,
            f"A Bundle holds at most {settings.VIGIL_MAX_BATCH} entries; this one has "
            f"{len(entries)}. Split it into smaller Bundles.",
            "Bundle.entry",
            code="too-costly",
        )
    resources = []
    for position, entry in enumerate(entries):
        base = f"Bundle.entry[{position}]"
        request = entry.get("request") if isinstance(entry, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        url = request.get("url") if isinstance(request, dict) else None
        if method != "POST" or not isinstance(url, str) or url.split("?")[0] != "Observation":
            refusal = FhirError.one(
                400,
                "Each entry must be a POST of an Observation (request.method 'POST', "
                "request.url 'Observation').",
                f"{base}.request",
                code="not-supported",
            )
            resources.append((refusal, base))
            continue
        resources.append((entry.get("resource"), f"{base}.resource"))
    return kind, resources
