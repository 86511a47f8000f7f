from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.lifecycle import InvalidTransition, acknowledge_alert, resolve_alert
from alerts.models import Alert, CareTeam
from alerts.serializers import (
    AlertFilterSerializer,
    AlertNoteSerializer,
    AlertResolveSerializer,
    AlertSerializer,
    CareTeamSerializer,
)
from alerts.teams import (
    CREATE_CARE_TEAMS,
    TRIAGE_ALERTS,
    DuplicateCareTeam,
    NewMember,
    create_care_team,
)
from config.api import PagePagination
from monitoring.auth import IsStaff
from monitoring.examples import ALERT_NOTE, ALERT_RESOLVE, ALERTS, CARE_TEAMS
from monitoring.views import ERROR, require


class CareTeamListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The caller's care teams (all teams for a superuser)",
        responses={200: CareTeamSerializer(many=True)},
        examples=CARE_TEAMS,
    )
    def get(self, request):
        teams = CareTeam.objects.visible_to(request.user).prefetch_related("memberships__user")
        return Response(CareTeamSerializer(teams, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Create a care team (clinic administrators)",
        request=CareTeamSerializer,
        responses={201: CareTeamSerializer, 400: ERROR, 403: ERROR},
        examples=CARE_TEAMS,
    )
    def post(self, request):
        require(request, CREATE_CARE_TEAMS, team_id=None)
        serializer = CareTeamSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        members = [NewMember(**member) for member in data.get("memberships", [])]
        try:
            team = create_care_team(name=data["name"], members=members)
        except DuplicateCareTeam as error:
            raise ValidationError({"name": ["A care team with this name exists."]}) from error
        team = CareTeam.objects.prefetch_related("memberships__user").get(pk=team.pk)
        return Response(CareTeamSerializer(team).data, status=status.HTTP_201_CREATED)


# --- Alerts -------------------------------------------------------------------------------


def visible_alerts(user):
    alerts = Alert.objects.select_related("patient", "acknowledged_by", "resolved_by", "assignee")
    if user.is_superuser:
        return alerts
    return alerts.filter(patient__care_team__memberships__user=user)


class AlertListApi(APIView):
    permission_classes = [IsStaff]
    pagination_class = PagePagination

    @extend_schema(
        tags=["staff"],
        summary="Alerts of the caller's patients, newest first",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=["open", "acknowledged", "resolved"]),
            OpenApiParameter("severity", OpenApiTypes.STR, enum=["info", "warning", "critical"]),
            OpenApiParameter("patient", OpenApiTypes.INT),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: AlertSerializer(many=True), 400: ERROR},
        examples=ALERTS,
    )
    def get(self, request):
        filters = AlertFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        query = dict(filters.validated_data)
        if "patient" in query:
            # patient__id, not patient: the id's own lookup knows its 64-bit range, so an id
            # past it matches nothing on SQLite too, where binding it would raise (a 500).
            query["patient__id"] = query.pop("patient")
        alerts = visible_alerts(request.user).filter(**query)
        alerts = alerts.order_by("-last_triggered_at", "-id")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(alerts, request, self)
        return paginator.get_paginated_response(AlertSerializer(page, many=True).data)


class AlertTransitionApi(APIView):
    permission_classes = [IsStaff]
    transition = None
    body = AlertNoteSerializer

    def post(self, request, alert_id: int):
        alert = get_object_or_404(visible_alerts(request.user), pk=alert_id)
        # Triage is the nurses' and physicians' (a coordinator reads alerts).
        require(request, TRIAGE_ALERTS, team_id=alert.patient.care_team_id)
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            alert = type(self).transition(alert=alert, user=request.user, **body.validated_data)
        except InvalidTransition as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(AlertSerializer(alert).data)


class AlertAcknowledgeApi(AlertTransitionApi):
    transition = staticmethod(acknowledge_alert)

    @extend_schema(
        tags=["staff"],
        summary="Acknowledge an alert (stops its escalation)",
        request=AlertNoteSerializer,
        responses={200: AlertSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        examples=ALERT_NOTE,
    )
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)


class AlertResolveApi(AlertTransitionApi):
    transition = staticmethod(resolve_alert)
    body = AlertResolveSerializer

    @extend_schema(
        tags=["staff"],
        summary="Resolve an alert, optionally with why",
        description=(
            '`reason` is an addition to the contract\'s `{"note"}` (issue 13): one of '
            "`contacted_patient`, `escalated`, `no_action_needed`, `false_alarm`. Optional, "
            "so apps written before it keep working; an unknown reason is a 400 naming the "
            "field, and nothing changes."
        ),
        request=AlertResolveSerializer,
        responses={200: AlertSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        examples=ALERT_RESOLVE,
    )
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)
