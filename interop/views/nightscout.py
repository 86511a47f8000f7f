"""Nightscout: the staff endpoint that issues a patient's uploader, and the patient's
Nightscout API v1 under its base URL (/nightscout/<slug>/api/v1/…).

The Nightscout endpoints answer as Nightscout's server does (nightscout/cgm-remote-monitor
7e0e77f88, v15.0.7), not in Vigil's error shape: uploaders parse these bodies.
- 401 `{"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}`
  (lib/authorization/index.js isPermitted, lib/middleware/send-json-status.js).
- verifyauth always 200, `message.message` "OK" or "UNAUTHORIZED" (lib/api/verifyauth.js,
  tests/api.verifyauth.test.js).
- POSTs answer 200 with the stored documents as an array (lib/api/entries/index.js
  format_post_response; treatments and devicestatus alike).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import REGISTER_DEVICES, REVOKE_DEVICES, can
from interop.models import NightscoutCollection, NightscoutUploader
from interop.nightscout.documents import epoch_ms, iso_utc
from interop.nightscout.entries import list_entries, store_entries
from interop.nightscout.queries import BadQuery, TimeQuery, parse_time_query
from interop.nightscout.treatments import (
    list_documents,
    store_device_statuses,
    store_treatments,
)
from interop.nightscout.uploaders import authenticate_uploader, issue_uploader, revoke_uploader
from monitoring.audit import record
from monitoring.auth import IsStaff
from monitoring.models import AuditAction, Patient
from monitoring.views.access import ERROR

logger = logging.getLogger(__name__)

# --- Staff: issue and revoke -------------------------------------------------------------


class NightscoutUploaderIssuedSerializer(serializers.Serializer):
    base_url = serializers.URLField(
        help_text="The patient's Nightscout base URL, to enter in the uploader."
    )
    api_secret = serializers.CharField(
        help_text="The uploader's API secret. Shown once: Vigil keeps only a hash of it."
    )


ISSUED_EXAMPLE = OpenApiExample(
    "Uploader issued",
    value={
        "base_url": "https://vigil.example/nightscout/Zk3pQ8vN2rT5wX1y/",
        "api_secret": "q3W9e-Rt5Yu1Io7Pa2Sd4Fg6Hj8Kl0Zx",
    },
    response_only=True,
    status_codes=["201"],
)
# Issuing an uploader is issuing a device credential: the same capability as registering a
# device (the team's coordinators), and revoking it as revoking one.
ISSUE_REFUSAL = "Only the patient's coordinators may issue Nightscout uploaders."
REVOKE_REFUSAL = "Only the patient's coordinators may revoke Nightscout uploaders."


def base_url(request: HttpRequest, uploader: NightscoutUploader) -> str:
    return request.build_absolute_uri(f"/nightscout/{uploader.slug}/")


class PatientNightscoutApi(APIView):
    permission_classes = [IsStaff]

    def _patient(self, request, patient_id: int, capability: str, refusal: str) -> Patient:
        # Another team's patient is a 404 before the role is asked (no existence leak).
        patient = get_object_or_404(Patient.objects.visible_to(request.user), pk=patient_id)
        if not can(request.user, capability, team_id=patient.care_team_id):
            raise PermissionDenied(refusal)
        return patient

    @extend_schema(
        tags=["staff"],
        summary="Issue the patient's Nightscout uploader (replaces the active one)",
        description=(
            "Answers the patient's Nightscout base URL and its API secret, shown once. "
            "An uploader (xDrip+, AndroidAPS, Loop, Trio) configured with them posts "
            "entries, treatments and device status as to a Nightscout site. A patient has "
            "one active uploader: a new one revokes the old."
        ),
        request=None,
        responses={201: NightscoutUploaderIssuedSerializer, 403: ERROR, 404: ERROR},
        examples=[ISSUED_EXAMPLE],
    )
    def post(self, request, patient_id: int):
        patient = self._patient(request, patient_id, REGISTER_DEVICES, ISSUE_REFUSAL)
        uploader, secret = issue_uploader(patient=patient, created_by=request.user)
        data = {"base_url": base_url(request, uploader), "api_secret": secret}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["staff"],
        summary="Revoke the patient's Nightscout uploader",
        description="Its base URL and secret stop working at once. Idempotent.",
        request=None,
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int):
        patient = self._patient(request, patient_id, REVOKE_DEVICES, REVOKE_REFUSAL)
        revoke_uploader(patient=patient)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Nightscout API v1 under the base URL -------------------------------------------------

NIGHTSCOUT_VERSION = "15.0.7"  # the Nightscout release whose API v1 answers are matched


@dataclass(frozen=True)
class UploaderPrincipal:
    """Who acted, for the audit log: the uploader credential, not a person."""

    uploader: NightscoutUploader
    is_authenticated: bool = True

    @property
    def pk(self) -> str:
        return f"nightscout:{self.uploader.pk}"


def nightscout_status(code: int, message: str, description: str = "") -> JsonResponse:
    """lib/middleware/send-json-status.js: {status, message, description}."""
    return _json({"status": code, "message": message, "description": description}, code)


def _json(data, code: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=code, safe=False)
    response["Cache-Control"] = "no-store"  # patient data, as every /api/v1/ answer
    return response


def _credentials(request: HttpRequest) -> list[str]:
    """Where Nightscout reads an API secret: the `api-secret` header, `?secret=`; and
    `?token=` (an access token there; the secret here, one credential per base URL)."""
    return [
        request.headers.get("api-secret", ""),
        request.GET.get("secret", ""),
        request.GET.get("token", ""),
    ]


@method_decorator(csrf_exempt, name="dispatch")
class NightscoutView(View):
    """Authenticates the base URL's uploader; 401 in Nightscout's shape otherwise."""

    http_method_names = ["get", "post"]
    requires_credential = True

    def dispatch(self, request, slug: str, **kwargs):
        self.uploader = authenticate_uploader(slug=slug, credentials=_credentials(request))
        if self.uploader is None and self.requires_credential:
            return nightscout_status(401, "Unauthorized", "Invalid/Missing")
        try:
            return super().dispatch(request, **kwargs)
        except BadQuery as error:
            return nightscout_status(400, "Bad Request", str(error))

    @property
    def patient(self) -> Patient:
        return self.uploader.patient

    def audit(self, action: str, what: str) -> None:
        """One audit event per call, as ApiAuditMiddleware writes for /api/v1/ (which it
        does not see here). What was stored stays stored and is answered if writing the
        event fails: logged with ids only, never a 500 for a stored upload."""
        try:
            with transaction.atomic():
                record(
                    user=UploaderPrincipal(self.uploader),
                    patient=self.patient,
                    action=action,
                    what=what,
                    request=self.request,
                )
        except DatabaseError as error:
            logger.error(
                "audit event of nightscout uploader %s not written: %s",
                self.uploader.pk,
                type(error).__name__,
            )

    def body(self) -> object | JsonResponse:
        try:
            body = json.loads(self.request.body or b"null")
        except RequestDataTooBig:
            return nightscout_status(413, "Payload Too Large", "The body is too large.")
        except (ValueError, UnicodeDecodeError):
            return nightscout_status(400, "Bad Request", "The body must be JSON.")
        if isinstance(body, list) and len(body) > settings.VIGIL_MAX_BATCH:
            return nightscout_status(
                413,
                "Payload Too Large",
                f"At most {settings.VIGIL_MAX_BATCH} documents per request; "
                f"this one has {len(body)}.",
            )
        return body

    def time_query(self, *date_fields: str) -> TimeQuery:
        return parse_time_query(self.request.GET, date_fields=date_fields, now=timezone.now())


class StatusView(NightscoutView):
    """lib/api/status.js: the site's settings; uploaders read `settings.units` and
    `version`, followers `serverTime`."""

    http_method_names = ["get"]

    def get(self, request):
        now = timezone.now()
        return _json(
            {
                "status": "ok",
                "name": "Vigil",
                "version": NIGHTSCOUT_VERSION,
                "serverTime": iso_utc(now),
                "serverTimeEpoch": epoch_ms(now),
                "apiEnabled": True,
                "careportalEnabled": True,
                "boluscalcEnabled": False,
                "settings": {
                    "units": "mg/dl",
                    "timeFormat": 24,
                    "enable": ["careportal", "devicestatus"],
                    "authDefaultRoles": "denied",
                    "customTitle": "Vigil",
                },
                "extendedSettings": {"devicestatus": {"advanced": True}},
                # No access-token subjects here: an API secret is not one (status.js authorize).
                "authorized": None,
                "runtimeState": "loaded",
            }
        )


class ExperimentsTestView(NightscoutView):
    """lib/api/experiments/index.js `GET /experiments/test`: 200 `{"status": "ok"}` with a
    valid credential. Loop checks its Nightscout credentials here."""

    http_method_names = ["get"]

    def get(self, request):
        return _json({"status": "ok"})


class VerifyAuthView(NightscoutView):
    """lib/api/verifyauth.js: 200 either way; the API secret is the base URL's admin."""

    http_method_names = ["get"]
    requires_credential = False

    def get(self, request):
        ok = self.uploader is not None
        return _json(
            {
                "status": 200,
                "message": {
                    "canRead": ok,
                    "canWrite": ok,
                    "isAdmin": ok,
                    "message": "OK" if ok else "UNAUTHORIZED",
                    "rolefound": "NOTFOUND",
                    "permissions": "ROLE" if ok else "DEFAULT",
                },
            }
        )


class EntriesView(NightscoutView):
    """POST one entry or an array; GET newest first (`count`, `find[date]`,
    `find[dateString]`). `kind` from the path: /entries/sgv.json, /entries/mbg.json …"""

    def get(self, request, kind: str | None = None):
        if kind == "current":
            entries = list_entries(patient=self.patient, kind="sgv", query=TimeQuery(count=1))
        else:
            entries = list_entries(
                patient=self.patient, kind=kind, query=self.time_query("date", "dateString")
            )
        self.audit(AuditAction.VIEW, "monitoring.reading")
        return _json(entries)

    def post(self, request, kind: str | None = None):
        body = self.body()
        if isinstance(body, JsonResponse):
            return body
        # No transaction around it: record_readings retries its own insert on a deadlock,
        # which it can only do in a transaction of its own; both stores are idempotent.
        stored = store_entries(patient=self.patient, body=body)
        self.audit(AuditAction.CREATE, "monitoring.reading")
        return _json(stored)


class DocumentsView(NightscoutView):
    collection: str = ""

    def get(self, request):
        documents = list_documents(
            patient=self.patient, collection=self.collection, query=self.time_query("created_at")
        )
        self.audit(AuditAction.VIEW, "interop.nightscoutdocument")
        return _json(documents)

    def store(self, body: object) -> list[dict]:
        """Store the posted documents of this collection; each routed subclass defines it
        (TreatmentsView, DeviceStatusView). DocumentsView itself is never routed."""
        raise NotImplementedError(
            f"{type(self).__name__} does not say how to store {self.collection}"
        )

    def post(self, request):
        body = self.body()
        if isinstance(body, JsonResponse):
            return body
        stored = self.store(body)  # idempotent stores, no outer transaction (see entries)
        self.audit(AuditAction.CREATE, "interop.nightscoutdocument")
        return _json(stored)


class TreatmentsView(DocumentsView):
    collection = NightscoutCollection.TREATMENTS

    def store(self, body: object) -> list[dict]:
        return store_treatments(patient=self.patient, body=body)


class DeviceStatusView(DocumentsView):
    collection = NightscoutCollection.DEVICESTATUS

    def store(self, body: object) -> list[dict]:
        return store_device_statuses(patient=self.patient, body=body)
