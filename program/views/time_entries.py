"""Care time of a patient: list, log by hand (any member of the team), approve."""

import re
from datetime import datetime

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import LOG_TIME
from config.api import PagePagination
from monitoring.auth import IsStaff
from monitoring.serializers import AsWrittenDateTimeField
from monitoring.views import ERROR, require, visible_patient
from program.care_time import (
    NOTE_MAX_LENGTH,
    ApprovalRefused,
    InvalidTimeEntry,
    NotApprovable,
    approve_time_entry,
    log_time,
)
from program.models import Activity, TimeEntry, TimeSource


class TimeEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    user = serializers.CharField(source="user.username", help_text="username of the author")
    source = serializers.ChoiceField(TimeSource.choices)
    started_at = AsWrittenDateTimeField()
    stopped_at = AsWrittenDateTimeField(allow_null=True, help_text="A timer's stop.")
    minutes = serializers.IntegerField(allow_null=True, help_text="null while a timer runs")
    running = serializers.BooleanField(source="is_running")
    activity = serializers.ChoiceField(Activity.choices)
    interactive = serializers.BooleanField(
        help_text="A real-time interactive communication (a phone or video call)."
    )
    note = serializers.CharField(allow_blank=True)
    capped = serializers.BooleanField(
        help_text="A timer left running, counted at VIGIL_TIMER_CAP_MINUTES."
    )
    alert = serializers.IntegerField(source="alert_id", allow_null=True)
    approved_by = serializers.CharField(
        source="approved_by.username", allow_null=True, help_text="username"
    )
    approved_at = AsWrittenDateTimeField(allow_null=True)


class TimeEntryCreateSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    minutes = serializers.IntegerField(help_text="1 to VIGIL_TIME_ENTRY_MAX_MINUTES (default 120).")
    activity = serializers.ChoiceField(Activity.choices)
    interactive = serializers.BooleanField(
        default=False, help_text="A real-time interactive communication: calls only."
    )
    note = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=NOTE_MAX_LENGTH
    )


MONTH = re.compile(r"(\d{4})-(\d{2})")


class TimeEntryFilterSerializer(serializers.Serializer):
    month = serializers.CharField(required=False, help_text="YYYY-MM, the patient's calendar")

    def validate_month(self, value: str) -> tuple[int, int]:
        match = MONTH.fullmatch(value)
        if match is None or not 1 <= int(match[2]) <= 12:
            raise serializers.ValidationError('A month as "YYYY-MM", e.g. "2026-03".')
        return int(match[1]), int(match[2])


TIME_ENTRY_CREATE = [
    OpenApiExample(
        "A call with the patient",
        value={
            "started_at": "2026-03-04T10:05:00-05:00",
            "minutes": 12,
            "activity": "phone_call",
            "interactive": True,
            "note": "Discussed the rising weights; diuretic dose unchanged until Friday.",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Wrong fields",
        value={
            "detail": "Invalid input.",
            "errors": {
                "minutes": ["Between 1 and 120 minutes."],
                "interactive": [
                    "Only a phone or video call is a real-time interactive communication."
                ],
            },
        },
        response_only=True,
        status_codes=["400"],
    ),
]


def in_month(entries, patient, month: tuple[int, int]):
    """The entries started in a calendar month of the patient's zone."""
    year, number = month
    next_year, next_number = (year + 1, 1) if number == 12 else (year, number + 1)
    first = datetime(year, number, 1, tzinfo=patient.zone)
    after = datetime(next_year, next_number, 1, tzinfo=patient.zone)
    return entries.filter(started_at__gte=first, started_at__lt=after)


class PatientTimeEntryListCreateApi(APIView):
    permission_classes = [IsStaff]
    pagination_class = PagePagination

    @extend_schema(
        tags=["staff"],
        summary="The patient's time entries, latest first",
        parameters=[
            OpenApiParameter("month", OpenApiTypes.STR, description="YYYY-MM (local)"),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: TimeEntrySerializer(many=True), 400: ERROR, 404: ERROR},
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        filters = TimeEntryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        entries = TimeEntry.objects.filter(patient=patient).select_related("user", "approved_by")
        if "month" in filters.validated_data:
            entries = in_month(entries, patient, filters.validated_data["month"])
        entries = entries.order_by("-started_at", "-id")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(entries, request, self)
        return paginator.get_paginated_response(TimeEntrySerializer(page, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Log time spent on the patient, by hand (a member of the patient's team)",
        description=(
            "Neither its start nor its end (start + minutes) is in the future. It counts "
            "toward the month's billing once approved."
        ),
        request=TimeEntryCreateSerializer,
        responses={201: TimeEntrySerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=TIME_ENTRY_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, LOG_TIME, team_id=patient.care_team_id)
        body = TimeEntryCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            entry = log_time(user=request.user, patient=patient, **body.validated_data)
        except InvalidTimeEntry as error:
            raise ValidationError(error.errors) from error
        return Response(TimeEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


def visible_entries(user):
    entries = TimeEntry.objects.select_related("patient", "user", "approved_by")
    if user.is_superuser:
        return entries
    return entries.filter(patient__care_team__memberships__user=user)


class TimeEntryApproveApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Approve a time entry for billing",
        description=(
            "By the billing practitioner of the episode running on the entry's day, or a "
            "physician of the patient's team; nobody approves their own entry but the "
            "billing practitioner. Approved once (409 after), never while a timer runs."
        ),
        request=None,
        responses={200: TimeEntrySerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    def post(self, request, entry_id: int):
        entry = get_object_or_404(visible_entries(request.user), pk=entry_id)
        try:
            entry = approve_time_entry(entry=entry, user=request.user)
        except ApprovalRefused as error:
            raise PermissionDenied(str(error)) from error
        except NotApprovable as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(TimeEntrySerializer(entry).data)
