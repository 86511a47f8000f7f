"""Staff endpoints for patients, their app tokens and devices."""

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import (
    ENROL_PATIENTS,
    ISSUE_APP_TOKENS,
    REGISTER_DEVICES,
    REVOKE_APP_TOKENS,
    REVOKE_DEVICES,
    teams_where,
)
from config.api import NewestFirstCursorPagination, PagePagination
from monitoring import examples
from monitoring.auth import (
    IsStaff,
    issue_app_token,
    register_device,
    revoke_app_token,
    revoke_device,
)
from monitoring.enrolment import DuplicatePatient, enrol_patient
from monitoring.models import (
    Device,
    Patient,
    PatientAppToken,
    Reading,
)
from monitoring.serializers import (
    AppTokenIssuedSerializer,
    DeviceIssuedSerializer,
    DeviceSerializer,
    PatientSerializer,
    ReadingSerializer,
)
from monitoring.views.access import ERROR, REFUSALS, require
from monitoring.views.readings import READING_FILTERS, paginated_readings

# --- Staff --------------------------------------------------------------------------------


def visible_patient(request, patient_id: int) -> Patient:
    """The patient if the caller's teams hold it; 404 otherwise, never 403 (no existence leak)."""
    return get_object_or_404(Patient.objects.visible_to(request.user), pk=patient_id)


class PatientListCreateApi(APIView):
    permission_classes = [IsStaff]
    pagination_class = PagePagination

    @extend_schema(
        tags=["staff"],
        summary="Enrol a patient in one of the caller's care teams",
        request=PatientSerializer,
        responses={201: PatientSerializer, 400: ERROR, 403: ERROR},
        examples=examples.PATIENT_CREATE,
    )
    def post(self, request):
        # Refused before the body is read when the caller may enrol in none of their teams.
        if not (request.user.is_superuser or teams_where(request.user, ENROL_PATIENTS).exists()):
            raise PermissionDenied(REFUSALS[ENROL_PATIENTS])
        serializer = PatientSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require(request, ENROL_PATIENTS, team_id=data["care_team_id"].pk)
        try:
            patient = enrol_patient(
                external_id=data["external_id"],
                name=data["name"],
                timezone=data["timezone"],
                care_team=data["care_team_id"],
                protocols=data.get("protocols", []),
                preferences={k: v for k, v in data.items() if k in PREFERENCE_FIELDS},
            )
        except DuplicatePatient as error:
            raise ValidationError(
                {"external_id": ["A patient with this external id is already enrolled."]}
            ) from error
        return Response(PatientSerializer(patient).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["staff"],
        summary="Patients of the caller's care teams",
        parameters=[OpenApiParameter("page", OpenApiTypes.INT)],
        responses={200: PatientSerializer(many=True)},
    )
    def get(self, request):
        queryset = (
            Patient.objects.visible_to(request.user).prefetch_related("protocols").order_by("id")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, self)
        return paginator.get_paginated_response(PatientSerializer(page, many=True).data)


PREFERENCE_FIELDS = {
    "glucose_unit", "weight_unit", "language", "nudge_channel", "quiet_hours_start",
    "quiet_hours_end", "daily_nudge_cap",
}  # fmt: skip


class PatientDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="One patient of the caller's care teams",
        responses={200: PatientSerializer, 404: ERROR},
    )
    def get(self, request, patient_id: int):
        return Response(PatientSerializer(visible_patient(request, patient_id)).data)


class PatientReadingListApi(APIView):
    permission_classes = [IsStaff]
    pagination_class = NewestFirstCursorPagination

    @extend_schema(
        tags=["staff"],
        summary="A patient's readings, newest first",
        parameters=READING_FILTERS,
        responses={200: ReadingSerializer(many=True), 400: ERROR, 404: ERROR},
        examples=examples.READINGS_LIST,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        return paginated_readings(request, self, Reading.objects.filter(patient=patient))


class AppTokenCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Issue an app token for the patient (shown once)",
        request=None,
        responses={201: AppTokenIssuedSerializer, 403: ERROR, 404: ERROR},
        examples=examples.APP_TOKEN,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, ISSUE_APP_TOKENS, team_id=patient.care_team_id)
        token, plaintext = issue_app_token(patient=patient, created_by=request.user)
        return Response(
            {"id": token.pk, "token": plaintext, "expires_at": token.expires_at},
            status=status.HTTP_201_CREATED,
        )


class AppTokenRevokeApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Revoke an app token",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int, token_id: int):
        patient = visible_patient(request, patient_id)
        token = get_object_or_404(PatientAppToken, pk=token_id, patient=patient)
        require(request, REVOKE_APP_TOKENS, team_id=patient.care_team_id)
        revoke_app_token(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Register a device and issue its key (shown once)",
        request=DeviceSerializer,
        responses={201: DeviceIssuedSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.DEVICE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, REGISTER_DEVICES, team_id=patient.care_team_id)
        serializer = DeviceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                device, key = register_device(patient=patient, **serializer.validated_data)
        except IntegrityError as error:
            raise ValidationError(
                {"serial": ["This patient already has an active device with this serial."]}
            ) from error
        data = DeviceSerializer(device).data | {"key": key}
        return Response(data, status=status.HTTP_201_CREATED)


class DeviceRevokeApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Revoke a device's key",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int, device_id: int):
        patient = visible_patient(request, patient_id)
        device = get_object_or_404(Device, pk=device_id, patient=patient)
        require(request, REVOKE_DEVICES, team_id=patient.care_team_id)
        revoke_device(device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)
