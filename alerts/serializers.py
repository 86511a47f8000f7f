from django.contrib.auth import get_user_model
from rest_framework import serializers

from alerts.models import AlertStatus, CareTeamRole
from monitoring.models import Metric, RuleKind, Severity

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


class AlertRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(RuleKind.choices)
    metric = serializers.ChoiceField(Metric.choices)
    version = serializers.IntegerField(help_text="The rule version that fired.")
    parameters = serializers.DictField(help_text="The parameters that fired, canonical units.")


class AlertSerializer(serializers.Serializer):
    """An alert as API.md describes it, plus its triage context."""

    # The fields document the shape for the OpenAPI schema; to_representation writes it.
    id = serializers.IntegerField()
    patient = serializers.IntegerField()
    rule = AlertRuleSerializer()
    severity = serializers.ChoiceField(Severity.choices)
    status = serializers.ChoiceField(AlertStatus.choices)
    title = serializers.CharField()
    detail = serializers.CharField()
    occurrences = serializers.IntegerField()
    first_triggered_at = serializers.DateTimeField()
    last_triggered_at = serializers.DateTimeField()
    condition_cleared_at = serializers.DateTimeField(allow_null=True)
    escalation_level = serializers.IntegerField()
    assignee = serializers.CharField(allow_null=True, help_text="username")
    acknowledged_by = serializers.CharField(allow_null=True, help_text="username")
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.CharField(allow_null=True, help_text="username")
    resolved_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, alert) -> dict:
        return {
            "id": alert.pk,
            "patient": alert.patient_id,
            "rule": {
                "id": alert.rule_id,
                "kind": alert.kind,
                "metric": alert.metric,
                "version": alert.rule_version,
                "parameters": alert.rule_parameters,
            },
            "severity": alert.severity,
            "status": alert.status,
            "title": alert.title,
            "detail": alert.detail,
            "occurrences": alert.occurrences,
            "first_triggered_at": alert.first_triggered_at.isoformat(),
            "last_triggered_at": alert.last_triggered_at.isoformat(),
            "condition_cleared_at": _iso(alert.condition_cleared_at),
            "escalation_level": alert.escalation_level,
            "assignee": _username(alert.assignee),
            "acknowledged_by": _username(alert.acknowledged_by),
            "acknowledged_at": _iso(alert.acknowledged_at),
            "resolved_by": _username(alert.resolved_by),
            "resolved_at": _iso(alert.resolved_at),
        }


def _iso(value):
    return value.isoformat() if value else None


def _username(user):
    return user.username if user else None


class AlertFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["open", "acknowledged", "resolved"], required=False)
    severity = serializers.ChoiceField(["info", "warning", "critical"], required=False)
    patient = serializers.IntegerField(required=False, min_value=1)


class AlertNoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
