"""The FHIR R4 endpoints at /fhir: authenticate, parse, call one interop.fhir function,
answer application/fhir+json. Every refusal is an OperationOutcome, never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from interop.fhir.access import reachable_patients
from interop.fhir.capability import capability_statement
from interop.fhir.create import REASONS, bundle_entries, create_observations
from interop.fhir.observations import check_structure, parse_observation_id, to_observation
from interop.fhir.outcomes import FhirError, Issue, operation_outcome
from interop.fhir.search import find_patients, observation_bundle, searchset, to_patient
from monitoring.audit import record, record_for_patients
from monitoring.auth import BearerTokenAuthentication, PatientPrincipal
from monitoring.models import AuditAction, Metric, Patient, Reading

FHIR_JSON = "application/fhir+json"
ACCEPTED_TYPES = frozenset({FHIR_JSON, "application/json"})
RELEASED = "2026-12-06"

User = get_user_model()


def fhir_response(data: dict, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(data, separators=(",", ":")),
        status=status,
        content_type=f"{FHIR_JSON}; charset=utf-8",
        headers=headers,
    )
    # Patient data: never kept by a browser or proxy (as config.api does for /api/v1/).
    patch_cache_control(response, no_store=True)
    return response


def fhir_view(*methods: str) -> Callable:
    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise FhirError.one(
                        405, f"{request.method} is not supported here.", code="not-supported"
                    )
                return view(request, *args, **kwargs)
            except FhirError as error:
                headers = None
                if error.status == 401:
                    headers = {"WWW-Authenticate": 'Bearer realm="fhir"'}
                return fhir_response(error.outcome(), error.status, headers)

        return wrapped

    return decorate


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/fhir")


def authenticate(request: HttpRequest, *, reading: bool):
    """The caller (a staff User or a PatientPrincipal), or FhirError 401/403."""
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except AuthenticationFailed as error:
        raise FhirError.one(401, str(error.detail), code="login") from None
    if found is None:
        raise FhirError.one(401, "Send 'Authorization: Bearer <token>'.", code="login")
    principal = found[0]
    if isinstance(principal, PatientPrincipal):
        if reading and principal.device is not None:
            raise FhirError.one(403, "A device key only posts Observations.", code="forbidden")
        return principal
    if isinstance(principal, User) and principal.is_active and principal.is_staff:
        return principal
    raise FhirError.one(403, "This endpoint needs a staff or patient token.", code="forbidden")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_body(request: HttpRequest) -> object:
    if request.content_type not in ACCEPTED_TYPES:
        raise FhirError.one(
            415, "Send the body as application/fhir+json (or application/json).", code="structure"
        )
    try:
        raw = request.body
    except RequestDataTooBig:
        raise FhirError.one(413, "The body is too large.", code="too-costly") from None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and integers past Python's digit limit too.
        raise FhirError.one(400, "The body is not valid JSON.", code="structure") from None


def _own_patient_id(principal) -> int | None:
    return principal.patient.pk if isinstance(principal, PatientPrincipal) else None


def _numeric_id(raw: str, kind: str) -> int:
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise FhirError.one(404, f"{kind}/{raw} is not known.", code="not-found")
    return int(raw)


@fhir_view("GET")
def metadata(request):
    return fhir_response(capability_statement(base=base_url(request), released=RELEASED))


@fhir_view("GET")
def patient_read(request, patient_id: str):
    principal = authenticate(request, reading=True)
    pk = _numeric_id(patient_id, "Patient")
    patient = reachable_patients(principal).filter(pk=pk).first()
    if patient is None:
        raise FhirError.one(404, f"Patient/{patient_id} is not known.", code="not-found")
    record(user=principal, patient=patient, action=AuditAction.VIEW, what=patient, request=request)
    return fhir_response(to_patient(patient))


@fhir_view("GET")
def patient_search(request):
    principal = authenticate(request, reading=True)
    base = base_url(request)
    patients = find_patients(principal=principal, params=request.GET)
    record_for_patients(
        user=principal,
        patient_ids=[patient.pk for patient in patients],
        action=AuditAction.VIEW,
        what=Patient,
        request=request,
    )
    return fhir_response(
        searchset(
            self_url=request.build_absolute_uri(),
            resources=[to_patient(patient) for patient in patients],
            next_url=None,
            base=base,
        )
    )


@fhir_view("GET")
def observation_read(request, observation_id: str):
    principal = authenticate(request, reading=True)
    key = parse_observation_id(observation_id)
    reading = None
    if key is not None:
        patient_id, client_id = key
        # Through the reading's key: the readings table has no index on client ids.
        reading = (
            Reading.objects.by_client_id(patient_id=patient_id, client_id=client_id)
            .filter(patient__in=reachable_patients(principal).filter(pk=patient_id))
            .exclude(metric=Metric.DOSE)
            .first()
        )
    if reading is None:
        raise FhirError.one(404, f"Observation/{observation_id} is not known.", code="not-found")
    record(
        user=principal,
        patient=reading.patient_id,
        action=AuditAction.VIEW,
        what=reading,
        request=request,
    )
    return fhir_response(to_observation(reading))


def _if_none_exist(request, resource: object) -> object:
    """`If-None-Exist: identifier=system|value` makes that identifier the resource's key."""
    header = request.headers.get("If-None-Exist")
    if header is None:
        return resource
    name, _, value = header.partition("=")
    system, bar, code = value.rpartition("|")
    if name != "identifier" or not code:
        raise FhirError.one(
            400, "If-None-Exist takes identifier={system}|{value}.", "If-None-Exist"
        )
    if isinstance(resource, dict):
        identifier = {"system": system, "value": code} if bar else {"value": code}
        resource = {**resource, "identifier": [identifier]}
    return resource


@fhir_view("GET", "POST")
def observations(request):
    if request.method == "GET":
        principal = authenticate(request, reading=True)
        found = observation_bundle(
            principal=principal,
            params=request.GET,
            self_url=request.build_absolute_uri(),
            base=base_url(request),
            own_patient_id=_own_patient_id(principal),
        )
        record(
            user=principal,
            patient=found["patient_id"],
            action=AuditAction.VIEW,
            what=Reading,
            request=request,
        )
        return fhir_response(found["bundle"])
    principal = authenticate(request, reading=False)
    resource = _if_none_exist(request, read_body(request))
    check_structure(resource)
    [created] = create_observations(
        principal=principal, resources=[(resource, "Observation")], all_or_nothing=True
    )
    if not created.ok:
        raise FhirError(created.status, created.issues)
    _record_created(principal, [created], request)
    location = f"{base_url(request)}/Observation/{created.observation_id}"
    headers = {"Location": location} if created.status == 201 else {}
    reading = Reading.objects.by_client_id(
        patient_id=created.patient_id, client_id=created.client_id
    ).get()
    return fhir_response(to_observation(reading), created.status, headers)


def _record_created(principal, outcomes: list, request) -> None:
    """One audit event per patient a request stored readings for (as a native batch)."""
    record_for_patients(
        user=principal,
        patient_ids=[outcome.patient_id for outcome in outcomes if outcome.status == 201],
        action=AuditAction.CREATE,
        what=Reading,
        request=request,
    )


@fhir_view("POST")
def bundle(request):
    principal = authenticate(request, reading=False)
    kind, resources = bundle_entries(read_body(request))
    outcomes = create_observations(
        principal=principal, resources=resources, all_or_nothing=kind == "transaction"
    )
    if kind == "transaction" and not all(outcome.ok for outcome in outcomes):
        failed = [outcome for outcome in outcomes if not outcome.ok and outcome.issues]
        issues: list[Issue] = [issue for outcome in failed for issue in outcome.issues]
        raise FhirError(failed[0].status if failed else 400, issues)
    _record_created(principal, outcomes, request)
    entries = []
    for outcome in outcomes:
        response: dict = {"status": REASONS[outcome.status]}
        if outcome.ok:
            response["location"] = f"Observation/{outcome.observation_id}"
            response["etag"] = 'W/"1"'  # a reading is never changed: always its first version
        else:
            response["outcome"] = operation_outcome(outcome.issues)
        entries.append({"response": response})
    return fhir_response({"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries})
