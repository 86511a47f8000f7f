from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import CareTeam
from alerts.serializers import CareTeamSerializer
from alerts.teams import DuplicateCareTeam, NewMember, create_care_team
from monitoring.auth import IsStaff
from monitoring.examples import CARE_TEAMS
from monitoring.views import ERROR


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
        if not request.user.has_perm("alerts.add_careteam"):
            raise PermissionDenied("Only clinic administrators may create care teams.")
        serializer = CareTeamSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        members = [
            NewMember(m["username"], m["role"], m["escalation_level"])
            for m in data.get("members", [])
        ]
        try:
            team = create_care_team(name=data["name"], members=members)
        except DuplicateCareTeam as error:
            raise ValidationError({"name": ["A care team with this name exists."]}) from error
        team = CareTeam.objects.prefetch_related("memberships__user").get(pk=team.pk)
        return Response(CareTeamSerializer(team).data, status=status.HTTP_201_CREATED)
