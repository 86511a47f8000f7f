"""The patient app's nudges and push tokens."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import NewestFirstCursorPagination
from monitoring import examples
from monitoring.auth import (
    IsPatientApp,
)
from monitoring.models import (
    Nudge,
)
from monitoring.nudges.delivery import forget_push_token, open_nudge, register_push_token
from monitoring.serializers import (
    NudgeSerializer,
    PushTokenDeleteSerializer,
    PushTokenSerializer,
)
from monitoring.views.access import ERROR

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
