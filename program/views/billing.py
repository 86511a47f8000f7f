"""The billing endpoints (docs/api.md, "The RPM program"): one patient's month, and the
month's ledger of the caller's teams — JSON to read, CSV (`?format=csv`) for the billing
system.

The CSV is the export: only the team's coordinators (EXPORT_BILLING) get it, and once the
month is over in the patient's zone its billable lines are marked exported (frozen) as they
are handed out; a month still running is handed out unmarked. Asking again returns the same
lines, now `exported`: the billing system deduplicates by the line's id.
"""

from __future__ import annotations

import csv
import io
import json

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import EXPORT_BILLING, VIEW_BILLING, teams_where
from monitoring.audit import record_for_patients
from monitoring.auth import IsStaff
from monitoring.models import AuditAction
from monitoring.views import ERROR, REFUSALS, require, visible_patient
from program.codes import billing_reference
from program.ledger import Month, PatientBilling, export_ledger, month_ledger, patient_billing
from program.models import LedgerLine, LineStatus

MONTH_FORMAT = "Must be a month as YYYY-MM, e.g. 2026-03."
MONTH_PARAMETER = OpenApiParameter(
    "month", OpenApiTypes.STR, required=True, description="The calendar month, YYYY-MM."
)


class MonthField(serializers.CharField):
    def to_internal_value(self, data) -> Month:
        try:
            return Month.parse(super().to_internal_value(data))
        except ValueError as error:
            raise ValidationError(MONTH_FORMAT) from error


class MonthQuerySerializer(serializers.Serializer):
    month = MonthField()


class LedgerQuerySerializer(MonthQuerySerializer):
    team = serializers.IntegerField(required=False, min_value=1)


# --- One patient's month ------------------------------------------------------------------


class DevicePeriodSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    days_with_data = serializers.IntegerField()
    code = serializers.CharField(allow_null=True)


class CodeUnitsSerializer(serializers.Serializer):
    code = serializers.CharField()
    units = serializers.IntegerField()


class MonthTimeSerializer(serializers.Serializer):
    minutes = serializers.IntegerField()
    approved_minutes = serializers.IntegerField()
    interactive = serializers.BooleanField()
    codes = CodeUnitsSerializer(many=True)


class SetupSerializer(serializers.Serializer):
    code = serializers.CharField()
    billable = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True, help_text="Why not billable; null when it is.")


class PatientBillingSerializer(serializers.Serializer):
    device_periods = DevicePeriodSerializer(many=True)
    month = MonthTimeSerializer()
    setup = SetupSerializer()


def billing_body(billing: PatientBilling, setup_code: str) -> dict:
    return {
        "device_periods": billing.device_periods,
        "month": {
            "minutes": billing.minutes,
            "approved_minutes": billing.approved_minutes,
            "interactive": billing.interactive,
            "codes": [{"code": code, "units": units} for code, units in billing.codes],
        },
        "setup": {
            "code": setup_code,
            "billable": billing.setup_billable,
            "reason": None if billing.setup_billable else billing.setup_reason,
        },
    }


class PatientBillingApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["program"],
        summary="One patient's billing month: device periods, minutes, codes, set-up",
        description=(
            "Device periods overlapping the month, with their distinct local days with device "
            "data and the code they earn (null when none, or not billable); the month's "
            "minutes (all logged) and approved minutes, whether an approved interactive "
            "communication happened, and the management codes the approved minutes earn "
            "(accruing, billable or exported); the set-up code of the latest episode running "
            "in the month. Computed from the records as they are now; nothing is written."
        ),
        parameters=[MONTH_PARAMETER],
        responses={200: PatientBillingSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, VIEW_BILLING, team_id=patient.care_team_id)
        query = MonthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        billing = patient_billing(patient=patient, month=query.validated_data["month"])
        body = billing_body(billing, billing_reference().setup_code)
        return Response(PatientBillingSerializer(body).data)


# --- The month's ledger -------------------------------------------------------------------


class LedgerLineSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        allow_null=True, help_text="The stored line's id (null for a line not yet stored)."
    )
    patient = serializers.IntegerField(source="patient_id")
    external_id = serializers.CharField(source="episode.patient.external_id")
    episode = serializers.IntegerField(source="episode_id")
    practitioner = serializers.CharField(source="practitioner.username")
    code = serializers.CharField()
    units = serializers.IntegerField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    status = serializers.ChoiceField(choices=LineStatus.choices)
    reason = serializers.CharField()
    evidence = serializers.JSONField(
        help_text=(
            "Device and set-up lines: the period and its days with data (ISO dates); "
            "management lines: the window, minutes, approved and unapproved time entry ids, "
            "interactive entry ids."
        )
    )
    exported_at = serializers.DateTimeField(allow_null=True)


class LedgerSerializer(serializers.Serializer):
    month = serializers.CharField()
    results = LedgerLineSerializer(many=True)


CSV_COLUMNS = [
    "id", "patient", "external_id", "episode", "practitioner", "code", "units",
    "period_start", "period_end", "status", "reason", "evidence", "exported_at",
]  # fmt: skip
# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): kept as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class LedgerCsvRenderer(BaseRenderer):
    """The ledger's rows as CSV with a header row (the `results` of the JSON answer)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in data["results"]:
            writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
        return buffer.getvalue().encode(self.charset)


class BillingLedgerApi(APIView):
    permission_classes = [IsStaff]
    # `?format=csv` picks the CSV renderer (DRF's URL_FORMAT_OVERRIDE, which reads the
    # `format` query parameter before the view runs); so does `Accept: text/csv`.
    renderer_classes = [JSONRenderer, LedgerCsvRenderer]

    @extend_schema(
        tags=["program"],
        summary="The month's billing ledger of the caller's teams; CSV to export it",
        description=(
            "One row per patient and code: device and set-up lines whose period ends in the "
            "month, management lines of the month, each with its status (accruing, billable, "
            "exported, not_billable + reason) and its evidence. JSON is computed from the "
            "records as they are now and writes nothing. `format=csv` is the export to the "
            "billing system (the team's coordinators): the ledger is recomputed and stored, "
            "and where the month is over in the patient's zone its billable lines are marked "
            "exported — frozen — as they are handed out. Without `team`, every team of the "
            "caller (whose coordinator they are, for the CSV)."
        ),
        parameters=[
            MONTH_PARAMETER,
            OpenApiParameter("team", OpenApiTypes.INT),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={
            (200, "application/json"): LedgerSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The ledger's rows with a header row."
            ),
            400: ERROR,
            403: ERROR,
        },
    )
    def get(self, request):
        query = LedgerQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        month = query.validated_data["month"]
        exporting = request.accepted_renderer.format == LedgerCsvRenderer.format
        team_ids = self._team_ids(request, query.validated_data.get("team"), exporting)
        if exporting:
            lines = export_ledger(month=month, team_ids=team_ids).lines
            record_for_patients(
                user=request.user,
                patient_ids=[line.patient_id for line in lines],
                action=AuditAction.EXPORT,
                what=LedgerLine,
                request=request,
            )
        else:
            lines = month_ledger(month=month, team_ids=team_ids)
        data = LedgerSerializer({"month": str(month), "results": lines}).data
        response = Response(data)
        if exporting:
            response["Content-Disposition"] = f'attachment; filename="ledger-{month}.csv"'
        return response

    @staticmethod
    def _team_ids(request, team: int | None, exporting: bool) -> list[int]:
        visible = set(teams_where(request.user, VIEW_BILLING).values_list("pk", flat=True))
        if team is not None:
            if team not in visible:
                raise ValidationError({"team": ["Not a care team whose billing you may see."]})
            if exporting:
                require(request, EXPORT_BILLING, team_id=team)
            return [team]
        if not exporting:
            return sorted(visible)
        exportable = sorted(teams_where(request.user, EXPORT_BILLING).values_list("pk", flat=True))
        if not exportable:
            raise PermissionDenied(REFUSALS[EXPORT_BILLING])
        return exportable

    def perform_content_negotiation(self, request, force=False):
        # DRF answers a `format` no renderer has with a 404 (as for a format suffix); here
        # it is a wrong query parameter: a 400 naming it.
        try:
            return super().perform_content_negotiation(request, force=force)
        except Http404 as error:
            raise ValidationError({"format": ["Must be one of: json, csv."]}) from error

    def finalize_response(self, request, response, *args, **kwargs):
        # An error is JSON (config.api's error body) even when the CSV was asked for.
        if response.status_code >= 400 and isinstance(
            getattr(request, "accepted_renderer", None), LedgerCsvRenderer
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
