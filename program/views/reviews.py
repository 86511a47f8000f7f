"""POST /api/v1/patients/{id}/reviews: a care-team member's "reviewed" sign-off."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import REVIEW_PATIENTS
from monitoring.auth import IsStaff
from monitoring.serializers import AsWrittenDateTimeField
from monitoring.views import ERROR, require, visible_patient
from program.reviews import NOTE_LENGTH, sign_off_review


class ReviewCreateSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=NOTE_LENGTH,
        default="",
        help_text="What the reviewer saw or decided; optional.",
    )


class ReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    reviewer = serializers.CharField(source="reviewer.username", help_text="username")
    at = AsWrittenDateTimeField()
    note = serializers.CharField(allow_blank=True)


REVIEW_EXAMPLES = [
    OpenApiExample(
        "A sign-off",
        value={"note": "Weights stable this week; BP at target."},
        request_only=True,
    ),
    OpenApiExample(
        "Signed off",
        value={
            "id": 41,
            "patient": 12,
            "reviewer": "dr.adams",
            "at": "2026-03-09T16:00:00+00:00",
            "note": "Weights stable this week; BP at target.",
        },
        response_only=True,
        status_codes=["201"],
    ),
]


class PatientReviewCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Sign off a review of the patient's data (a member of the patient's team)",
        request=ReviewCreateSerializer,
        responses={201: ReviewSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=REVIEW_EXAMPLES,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, REVIEW_PATIENTS, team_id=patient.care_team_id)
        body = ReviewCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            review = sign_off_review(patient=patient, user=request.user, **body.validated_data)
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from error
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
