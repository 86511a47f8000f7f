from django.contrib.auth import get_user_model
from rest_framework import serializers

from alerts.models import PERSON_REASONS, AlertStatus, CareTeamRole, ResolutionReason
from monitoring.models import Metric, RuleKind, Severity
from monitoring.serializers import AsWrittenDateTimeField

User = get_user_model()


class UsernameField(serializers.CharField):
    """A staff member by username: in, the name (validate_username finds the user); out,
    the user's username. The field's source is the user."""

    def to_representation(self, user):
        return user.username


class MemberSerializer(serializers.Serializer):
    """A care team membership."""

    username = UsernameField(source="user", max_length=150)
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
    members = MemberSerializer(many=True, source="memberships", allow_empty=True, required=False)

    def validate_members(self, members):
        users = [member["user"] for member in members]
        if len(set(users)) != len(users):
            raise serializers.ValidationError("Each member may be listed once.")
        return members


class AlertRuleSerializer(serializers.Serializer):
    """The rule as it fired: the alert keeps its kind, version and parameters."""

    id = serializers.IntegerField(source="rule_id", allow_null=True)
    kind = serializers.ChoiceField(RuleKind.choices)
    metric = serializers.ChoiceField(Metric.choices)
    version = serializers.IntegerField(
        source="rule_version", help_text="The rule version that fired."
    )
    parameters = serializers.DictField(
        source="rule_parameters", help_text="The parameters that fired, canonical units."
    )


class AlertSerializer(serializers.Serializer):
    """An alert as docs/api.md describes it, plus its triage context."""

    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    rule = AlertRuleSerializer(source="*")
    severity = serializers.ChoiceField(Severity.choices)
    status = serializers.ChoiceField(AlertStatus.choices)
    title = serializers.CharField()
    detail = serializers.CharField()
    occurrences = serializers.IntegerField()
    first_triggered_at = AsWrittenDateTimeField()
    last_triggered_at = AsWrittenDateTimeField()
    condition_cleared_at = AsWrittenDateTimeField(allow_null=True)
    escalation_level = serializers.IntegerField()
    assignee = serializers.CharField(
        source="assignee.username", allow_null=True, help_text="username"
    )
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", allow_null=True, help_text="username"
    )
    acknowledged_at = AsWrittenDateTimeField(allow_null=True)
    resolved_by = serializers.CharField(
        source="resolved_by.username", allow_null=True, help_text="username"
    )
    resolved_at = AsWrittenDateTimeField(allow_null=True)
    # An addition to the contract's alert (issue 13): blank until resolved, and for alerts
    # resolved before reasons were recorded or through the API without one.
    resolution_reason = serializers.ChoiceField(
        ResolutionReason.choices,
        allow_blank=True,
        help_text="Why it was resolved; `expired` is Vigil's own for an info alert nobody "
        "had to act on; blank when not resolved or no reason was given.",
    )


class AlertFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["open", "acknowledged", "resolved"], required=False)
    severity = serializers.ChoiceField(["info", "warning", "critical"], required=False)
    patient = serializers.IntegerField(required=False, min_value=1)


class AlertNoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class AlertResolveSerializer(AlertNoteSerializer):
    """The contract's {"note"}, and optionally why (issue 13): apps written before reasons
    existed keep resolving without one."""

    reason = serializers.ChoiceField(
        PERSON_REASONS,
        required=False,
        help_text="Why the alert is resolved; counted in the rule's statistics.",
    )
