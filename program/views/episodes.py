"""RPM episodes of a patient: list, start (coordinators), end (coordinators)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import MANAGE_EPISODES
from monitoring.auth import IsStaff
from monitoring.serializers import AsWrittenDateTimeField
from monitoring.views import ERROR, require, visible_patient
from program.episodes import EpisodeConflict, InvalidEpisode, end_episode, start_episode
from program.models import ConsentMethod, Episode


class EpisodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    start = serializers.DateField()
    end = serializers.DateField(allow_null=True, help_text="Inclusive; null while it runs.")
    consent_at = AsWrittenDateTimeField(allow_null=True)
    consent_method = serializers.ChoiceField(ConsentMethod.choices, allow_blank=True)
    billing_practitioner = serializers.CharField(
        source="billing_practitioner.username", help_text="username"
    )
    conditions = serializers.ListField(
        child=serializers.CharField(), help_text="ICD-10-CM codes of the conditions monitored."
    )
    devices = serializers.SerializerMethodField(help_text="Ids of the devices supplied.")
    created_by = serializers.CharField(
        source="created_by.username", allow_null=True, help_text="username"
    )
    created_at = AsWrittenDateTimeField()
    ended_by = serializers.CharField(
        source="ended_by.username", allow_null=True, help_text="username"
    )

    def get_devices(self, episode) -> list[int]:
        return sorted(device.pk for device in episode.devices.all())


class EpisodeCreateSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="The patient's local day monitoring begins.")
    consent_at = serializers.DateTimeField(help_text="When the patient consented.")
    consent_method = serializers.ChoiceField(ConsentMethod.choices)
    billing_practitioner = serializers.CharField(
        max_length=150, help_text="username: an active physician of the patient's care team"
    )
    conditions = serializers.ListField(
        child=serializers.CharField(max_length=16),
        allow_empty=False,
        max_length=20,
        help_text='ICD-10-CM codes, e.g. "I10", "E11.9".',
    )
    devices = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=20,
        help_text="Ids of the patient's active devices supplied for the episode.",
    )


class EpisodeEndSerializer(serializers.Serializer):
    end = serializers.DateField(help_text="The last day of the episode (inclusive).")


EPISODE_CREATE = [
    OpenApiExample(
        "Hypertension, written consent",
        value={
            "start": "2026-03-02",
            "consent_at": "2026-03-02T09:15:00-05:00",
            "consent_method": "written",
            "billing_practitioner": "dr.okafor",
            "conditions": ["I10"],
            "devices": [3],
        },
        request_only=True,
    ),
    OpenApiExample(
        "Wrong fields",
        value={
            "detail": "Invalid input.",
            "errors": {
                "billing_practitioner": [
                    "'nurse.lee' is not an active physician of the patient's care team."
                ],
                "conditions": {"1": ["Not an ICD-10-CM code: a letter, a digit …"]},
            },
        },
        response_only=True,
        status_codes=["400"],
    ),
    OpenApiExample(
        "An open episode",
        value={"detail": "The patient has an open episode (episode 4, started 2026-01-05): …"},
        response_only=True,
        status_codes=["409"],
    ),
]
EPISODE_END = [OpenApiExample("Ended", value={"end": "2026-05-31"}, request_only=True)]


def patient_episodes(patient):
    return (
        Episode.objects.filter(patient=patient)
        .select_related("billing_practitioner", "created_by", "ended_by")
        .prefetch_related("devices")
        .order_by("-start")
    )


class PatientEpisodeListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's RPM episodes, latest first",
        responses={200: EpisodeSerializer(many=True), 404: ERROR},
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        return Response(EpisodeSerializer(patient_episodes(patient), many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Start an RPM episode (the patient's coordinators)",
        description=(
            "Consent is given by the start day; neither start nor consent is in the future. "
            "A patient has one open episode at most and episodes never overlap: 409."
        ),
        request=EpisodeCreateSerializer,
        responses={201: EpisodeSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        examples=EPISODE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, MANAGE_EPISODES, team_id=patient.care_team_id)
        body = EpisodeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            episode = start_episode(patient=patient, user=request.user, **body.validated_data)
        except InvalidEpisode as error:
            raise ValidationError(error.errors) from error
        except EpisodeConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        episode = patient_episodes(patient).get(pk=episode.pk)
        return Response(EpisodeSerializer(episode).data, status=status.HTTP_201_CREATED)


class PatientEpisodeEndApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="End an RPM episode (the patient's coordinators)",
        description="Not before its start, not after today (the patient's time zone); once.",
        request=EpisodeEndSerializer,
        responses={200: EpisodeSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        examples=EPISODE_END,
    )
    def patch(self, request, patient_id: int, episode_id: int):
        patient = visible_patient(request, patient_id)
        episode = get_object_or_404(Episode, pk=episode_id, patient=patient)
        require(request, MANAGE_EPISODES, team_id=patient.care_team_id)
        body = EpisodeEndSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            episode = end_episode(episode=episode, user=request.user, **body.validated_data)
        except InvalidEpisode as error:
            raise ValidationError(error.errors) from error
        except EpisodeConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        episode = patient_episodes(patient).get(pk=episode.pk)
        return Response(EpisodeSerializer(episode).data)
