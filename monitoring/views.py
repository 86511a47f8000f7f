from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, throttling
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import CareTeamRole
from config.api import NewestFirstCursorPagination, PagePagination
from monitoring import examples
from monitoring.auth import (
    IsPatientApp,
    IsPatientAppOrDevice,
    IsStaff,
    issue_app_token,
    issue_staff_token,
    register_device,
    revoke_app_token,
    revoke_device,
)
from monitoring.enrolment import DuplicatePatient, enrol_patient
from monitoring.ingest import MalformedBatch, parse_batch, record_readings
from monitoring.models import Device, Metric, Patient, PatientAppToken, Reading, Rule
from monitoring.patient_rules import add_rule, change_rule
from monitoring.rules import InvalidParameters
from monitoring.serializers import (
    AppTokenIssuedSerializer,
    DeviceIssuedSerializer,
    DeviceSerializer,
    MeSerializer,
    PatientSerializer,
    ReadingFilterSerializer,
    ReadingSerializer,
    RuleChangeSerializer,
    RuleCreateSerializer,
    RuleSerializer,
    StaffLoginSerializer,
    TokenIssuedSerializer,
)

ERROR = OpenApiResponse(
    inline_serializer(
        "Error",
        {
            "detail": serializers.CharField(),
            "errors": serializers.DictField(
                required=False, help_text="Per field (or per parameter), the reasons."
            ),
        },
    ),
    description="What was wrong; `errors` maps fields to reasons where fields were wrong.",
)


class LoginIpThrottle(throttling.SimpleRateThrottle):
    scope = "login_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(throttling.SimpleRateThrottle):
    """Slows password guessing against one account from many addresses."""

    scope = "login_username"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if isinstance(request.data, dict) else None
        if not isinstance(username, str) or not username:
            return None
        return self.cache_format % {"scope": self.scope, "ident": username.lower()[:150]}


class StaffTokenCreateApi(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = [LoginIpThrottle, LoginUsernameThrottle]

    @extend_schema(
        tags=["auth"],
        summary="Exchange a staff username and password for a staff token",
        request=StaffLoginSerializer,
        responses={201: TokenIssuedSerializer, 400: ERROR, 429: ERROR},
        examples=examples.STAFF_LOGIN,
    )
    def post(self, request):
        login = StaffLoginSerializer(data=request.data)
        login.is_valid(raise_exception=True)
        user = authenticate(request, **login.validated_data)
        if user is None or not user.is_staff:
            raise ValidationError(
                {"non_field_errors": ["Invalid username or password, or not a staff account."]}
            )
        token, plaintext = issue_staff_token(user=user)
        return Response(
            {"token": plaintext, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED
        )


def filter_readings(queryset, query_params):
    filters = ReadingFilterSerializer(data=query_params)
    filters.is_valid(raise_exception=True)
    params = filters.validated_data
    if "type" in params:
        queryset = queryset.filter(metric=params["type"])
    if "since" in params:
        queryset = queryset.filter(measured_at__gte=params["since"])
    if "until" in params:
        queryset = queryset.filter(measured_at__lte=params["until"])
    return queryset


def paginated_readings(request, view, queryset):
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(
        filter_readings(queryset, request.query_params), request, view
    )
    return paginator.get_paginated_response(ReadingSerializer(page, many=True).data)


READING_FILTERS = [
    OpenApiParameter("type", OpenApiTypes.STR, enum=Metric.values),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="measured_at at or after"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="measured_at at or before"),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="from `next` / `previous`"),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1–500, default 100"),
]


class ReadingListCreateApi(APIView):
    # APIView does not paginate by itself; views call it, and the schema shows its envelope.
    pagination_class = NewestFirstCursorPagination

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsPatientAppOrDevice()]
        return [IsPatientApp()]

    @extend_schema(
        tags=["patient"],
        summary="Post readings: a batch of 1–500, or one reading",
        description=(
            "Each item is validated on its own: valid items are stored even when others are "
            "rejected. Re-sending an id is a `duplicate`; the same id with other content is "
            "a `conflict`. 201 if anything was created, else 200."
        ),
        request=examples.READING_UPLOAD,
        responses={
            201: examples.INGEST_RESPONSE,
            200: examples.INGEST_RESPONSE,
            400: ERROR,
            401: ERROR,
        },
        examples=examples.READINGS_POST,
    )
    def post(self, request):
        if request.stream is None:  # no body: DRF would hand over {}, taken for one item
            raise ParseError('The body is empty: send {"readings": [...]} or a single reading.')
        try:
            items = parse_batch(request.data)
        except MalformedBatch as error:
            raise ParseError(str(error)) from error
        principal = request.user
        result = record_readings(patient=principal.patient, items=items, device=principal.device)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)

    @extend_schema(
        tags=["patient"],
        summary="The patient's own readings, newest first",
        parameters=READING_FILTERS,
        responses={200: ReadingSerializer(many=True), 400: ERROR},
        examples=examples.READINGS_LIST,
    )
    def get(self, request):
        queryset = Reading.objects.filter(patient=request.user.patient)
        return paginated_readings(request, self, queryset)


class MeApi(APIView):
    permission_classes = [IsPatientApp]

    @extend_schema(
        tags=["patient"],
        summary="The patient's profile, schedules, medications and visible targets",
        responses={200: MeSerializer},
        examples=examples.ME,
    )
    def get(self, request):
        patient = Patient.objects.prefetch_related("protocols").get(pk=request.user.patient.pk)
        return Response(MeSerializer(patient).data)


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
        serializer = PatientSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
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
        responses={201: AppTokenIssuedSerializer, 404: ERROR},
        examples=examples.APP_TOKEN,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        token, plaintext = issue_app_token(patient=patient, created_by=request.user)
        return Response(
            {"id": token.pk, "token": plaintext, "expires_at": token.expires_at},
            status=status.HTTP_201_CREATED,
        )


class AppTokenRevokeApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(tags=["staff"], summary="Revoke an app token", responses={204: None, 404: ERROR})
    def delete(self, request, patient_id: int, token_id: int):
        patient = visible_patient(request, patient_id)
        token = get_object_or_404(PatientAppToken, pk=token_id, patient=patient)
        revoke_app_token(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Register a device and issue its key (shown once)",
        request=DeviceSerializer,
        responses={201: DeviceIssuedSerializer, 400: ERROR, 404: ERROR},
        examples=examples.DEVICE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
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
        tags=["staff"], summary="Revoke a device's key", responses={204: None, 404: ERROR}
    )
    def delete(self, request, patient_id: int, device_id: int):
        patient = visible_patient(request, patient_id)
        device = get_object_or_404(Device, pk=device_id, patient=patient)
        revoke_device(device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Rules --------------------------------------------------------------------------------


def may_edit_rules(user, patient: Patient) -> bool:
    """Physicians of the patient's team (and holders of the change-rule permission) tailor
    rules; nurses and coordinators read them."""
    if user.is_superuser or user.has_perm("monitoring.change_rule"):
        return True
    return patient.care_team.memberships.filter(user=user, role=CareTeamRole.PHYSICIAN).exists()


def _invalid_rule(error: InvalidParameters) -> ValidationError:
    errors = error.errors
    if set(errors) == {"kind"}:
        return ValidationError(errors)
    return ValidationError({"parameters": errors})


class PatientRuleListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's rules, with protocol defaults and their sources",
        responses={200: RuleSerializer(many=True), 404: ERROR},
        examples=examples.RULES,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        rules = patient.rules.select_related("protocol").order_by("metric", "key")
        return Response(RuleSerializer(rules, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Add a rule for the patient (physicians)",
        request=RuleCreateSerializer,
        responses={201: RuleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.RULE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        if not may_edit_rules(request.user, patient):
            raise PermissionDenied("Only the patient's physicians may change rules.")
        body = RuleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            with transaction.atomic():
                rule = add_rule(
                    patient=patient,
                    user=request.user,
                    group=data.pop("group", data["key"]),
                    **data,
                )
        except InvalidParameters as error:
            raise _invalid_rule(error) from error
        except IntegrityError as error:
            raise ValidationError(
                {"key": ["The patient already has a rule with this key."]}
            ) from error
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class PatientRuleChangeApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Tailor one of the patient's rules: a new version (physicians)",
        request=RuleChangeSerializer,
        responses={200: RuleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.RULE_CHANGE,
    )
    def patch(self, request, patient_id: int, rule_id: int):
        patient = visible_patient(request, patient_id)
        rule = get_object_or_404(Rule, pk=rule_id, patient=patient)
        if not may_edit_rules(request.user, patient):
            raise PermissionDenied("Only the patient's physicians may change rules.")
        body = RuleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            rule = change_rule(rule=rule, user=request.user, **body.validated_data)
        except InvalidParameters as error:
            raise _invalid_rule(error) from error
        return Response(RuleSerializer(rule).data)
