from datetime import timedelta
from datetime import timezone as dt_timezone

from rest_framework import serializers

from alerts.models import CareTeam
from monitoring.models import (
    Device,
    DeviceKind,
    GlucoseUnit,
    Metric,
    NudgeChannel,
    Patient,
    ProtocolCode,
    Reading,
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


class PatientSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    external_id = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    timezone = serializers.CharField(max_length=64, validators=[validate_timezone])
    care_team = serializers.IntegerField(source="care_team_id")
    protocols = serializers.ListField(
        child=serializers.ChoiceField(ProtocolCode.choices), allow_empty=True, required=False
    )
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

    def to_representation(self, patient):
        data = super().to_representation(patient)
        data["protocols"] = sorted(p.code for p in patient.protocols.all())
        return data


class ReadingSerializer(serializers.Serializer):
    """A stored reading: canonical value and unit, and the value and unit as sent."""

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
