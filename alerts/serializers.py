from django.contrib.auth import get_user_model
from rest_framework import serializers

from alerts.models import CareTeamRole

User = get_user_model()


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(CareTeamRole.choices)
    escalation_level = serializers.IntegerField(min_value=1, max_value=10, default=1)

    def validate_username(self, value):
        user = User.objects.filter(username=value, is_active=True, is_staff=True).first()
        if user is None:
            raise serializers.ValidationError(f"No active staff account is named '{value}'.")
        return user


class CareTeamSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=120)
    members = MemberSerializer(many=True, allow_empty=True, required=False)

    def validate_members(self, members):
        users = [member["username"] for member in members]
        if len(set(users)) != len(users):
            raise serializers.ValidationError("Each member may be listed once.")
        return members

    def to_representation(self, team):
        return {
            "id": team.pk,
            "name": team.name,
            "members": [
                {
                    "username": membership.user.username,
                    "role": membership.role,
                    "escalation_level": membership.escalation_level,
                }
                for membership in team.memberships.all()
            ],
        }
