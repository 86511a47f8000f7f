"""GET /api/v1/panel: the care team's panel (docs/api.md, "The RPM program"; program.panel).

One row per patient of the caller's teams, or of one of them (`team`), filtered and sorted
by the query; page-number pages as the other staff lists. The rows' columns and what each
flag means are program.panel's. Audited as a list: one event per patient shown.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from alerts.models import CareTeam
from config.api import PagePagination
from monitoring.auth import IsStaff
from monitoring.models import Metric, NudgeStatus, Severity
from monitoring.serializers import AsWrittenDateTimeField
from monitoring.views import ERROR
from program import panel
from program.periods import Reach


class PanelQuerySerializer(serializers.Serializer):
    """The panel's query: the team, the filters (all must hold) and the order."""

    team = serializers.IntegerField(
        required=False, min_value=1, help_text="One of the caller's care teams."
    )
    needs_review = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only patients with unresolved alerts or data measured since their last review.",
    )
    no_data = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only patients without a reading for VIGIL_PANEL_NO_DATA_DAYS (3) days.",
    )
    at_risk = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only patients who cannot or may not reach "
        "the full period's days with data (16).",
    )
    minutes_below = serializers.ChoiceField(
        choices=[],
        required=False,
        help_text="Only patients in the program with fewer minutes "
        "logged this month (the 99470 and 99457 minimums).",
    )
    sort = serializers.ChoiceField(
        choices=[*panel.SORTS, *(f"-{name}" for name in panel.SORTS)],
        required=False,
        default=panel.DEFAULT_SORT,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["minutes_below"].choices = panel.minutes_thresholds()

    def validate_team(self, value: int) -> int:
        user = self.context["request"].user
        if not CareTeam.objects.visible_to(user).filter(pk=value).exists():
            raise serializers.ValidationError("Not one of your care teams.")
        return value

    def filters(self) -> panel.PanelFilters:
        data = self.validated_data
        return panel.PanelFilters(
            needs_review=data["needs_review"],
            no_data=data["no_data"],
            at_risk=data["at_risk"],
            minutes_below=data.get("minutes_below"),
        )


class LastReadingSerializer(serializers.Serializer):
    value = serializers.FloatField(
        allow_null=True, help_text="In the unit below; null for blood pressure."
    )
    systolic = serializers.FloatField(allow_null=True, help_text="Blood pressure only.")
    diastolic = serializers.FloatField(allow_null=True, help_text="Blood pressure only.")
    unit = serializers.CharField(
        help_text="The canonical unit (UCUM), as the readings list gives it."
    )
    measured_at = AsWrittenDateTimeField()
    age_seconds = serializers.SerializerMethodField(help_text="How long ago it was measured.")

    def get_age_seconds(self, reading: panel.LastReading) -> int:
        return int(reading.age(self.context["now"]).total_seconds())


# Written out rather than a $ref: OpenAPI 3.0 cannot make a referenced schema nullable
# (`nullable` beside `allOf` does not apply to the reference), and a metric never measured
# is null.
LAST_READING_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {
        "value": {"type": "number", "nullable": True, "description": "Null for blood pressure."},
        "systolic": {"type": "number", "nullable": True, "description": "Blood pressure only."},
        "diastolic": {"type": "number", "nullable": True, "description": "Blood pressure only."},
        "unit": {"type": "string", "description": "The canonical unit (UCUM)."},
        "measured_at": {"type": "string", "format": "date-time"},
        "age_seconds": {"type": "integer", "description": "How long ago it was measured."},
    },
    "required": ["value", "systolic", "diastolic", "unit", "measured_at", "age_seconds"],
}


@extend_schema_field(
    {
        "type": "object",
        "description": "Each metric the patient's protocols watch (doses aside), with its "
        "last reading, or null if it was never measured.",
        "additionalProperties": LAST_READING_SCHEMA,
    }
)
class LastReadingsField(serializers.Field):
    def to_representation(self, readings: dict):
        serializer = LastReadingSerializer(context=self.context)
        return {
            metric: None if reading is None else serializer.to_representation(reading)
            for metric, reading in readings.items()
        }


class PanelRowSerializer(serializers.Serializer):
    """One patient's row (program.panel says what each column counts)."""

    patient = serializers.IntegerField(source="standing.patient_id")
    name = serializers.CharField(source="standing.name")
    external_id = serializers.CharField(source="standing.external_id")
    highest_severity = serializers.ChoiceField(
        Severity.choices,
        source="standing.highest_severity",
        allow_null=True,
        help_text="The worst unresolved (open or acknowledged) alert's.",
    )
    open_alerts = serializers.IntegerField(
        source="standing.open_alerts", help_text="Unresolved alerts: open or acknowledged."
    )
    last_readings = LastReadingsField()
    main_metric = serializers.ChoiceField(Metric.choices, allow_null=True)
    trend = serializers.ListField(
        child=serializers.FloatField(),
        help_text="The main metric's last values (systolic for blood pressure), oldest first.",
    )
    last_data_at = AsWrittenDateTimeField(source="standing.last_data_at", allow_null=True)
    no_data = serializers.BooleanField(source="standing.no_data")
    needs_review = serializers.BooleanField(source="standing.needs_review")
    days_with_data = serializers.IntegerField(
        source="standing.days_with_data",
        allow_null=True,
        help_text="Local days with device data in the running device period; null outside "
        "an episode.",
    )
    period_end = serializers.DateField(source="standing.period_end", allow_null=True)
    at_risk = serializers.BooleanField(
        source="standing.at_risk", help_text="Cannot or may not reach the full period's days."
    )
    reach = serializers.ChoiceField(
        [Reach.REACHED, Reach.ON_TRACK, Reach.AT_RISK, Reach.CANNOT],
        source="standing.reach",
        allow_null=True,
    )
    keep_sending_nudge = serializers.ChoiceField(
        NudgeStatus.choices,
        allow_null=True,
        help_text="Today's encouragement by the outreach job to keep sending data, by its "
        "status; null: none today.",
    )
    minutes_this_month = serializers.IntegerField(source="standing.minutes_this_month")
    approved_minutes_this_month = serializers.IntegerField(
        source="standing.approved_minutes_this_month"
    )
    interactive_this_month = serializers.BooleanField(source="standing.interactive_this_month")
    last_reviewed_at = AsWrittenDateTimeField(source="standing.last_reviewed_at", allow_null=True)
    last_reviewed_by = serializers.CharField(
        source="standing.last_reviewed_by", allow_null=True, help_text="username"
    )


PANEL_ROW_EXAMPLE = {
    "patient": 42,
    "name": "Ada Example",
    "external_id": "MRN-000042",
    "highest_severity": "warning",
    "open_alerts": 1,
    "last_readings": {
        "weight": {
            "value": 81.4,
            "systolic": None,
            "diastolic": None,
            "unit": "kg",
            "measured_at": "2026-03-01T06:30:00+00:00",
            "age_seconds": 9000,
        },
        "blood_pressure": {
            "value": None,
            "systolic": 128.0,
            "diastolic": 82.0,
            "unit": "mm[Hg]",
            "measured_at": "2026-03-01T06:32:00+00:00",
            "age_seconds": 8880,
        },
    },
    "main_metric": "weight",
    "trend": [80.9, 81.0, 81.2, 81.4],
    "last_data_at": "2026-03-01T06:32:00+00:00",
    "no_data": False,
    "needs_review": True,
    "days_with_data": 9,
    "period_end": "2026-03-14",
    "at_risk": False,
    "reach": "on_track",
    "keep_sending_nudge": None,
    "minutes_this_month": 12,
    "approved_minutes_this_month": 0,
    "interactive_this_month": True,
    "last_reviewed_at": "2026-02-27T15:04:00+00:00",
    "last_reviewed_by": "nurse.jones",
}


class PanelApi(APIView):
    permission_classes = [IsStaff]
    pagination_class = PagePagination

    @extend_schema(
        tags=["staff"],
        summary="The panel: one row per patient of the caller's teams",
        parameters=[
            PanelQuerySerializer,
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
        responses={200: PanelRowSerializer(many=True), 400: ERROR},
        examples=[OpenApiExample("A row", value=PANEL_ROW_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        query = PanelQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        now = timezone.now()
        try:
            standings = panel.panel_standings(
                user=request.user, team_id=query.validated_data.get("team"), now=now
            )
        except panel.UnknownTeam as error:  # left the team since the query was checked
            raise ValidationError({"team": ["Not one of your care teams."]}) from error
        standings = panel.select(
            standings, filters=query.filters(), sort=query.validated_data["sort"]
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(standings, request, view=self)
        rows = panel.panel_rows(page, now=now)
        data = PanelRowSerializer(rows, many=True, context={"now": now}).data
        return paginator.get_paginated_response(data)
