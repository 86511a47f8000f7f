from datetime import timedelta
from datetime import timezone as dt_timezone

from rest_framework import serializers

from alerts.models import CareTeam
from monitoring.models import (
    Device,
    DeviceKind,
    DoseStatus,
    GlucoseContext,
    GlucoseUnit,
    Metric,
    NudgeChannel,
    Patient,
    ProtocolCode,
    Reading,
    ReadingSource,
    RuleKind,
    Severity,
    WeightUnit,
    validate_timezone,
)


class StaffLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenIssuedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once; store it safely.")
    expires_at = serializers.DateTimeField()


class AppTokenIssuedSerializer(TokenIssuedSerializer):
    id = serializers.IntegerField()


class PreferencesSerializer(serializers.Serializer):
    glucose_unit = serializers.ChoiceField(GlucoseUnit.choices, required=False)
    weight_unit = serializers.ChoiceField(WeightUnit.choices, required=False)
    language = serializers.CharField(max_length=16, required=False)
    nudge_channel = serializers.ChoiceField(NudgeChannel.choices, required=False)
    quiet_hours_start = serializers.TimeField(required=False, allow_null=True)
    quiet_hours_end = serializers.TimeField(required=False, allow_null=True)
    daily_nudge_cap = serializers.IntegerField(required=False, min_value=0, max_value=24)

    def validate(self, attrs):
        start, end = attrs.get("quiet_hours_start"), attrs.get("quiet_hours_end")
        if (start is None) != (end is None):
            raise serializers.ValidationError(
                {"quiet_hours_end": ["Give both ends of the quiet hours, or neither."]}
            )
        return attrs

    def to_representation(self, patient):
        return {name: getattr(patient, name) for name in self.fields} | {
            "quiet_hours_start": _time(patient.quiet_hours_start),
            "quiet_hours_end": _time(patient.quiet_hours_end),
        }


def _time(value):
    return value.strftime("%H:%M") if value else None


class ProtocolCodesField(serializers.ListField):
    """Protocol codes in; out, the patient's protocols (a related manager) as sorted codes."""

    child = serializers.ChoiceField(ProtocolCode.choices)

    def to_representation(self, protocols):
        return sorted(protocol.code for protocol in protocols.all())


class PatientSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    external_id = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    timezone = serializers.CharField(max_length=64, validators=[validate_timezone])
    care_team = serializers.IntegerField(source="care_team_id")
    protocols = ProtocolCodesField(allow_empty=True, required=False)
    preferences = PreferencesSerializer(source="*", required=False)
    created_at = serializers.DateTimeField(read_only=True)

    def validate_protocols(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each protocol may be listed once.")
        return value

    def validate_care_team(self, value):
        user = self.context["request"].user
        team = CareTeam.objects.visible_to(user).filter(pk=value).first()
        if team is None:
            raise serializers.ValidationError("Not one of your care teams.")
        return team


class SentValueSerializer(serializers.Serializer):
    value = serializers.FloatField()
    unit = serializers.CharField()


class ReadingSerializer(serializers.Serializer):
    """A stored reading: canonical value and unit, and the value and unit as sent."""

    # The fields document the shape for the OpenAPI schema; to_representation writes it.
    id = serializers.UUIDField(help_text="The id the client made for the reading.")
    type = serializers.ChoiceField(Metric.choices)
    measured_at = serializers.DateTimeField(help_text="With the UTC offset the client sent.")
    received_at = serializers.DateTimeField()
    source = serializers.ChoiceField(ReadingSource.choices)
    device = serializers.CharField(allow_null=True, help_text="The device serial, if any.")
    value = serializers.FloatField(required=False, help_text="In the canonical unit.")
    unit = serializers.CharField(required=False, help_text="The canonical unit.")
    sent = SentValueSerializer(required=False, help_text="The value and unit as sent.")
    systolic = serializers.FloatField(required=False, help_text="blood_pressure")
    diastolic = serializers.FloatField(required=False, help_text="blood_pressure")
    medication = serializers.CharField(required=False, help_text="dose")
    status = serializers.ChoiceField(DoseStatus.choices, required=False, help_text="dose")
    scheduled_for = serializers.DateTimeField(required=False, allow_null=True, help_text="dose")
    context = serializers.ChoiceField(GlucoseContext.choices, required=False)
    part_of = serializers.UUIDField(
        required=False, help_text="A pulse stored from a blood pressure: that reading's id."
    )

    def to_representation(self, reading: Reading) -> dict:
        offset = dt_timezone(timedelta(minutes=reading.utc_offset_minutes))
        data = {
            "id": str(reading.client_id),
            "type": reading.metric,
            "measured_at": reading.measured_at.astimezone(offset).isoformat(),
            "received_at": reading.received_at.isoformat(),
            "source": reading.source,
            "device": reading.device_serial or None,
        }
        if reading.metric == Metric.BLOOD_PRESSURE:
            data |= {
                "systolic": reading.systolic,
                "diastolic": reading.diastolic,
                "unit": reading.unit,
            }
        elif reading.metric == Metric.DOSE:
            data |= {
                "medication": reading.medication,
                "status": reading.dose_status,
                "scheduled_for": reading.scheduled_for.isoformat()
                if reading.scheduled_for
                else None,
            }
        else:
            data |= {
                "value": reading.value,
                "unit": reading.unit,
                "sent": {"value": reading.sent_value, "unit": reading.sent_unit},
            }
        if reading.context:
            data["context"] = reading.context
        if reading.part_of:
            data["part_of"] = str(reading.part_of)
        return data


class ReadingFilterSerializer(serializers.Serializer):
    type = serializers.ChoiceField(Metric.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        if "since" in attrs and "until" in attrs and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError({"until": ["Must not be before 'since'."]})
        return attrs


class DeviceSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(DeviceKind.choices)

    class Meta:
        model = Device
        fields = ["id", "kind", "model", "serial", "created_at", "revoked_at", "last_seen_at"]
        read_only_fields = ["id", "created_at", "revoked_at", "last_seen_at"]
        # Uniqueness of an active serial is kept by the database, not a pre-check.
        validators = []


class DeviceIssuedSerializer(DeviceSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it in the device.")

    class Meta(DeviceSerializer.Meta):
        fields = [*DeviceSerializer.Meta.fields, "key"]


class MeSerializer(serializers.Serializer):
    """What the patient's app needs to show: profile and, as they arrive, plans and targets."""

    # The fields document the shape for the OpenAPI schema; to_representation writes it.
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    timezone = serializers.CharField()
    protocols = serializers.ListField(child=serializers.ChoiceField(ProtocolCode.choices))
    preferences = PreferencesSerializer()
    schedules = serializers.ListField(child=serializers.DictField())
    medications = serializers.ListField(child=serializers.DictField())
    targets = serializers.ListField(child=serializers.DictField())

    def to_representation(self, patient: Patient) -> dict:
        return {
            "id": patient.pk,
            "external_id": patient.external_id,
            "name": patient.name,
            "timezone": patient.timezone,
            "protocols": sorted(p.code for p in patient.protocols.all()),
            "preferences": PreferencesSerializer().to_representation(patient),
            "schedules": [],
            "medications": [],
            "targets": [],
        }


class RuleSerializer(serializers.Serializer):
    # The fields document the shape for the OpenAPI schema; to_representation writes it.
    id = serializers.IntegerField()
    key = serializers.CharField()
    protocol = serializers.CharField(allow_null=True, help_text="The protocol it came from.")
    kind = serializers.ChoiceField(RuleKind.choices)
    metric = serializers.ChoiceField(Metric.choices)
    severity = serializers.ChoiceField(Severity.choices)
    group = serializers.CharField()
    title = serializers.CharField()
    parameters = serializers.DictField()
    default_parameters = serializers.DictField(allow_null=True)
    reference = serializers.CharField()
    source = serializers.CharField()
    active = serializers.BooleanField()
    version = serializers.IntegerField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, rule) -> dict:
        return {
            "id": rule.pk,
            "key": rule.key,
            "protocol": rule.protocol.code if rule.protocol_id else None,
            "kind": rule.kind,
            "metric": rule.metric,
            "severity": rule.severity,
            "group": rule.group,
            "title": rule.title,
            "parameters": rule.parameters,
            "default_parameters": rule.default_parameters,
            "reference": rule.reference,
            "source": rule.source,
            "active": rule.active,
            "version": rule.version,
            "updated_at": rule.updated_at.isoformat(),
        }


class RuleCreateSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=64)
    kind = serializers.ChoiceField(RuleKind.choices)
    metric = serializers.ChoiceField(Metric.choices)
    severity = serializers.ChoiceField(Severity.choices)
    group = serializers.SlugField(max_length=64, required=False)
    title = serializers.CharField(max_length=200)
    parameters = serializers.JSONField()
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class RuleChangeSerializer(serializers.Serializer):
    parameters = serializers.JSONField(required=False)
    severity = serializers.ChoiceField(Severity.choices, required=False)
    active = serializers.BooleanField(required=False)
    title = serializers.CharField(max_length=200, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")

    def validate(self, attrs):
        if not set(attrs) - {"note"}:
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        "Change at least one of parameters, severity, active, title."
                    ]
                }
            )
        return attrs
