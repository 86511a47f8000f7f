from django.conf import settings
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from django_otp import match_token, user_has_device
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, throttling
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import has_team_permission, holds_permission_in_some_team
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
from monitoring.models import (
    Device,
    MeasurementSchedule,
    MedicationPlan,
    Metric,
    Nudge,
    Patient,
    PatientAppToken,
    Reading,
    Rule,
)
from monitoring.nudges.delivery import forget_push_token, open_nudge, register_push_token
from monitoring.patient_rules import add_rule, change_rule
from monitoring.rules import InvalidParameters
from monitoring.schedules import add_measurement_schedule, add_medication_plan, change_schedule
from monitoring.serializers import (
    AppTokenIssuedSerializer,
    DeviceIssuedSerializer,
    DeviceSerializer,
    MedicationPlanChangeSerializer,
    MedicationPlanCreateSerializer,
    MedicationPlanSerializer,
    MeSerializer,
    NudgeSerializer,
    PatientSerializer,
    PushTokenDeleteSerializer,
    PushTokenSerializer,
    ReadingFilterSerializer,
    ReadingSerializer,
    RuleChangeSerializer,
    RuleCreateSerializer,
    RuleSerializer,
    ScheduleChangeSerializer,
    ScheduleCreateSerializer,
    ScheduleSerializer,
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


def check_second_factor(user, otp_token: str | None) -> None:
    """The API asks for the same second factor as the admin: a user with an authenticator
    always gives its code; with VIGIL_REQUIRE_2FA, a user without one cannot get a token."""
    has_device = user_has_device(user, confirmed=True)
    if not has_device and not settings.VIGIL_REQUIRE_2FA:
        return
    if not has_device:
        raise ValidationError(
            {
                "otp_token": [
                    "Two-factor authentication is required: set up an authenticator "
                    "in the admin first."
                ]
            }
        )
    if not otp_token:
        raise ValidationError({"otp_token": ["The authenticator code is required."]})
    if match_token(user, otp_token) is None:
        raise ValidationError({"otp_token": ["The authenticator code is wrong or was used."]})


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
        credentials = dict(login.validated_data)
        otp_token = credentials.pop("otp_token", None)
        user = authenticate(request, **credentials)
        if user is None or not user.is_staff:
            raise ValidationError(
                {"non_field_errors": ["Invalid username or password, or not a staff account."]}
            )
        check_second_factor(user, otp_token)
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
        patient = Patient.objects.prefetch_related(
            "protocols", "measurement_schedules", "medication_plans"
        ).get(pk=request.user.patient.pk)
        return Response(MeSerializer(patient).data)


# --- Staff --------------------------------------------------------------------------------


def visible_patient(request, patient_id: int) -> Patient:
    """The patient if the caller's teams hold it; 404 otherwise, never 403 (no existence leak)."""
    return get_object_or_404(Patient.objects.visible_to(request.user), pk=patient_id)


# Who may do what is the role the caller holds in the patient's team (alerts/teams.py):
# coordinators enrol patients and issue app tokens and devices; physicians tailor rules;
# nurses and physicians triage alerts. Another team's patient is a 404 before this is asked.
ENROLS = ("monitoring.add_patient", "Only the team's coordinators may enrol patients.")
ISSUES_TOKENS = (
    "monitoring.add_patientapptoken",
    "Only the patient's coordinators may issue app tokens.",
)
REVOKES_TOKENS = (
    "monitoring.change_patientapptoken",
    "Only the patient's coordinators may revoke app tokens.",
)
REGISTERS_DEVICES = (
    "monitoring.add_device",
    "Only the patient's coordinators may register devices.",
)
REVOKES_DEVICES = (
    "monitoring.change_device",
    "Only the patient's coordinators may revoke devices.",
)


def require_team_permission(request, team_id: int, rule: tuple[str, str]) -> None:
    """403 unless the caller's role in the team grants the permission (superusers may)."""
    perm, refusal = rule
    if not has_team_permission(request.user, team_id, perm):
        raise PermissionDenied(refusal)


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
        if not holds_permission_in_some_team(request.user, ENROLS[0]):
            raise PermissionDenied(ENROLS[1])
        serializer = PatientSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require_team_permission(request, data["care_team_id"].pk, ENROLS)
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
        require_team_permission(request, patient.care_team_id, ISSUES_TOKENS)
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
        require_team_permission(request, patient.care_team_id, REVOKES_TOKENS)
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
        require_team_permission(request, patient.care_team_id, REGISTERS_DEVICES)
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
        require_team_permission(request, patient.care_team_id, REVOKES_DEVICES)
        revoke_device(device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Rules --------------------------------------------------------------------------------


def may_edit_rules(user, patient: Patient) -> bool:
    """Physicians of the patient's team (and holders of the change-rule permission) tailor
    rules; nurses and coordinators read them. The role is the one held in the patient's
    team: a physician of one team who is a nurse in another reads that team's rules."""
    return has_team_permission(user, patient.care_team_id, "monitoring.change_rule")


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


# --- Nudges and push tokens (patient app) -------------------------------------------------


class NudgeCursorPagination(NewestFirstCursorPagination):
    # The nudge_patient_recent index (patient, -created_at) serves these pages.
    ordering = ("-created_at", "-id")


class NudgeListApi(APIView):
    permission_classes = [IsPatientApp]
    pagination_class = NudgeCursorPagination

    @extend_schema(
        tags=["patient"],
        summary="The nudges sent to the patient, newest first",
        description=(
            "Every nudge the patient was sent, whatever its channel: `pending` while its "
            "delivery is under way (or waiting for a retry), `failed` when its channel could "
            "not deliver it. A nudge whose channel could not reach the patient (no phone "
            "number, no push token) is shown here with channel `in_app`."
        ),
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="from `next` / `previous`"),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="1–500, default 100"),
        ],
        responses={200: NudgeSerializer(many=True), 404: ERROR},
        examples=examples.NUDGES,
    )
    def get(self, request):
        queryset = Nudge.objects.filter(patient=request.user.patient)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, self)
        return paginator.get_paginated_response(NudgeSerializer(page, many=True).data)


class NudgeOpenedApi(APIView):
    permission_classes = [IsPatientApp]

    @extend_schema(
        tags=["patient"],
        summary="The patient opened a nudge",
        description="Idempotent: the first time it was opened is kept.",
        request=None,
        responses={200: NudgeSerializer, 404: ERROR},
        examples=examples.NUDGE_OPENED,
    )
    def post(self, request, nudge_id: int):
        nudge = open_nudge(patient=request.user.patient, nudge_id=nudge_id)
        if nudge is None:  # another patient's nudge is as absent as one that never was
            raise NotFound("Not found.")
        return Response(NudgeSerializer(nudge).data)


class DeleteBodyAutoSchema(AutoSchema):
    """drf-spectacular documents request bodies for POST, PUT and PATCH only; this DELETE
    takes its push token in the body (a token may be 4 kB, too long to put in a URL)."""

    def _get_request_body(self, direction="request"):
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"  # the one check that leaves DELETE out; restored right after
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"


class PushTokenApi(APIView):
    permission_classes = [IsPatientApp]
    schema = DeleteBodyAutoSchema()

    @extend_schema(
        tags=["patient"],
        summary="Register the app's push token (FCM registration token)",
        description=(
            "Idempotent per token: 201 the first time, 200 when the patient already has it "
            "(a token retired after FCM called it unregistered is active again). The same "
            "token held by another patient (the phone changed hands) is removed from them."
        ),
        request=PushTokenSerializer,
        responses={201: PushTokenSerializer, 200: PushTokenSerializer, 400: ERROR},
        examples=examples.PUSH_TOKEN_REGISTER,
    )
    def post(self, request):
        body = PushTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token, created = register_push_token(patient=request.user.patient, **body.validated_data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(PushTokenSerializer(token).data, status=code)

    @extend_schema(
        tags=["patient"],
        summary="Forget the app's push token (logout, token replaced)",
        description='Body `{"token"}`. 204 whether or not the patient had the token.',
        request=PushTokenDeleteSerializer,
        responses={204: None, 400: ERROR},
        examples=examples.PUSH_TOKEN_DELETE,
    )
    def delete(self, request):
        body = PushTokenDeleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        forget_push_token(patient=request.user.patient, token=body.validated_data["token"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Schedules and medication plans ---------------------------------------------------------
# Every member of the patient's team reads them; the roles that change them are in
# alerts.teams.ROLE_PERMISSIONS (physicians: both; coordinators: measurement schedules).

ADDS_SCHEDULES = (
    "monitoring.add_measurementschedule",
    "Only the patient's physicians and coordinators may add measurement schedules.",
)
CHANGES_SCHEDULES = (
    "monitoring.change_measurementschedule",
    "Only the patient's physicians and coordinators may change measurement schedules.",
)
DELETES_SCHEDULES = (
    "monitoring.delete_measurementschedule",
    "Only the patient's physicians and coordinators may delete measurement schedules.",
)
ADDS_PLANS = (
    "monitoring.add_medicationplan",
    "Only the patient's physicians may add medication plans.",
)
CHANGES_PLANS = (
    "monitoring.change_medicationplan",
    "Only the patient's physicians may change medication plans.",
)
DELETES_PLANS = (
    "monitoring.delete_medicationplan",
    "Only the patient's physicians may delete medication plans.",
)


class PatientScheduleListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's measurement schedules, in the patient's local time",
        responses={200: ScheduleSerializer(many=True), 404: ERROR},
        examples=examples.SCHEDULES,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        schedules = patient.measurement_schedules.select_related("protocol").order_by(
            "metric", "key"
        )
        return Response(ScheduleSerializer(schedules, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Add a measurement schedule for the patient",
        request=ScheduleCreateSerializer,
        responses={201: ScheduleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.SCHEDULE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require_team_permission(request, patient.care_team_id, ADDS_SCHEDULES)
        body = ScheduleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                schedule = add_measurement_schedule(patient=patient, **body.validated_data)
        except IntegrityError as error:
            raise ValidationError(
                {"key": ["The patient already has a schedule with this key."]}
            ) from error
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class PatientScheduleChangeDeleteApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Change a measurement schedule's times, days, window or active flag",
        description="Slots already opened keep their times; the next one follows the change.",
        request=ScheduleChangeSerializer,
        responses={200: ScheduleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.SCHEDULE_CHANGE,
    )
    def patch(self, request, patient_id: int, schedule_id: int):
        patient = visible_patient(request, patient_id)
        schedule = get_object_or_404(MeasurementSchedule, pk=schedule_id, patient=patient)
        require_team_permission(request, patient.care_team_id, CHANGES_SCHEDULES)
        body = ScheduleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = change_schedule(owner=schedule, **body.validated_data)
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(
        tags=["staff"],
        summary="Delete a measurement schedule and its slots (readings stay)",
        description="To pause reminders and keep the slot history, PATCH `active: false`.",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int, schedule_id: int):
        patient = visible_patient(request, patient_id)
        schedule = get_object_or_404(MeasurementSchedule, pk=schedule_id, patient=patient)
        require_team_permission(request, patient.care_team_id, DELETES_SCHEDULES)
        schedule.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PatientMedicationPlanListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's medication plans, in the patient's local time",
        responses={200: MedicationPlanSerializer(many=True), 404: ERROR},
        examples=examples.MEDICATIONS,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        plans = patient.medication_plans.order_by("medication")
        return Response(MedicationPlanSerializer(plans, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Add a medication plan for the patient",
        request=MedicationPlanCreateSerializer,
        responses={201: MedicationPlanSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.MEDICATION_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require_team_permission(request, patient.care_team_id, ADDS_PLANS)
        body = MedicationPlanCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                plan = add_medication_plan(patient=patient, **body.validated_data)
        except IntegrityError as error:
            raise ValidationError(
                {"medication": ["The patient already has a plan for this medication."]}
            ) from error
        return Response(MedicationPlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class PatientMedicationPlanChangeDeleteApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Change a medication plan's name, dose times, days, window, critical or active",
        description="Slots already opened keep their times; the next one follows the change.",
        request=MedicationPlanChangeSerializer,
        responses={200: MedicationPlanSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.MEDICATION_CHANGE,
    )
    def patch(self, request, patient_id: int, plan_id: int):
        patient = visible_patient(request, patient_id)
        plan = get_object_or_404(MedicationPlan, pk=plan_id, patient=patient)
        require_team_permission(request, patient.care_team_id, CHANGES_PLANS)
        body = MedicationPlanChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        plan = change_schedule(owner=plan, **body.validated_data)
        return Response(MedicationPlanSerializer(plan).data)

    @extend_schema(
        tags=["staff"],
        summary="Delete a medication plan and its slots (dose readings stay)",
        description="To pause reminders and keep the slot history, PATCH `active: false`.",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int, plan_id: int):
        patient = visible_patient(request, patient_id)
        plan = get_object_or_404(MedicationPlan, pk=plan_id, patient=patient)
        require_team_permission(request, patient.care_team_id, DELETES_PLANS)
        plan.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
