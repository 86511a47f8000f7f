"""Readings: the patient's own (app and devices) and the staff's view of them."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import NewestFirstCursorPagination
from monitoring import examples
from monitoring.audit import mark_recorded, upload_event
from monitoring.auth import (
    IsPatientApp,
    IsPatientAppOrDevice,
)
from monitoring.ingest import MalformedBatch, parse_batch, record_readings
from monitoring.models import (
    Metric,
    Patient,
    Reading,
)
from monitoring.serializers import (
    MeSerializer,
    ReadingFilterSerializer,
    ReadingSerializer,
)
from monitoring.views.access import ERROR


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
        result = record_readings(
            patient=principal.patient,
            items=items,
            device=principal.device,
            audit=upload_event(request._request, patient_id=principal.patient.pk),
        )
        if result.audited:
            mark_recorded(request._request)
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
