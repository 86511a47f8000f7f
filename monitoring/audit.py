"""The audit log: every view and change of a patient's data, who, what, when, from where.

`record()` writes one AuditEvent; views outside the two generic paths call it themselves:

    record(user=request.user, patient=patient, action="view", what=patient, request=request)

The two generic paths:
- the API: ApiAuditMiddleware records each successful call of an endpoint in API_AUDIT
  (every endpoint is either there or in NOT_AUDITED; a test holds the URLconf to it);
- the admin: alerts.admin_scoping.TeamScopedAdmin records its list, change and history
  pages, saves, deletions and actions.

A list showing several patients' data writes one event per patient shown, so "who saw this
patient?" is one indexed query. A batch of readings is one event, not one per reading.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.http import HttpRequest

from monitoring.models import AuditAction, AuditEvent, AuditSurface, Patient

logger = logging.getLogger(__name__)

USER_AGENT_LENGTH = 300
PATH_LENGTH = 500


def client_ip(request: HttpRequest | None) -> str | None:
    """The address the request came from.

    REMOTE_ADDR, unless it is one of the reverse proxies in VIGIL_TRUSTED_PROXIES: then the
    client is the last address in X-Forwarded-For that is not a trusted proxy. A client can
    write any X-Forwarded-For it likes, but each trusted proxy appends the address it saw,
    so reading from the right, past our own proxies, gives the address nobody could forge.
    """
    if request is None:
        return None
    address = _parse_address(request.META.get("REMOTE_ADDR", ""))
    trusted = settings.VIGIL_TRUSTED_PROXIES
    if address is None or not _is_trusted(address, trusted):
        return str(address) if address is not None else None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed(forwarded.split(",") if forwarded else []):
        hop_address = _parse_address(hop)
        if hop_address is None:
            break  # garbage a trusted proxy would not write: believe no further
        address = hop_address
        if not _is_trusted(address, trusted):
            break
    return str(address)


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # ::ffff:192.0.2.1 is the IPv4 client of a dual-stack socket, not another address.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_trusted(address, networks) -> bool:
    return any(address in network for network in networks)


def _surface(request: HttpRequest | None) -> str:
    path = request.path if request is not None else ""
    if path.startswith(("/api/", "/fhir")):  # /fhir: the FHIR R4 API (interop.views.fhir)
        return AuditSurface.API
    if path.startswith("/admin/"):
        return AuditSurface.ADMIN
    return AuditSurface.OTHER


def _actor(user) -> tuple[int | None, str]:
    """(user id, actor label): a staff user, the patient credential that acted, or a job
    that changed a record on its own, named by a label ("system:timer-cap")."""
    if isinstance(user, str):
        return None, user
    if user is None or not getattr(user, "is_authenticated", False):
        return None, "anonymous"
    if isinstance(getattr(user, "pk", None), int):
        return user.pk, user.get_username()
    return None, str(user.pk)  # PatientPrincipal: "patient:5" / "device:3"


def _what(what) -> tuple[str, str]:
    """(model label, object id) of a model instance, a model class or a label."""
    if isinstance(what, models.Model):
        return what._meta.label_lower, "" if what.pk is None else str(what.pk)
    if isinstance(what, type) and issubclass(what, models.Model):
        return what._meta.label_lower, ""
    return str(what), ""


def _event(*, user, patient_id, action, model, object_id, fields, request) -> AuditEvent:
    user_id, actor = _actor(user)
    meta = request.META if request is not None else {}
    return AuditEvent(
        user_id=user_id,
        actor=actor[:150],
        patient_id=patient_id,
        action=AuditAction(action),
        model=model[:100],
        object_id=object_id[:64],
        fields=sorted(fields),
        surface=_surface(request),
        method=request.method if request is not None else "",
        path=request.get_full_path()[:PATH_LENGTH] if request is not None else "",
        ip=client_ip(request),
        user_agent=meta.get("HTTP_USER_AGENT", "")[:USER_AGENT_LENGTH],
    )


def record(
    *,
    user,
    patient: Patient | int | None,
    action: str,
    what,
    request: HttpRequest | None = None,
    fields: Iterable[str] = (),
    object_id: str | int | None = None,
) -> AuditEvent:
    """Writes one AuditEvent: `user` did `action` ("view", "create", "change", "delete",
    "export") to `what` (a model instance, a model class for a list, or a label) of
    `patient`; `fields` names the fields a change changed."""
    model, found_id = _what(what)
    patient_id = patient.pk if isinstance(patient, Patient) else patient
    event = _event(
        user=user,
        patient_id=patient_id,
        action=action,
        model=model,
        object_id=str(object_id) if object_id is not None else found_id,
        fields=fields,
        request=request,
    )
    event.save()
    return event


def record_for_patients(
    *,
    user,
    patient_ids: Iterable[int],
    action: str,
    what,
    request: HttpRequest | None = None,
    fields: Iterable[str] = (),
    object_id: str | int | None = None,
) -> list[AuditEvent]:
    """Writes one AuditEvent per distinct patient, in one INSERT (a list page that showed
    several patients' data)."""
    model, found_id = _what(what)
    fields = list(fields)
    events = [
        _event(
            user=user,
            patient_id=patient_id,
            action=action,
            model=model,
            object_id=str(object_id) if object_id is not None else found_id,
            fields=fields,
            request=request,
        )
        for patient_id in dict.fromkeys(patient_ids)
        if patient_id is not None
    ]
    if len(events) == 1:
        # One INSERT, no transaction of its own around it (bulk_create opens one: two more
        # round trips and a commit on every patient's upload).
        events[0].save()
        return events
    return AuditEvent.objects.bulk_create(events)


# --- The API ------------------------------------------------------------------------------

METHOD_ACTIONS = {
    "GET": AuditAction.VIEW,
    "HEAD": AuditAction.VIEW,  # a HEAD is a GET without the body: it still reaches the data
    "POST": AuditAction.CREATE,
    "PUT": AuditAction.CHANGE,
    "PATCH": AuditAction.CHANGE,
    "DELETE": AuditAction.DELETE,
}


@dataclass(frozen=True)
class ApiAudit:
    """How one endpoint's successful calls are recorded.

    The patient is the URL's `patient_id`, else the patient of the app token or device key
    that called, unless `patients_in_response` names the key holding each patient's id in
    the response (in each of `results` for a list). The object is the URL kwarg
    `object_kwarg`, else the `id` of a created object. Writes other than GET are `action`
    (default: from the method) of `fields` (default: a change's body keys).
    """

    model: str
    object_kwarg: str | None = None
    patients_in_response: str | None = None
    action: str | None = None
    fields: tuple[str, ...] | None = None


# Every API endpoint (by URL name) that shows or changes a patient's data.
API_AUDIT: dict[str, ApiAudit] = {
    # The patient app and devices, for their own patient.
    "me": ApiAudit("monitoring.patient"),
    "readings": ApiAudit("monitoring.reading"),  # a posted batch is one event
    "nudges": ApiAudit("monitoring.nudge"),
    "nudge-opened": ApiAudit(
        "monitoring.nudge", object_kwarg="nudge_id", action="change", fields=("opened_at",)
    ),
    "push-tokens": ApiAudit("monitoring.pushtoken"),
    # Staff.
    "patients": ApiAudit("monitoring.patient", patients_in_response="id"),
    "patient-detail": ApiAudit("monitoring.patient", object_kwarg="patient_id"),
    "patient-readings": ApiAudit("monitoring.reading"),
    "patient-tokens": ApiAudit("monitoring.patientapptoken"),
    "patient-token-detail": ApiAudit(
        "monitoring.patientapptoken",
        object_kwarg="token_id",
        action="change",
        fields=("revoked_at",),
    ),
    "patient-devices": ApiAudit("monitoring.device"),
    "patient-device-detail": ApiAudit(
        "monitoring.device", object_kwarg="device_id", action="change", fields=("revoked_at",)
    ),
    "patient-rules": ApiAudit("monitoring.rule"),
    "patient-rule-detail": ApiAudit("monitoring.rule", object_kwarg="rule_id"),
    "patient-schedules": ApiAudit("monitoring.measurementschedule"),
    "patient-schedule-detail": ApiAudit(
        "monitoring.measurementschedule", object_kwarg="schedule_id"
    ),
    "patient-medications": ApiAudit("monitoring.medicationplan"),
    "patient-medication-detail": ApiAudit("monitoring.medicationplan", object_kwarg="plan_id"),
    # interop: issuing (create) and revoking (delete) a patient's Nightscout uploader.
    "patient-nightscout": ApiAudit("interop.nightscoutuploader"),
    "alerts": ApiAudit("alerts.alert", patients_in_response="patient"),
    # The RPM program (issue 13).
    "patient-reviews": ApiAudit("program.review"),
    "alert-acknowledge": ApiAudit(
        "alerts.alert",
        object_kwarg="alert_id",
        patients_in_response="patient",
        action="change",
        fields=("status",),
    ),
    "alert-resolve": ApiAudit(
        "alerts.alert",
        object_kwarg="alert_id",
        patients_in_response="patient",
        action="change",
        fields=("status",),
    ),
    # The RPM program's billing (program/views/billing.py): one patient's month, and the
    # month's ledger (one event per patient shown; the CSV export adds an "export" event
    # per patient, written by the view).
    "patient-billing": ApiAudit("program.ledgerline"),
    "billing-ledger": ApiAudit("program.ledgerline", patients_in_response="patient"),
    # program (issue 13): RPM episodes and care time.
    "patient-episodes": ApiAudit("program.episode"),
    "patient-episode-detail": ApiAudit(
        "program.episode", object_kwarg="episode_id", action="change", fields=("end",)
    ),
    "patient-time-entries": ApiAudit("program.timeentry"),
    "time-entry-approve": ApiAudit(
        "program.timeentry",
        object_kwarg="entry_id",
        patients_in_response="patient",
        action="change",
        fields=("approved_at", "approved_by"),
    ),
    # The RPM program (issue 13): the panel shows each patient of its page.
    "panel": ApiAudit("monitoring.patient", patients_in_response="patient"),
}
# API endpoints that show no patient's data, and why.
NOT_AUDITED: dict[str, str] = {
    "auth-token": "a staff login or logout; no patient data",
    "care-teams": "teams and their staff; no patient data",
}


def _response_data(response):
    return getattr(response, "data", None)


def _patient_ids(spec: ApiAudit, request, response, kwargs) -> list[int]:
    data = _response_data(response)
    if spec.patients_in_response:
        key = spec.patients_in_response
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            return [row[key] for row in data["results"] if isinstance(row, dict) and key in row]
        if isinstance(data, dict) and key in data:
            return [data[key]]
        return []
    if "patient_id" in kwargs:
        return [int(kwargs["patient_id"])]
    patient = getattr(request.user, "patient", None)  # an app token's or device key's
    return [patient.pk] if isinstance(patient, Patient) else []


def record_api_call(spec: ApiAudit, request, response, kwargs) -> list[AuditEvent]:
    """Writes the events of one successful API call: one per patient whose data it showed."""
    action = METHOD_ACTIONS.get(request.method)
    if action is None:
        return []
    if action != AuditAction.VIEW and spec.action:
        action = spec.action
    data = _response_data(response)
    object_id = ""
    if spec.object_kwarg:
        object_id = str(kwargs.get(spec.object_kwarg, ""))
    elif action == AuditAction.CREATE and isinstance(data, dict) and "id" in data:
        object_id = str(data["id"])
    fields: Iterable[str] = ()
    if action != AuditAction.VIEW:
        if spec.fields is not None:
            fields = spec.fields
        elif action == AuditAction.CHANGE:
            drf_request = (getattr(response, "renderer_context", None) or {}).get("request")
            body = getattr(drf_request, "data", None)
            fields = list(body) if isinstance(body, dict) else ()
    return record_for_patients(
        user=request.user,
        patient_ids=_patient_ids(spec, request, response, kwargs),
        action=action,
        what=spec.model,
        request=request,
        fields=fields,
        object_id=object_id,
    )


def record_refused_call(spec: ApiAudit, request, kwargs) -> list[AuditEvent]:
    """Writes the event of a call refused to an authenticated caller (403, 404): the patient
    the URL named, if it named one, and the object it asked for."""
    object_id = str(kwargs.get(spec.object_kwarg, "")) if spec.object_kwarg else ""
    patient_id = kwargs.get("patient_id")
    return [
        record(
            user=request.user,
            patient=int(patient_id) if patient_id is not None else None,
            action=AuditAction.REFUSED,
            what=spec.model,
            request=request,
            object_id=object_id,
        )
    ]


REFUSED_STATUSES = (403, 404)


def upload_event(request: HttpRequest, *, patient_id: int) -> AuditEvent:
    """The event of a patient's own upload (the `readings` endpoint), not yet saved: ingest
    writes it in the statement that stores the readings (one statement and one commit per
    upload instead of three round trips and two commits: benchmarks/README.md, "Cost per
    live reading"), and the middleware then writes none (mark_recorded). The same row
    record_api_call would write for the call."""
    spec = API_AUDIT["readings"]
    return _event(
        user=request.user,
        patient_id=patient_id,
        action=spec.action or AuditAction.CREATE,
        model=spec.model,
        object_id="",
        fields=spec.fields or (),
        request=request,
    )


def mark_recorded(request: HttpRequest) -> None:
    """Tell ApiAuditMiddleware that the view wrote this call's event itself."""
    request.audit_recorded = True


class ApiAuditMiddleware:
    """Records each successful (2xx) call of an API endpoint listed in API_AUDIT, and each
    call of one refused (403/404) to an authenticated caller (another team's patient, an
    action the role may not take). An unauthenticated call (401) is not recorded: nobody
    can be named.

    After the view: DRF has set request.user to the credential's user (or patient
    principal), and the response still carries its data. A patient's upload writes its own
    event in the statement that stores the readings (upload_event, mark_recorded); when that
    could not be (nothing valid to store, or the statement failed with the event and the
    readings were stored alone) it is written here. The readings are committed before this
    runs: if writing the audit row fails, the failure is logged (ids only) and the client
    still gets the answer for what was stored — never a 500 for a stored batch.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/api/") or getattr(request, "audit_recorded", False):
            return response
        match = request.resolver_match
        spec = API_AUDIT.get(match.url_name) if match is not None else None
        if spec is None:
            return response
        # A single INSERT needs no transaction of its own; inside one (a test's, an
        # ATOMIC_REQUESTS deployment's) a savepoint keeps a failed write from breaking it.
        writing = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        try:
            with writing:
                if 200 <= response.status_code < 300:
                    record_api_call(spec, request, response, match.kwargs)
                elif response.status_code in REFUSED_STATUSES and _authenticated(request):
                    record_refused_call(spec, request, match.kwargs)
        # OverflowError: an id in the URL past 64 bits, which SQLite refuses to bind where
        # PostgreSQL answers a DataError; either way the row cannot be written.
        except (DatabaseError, OverflowError) as error:
            logger.error(
                "audit event of %s %s (status %s) not written: %s",
                request.method,
                match.url_name,
                response.status_code,
                type(error).__name__,
            )
        return response


def _authenticated(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)
