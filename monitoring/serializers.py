"""The API's bodies: each serializer's declared fields are the JSON it writes, in order.

Datetimes: a patient's, a device's and a nudge's in UTC with "Z" (DRF's form); a rule's, a
schedule's, a plan's and a reading's received_at as Python writes them ("+00:00",
AsWrittenDateTimeField); a reading's measured_at with the offset the client sent.
"""

from datetime import timedelta
from datetime import timezone as dt_timezone

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.models import CareTeam
from monitoring import rules as rule_kinds
from monitoring.models import (
    Device,
    DeviceKind,
    DoseStatus,
    Entry,
    GlucoseContext,
    GlucoseUnit,
    Metric,
    Nudge,
    NudgeChannel,
    NudgePurpose,
    NudgeStatus,
    Patient,
    ProtocolCode,
    PushPlatform,
    PushToken,
    Reading,
    ReadingSource,
    RuleKind,
    Severity,
    WeightUnit,
    validate_timezone,
)
from monitoring.schedules import (
    MAX_WINDOW_MINUTES,
    clean_clock_times,
    clean_days_of_week,
)


class StaffLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    otp_token = serializers.CharField(
        max_length=16,
        required=False,
        help_text="The authenticator code: required for users with an authenticator, and for "
        "everyone when the deployment requires two-factor authentication.",
    )


class TokenIssuedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once; store it safely.")
    expires_at = serializers.DateTimeField()


class AppTokenIssuedSerializer(TokenIssuedSerializer):
    id = serializers.IntegerField()


CLOCK_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


@extend_schema_field({"type": "string", "pattern": CLOCK_TIME, "example": "22:00"})
class ClockTimeField(serializers.TimeField):
    """A local clock time, written "HH:MM" (read as "HH:MM" or "HH:MM:SS")."""

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", **kwargs)


@extend_schema_field(OpenApiTypes.DATETIME)
class AsWrittenDateTimeField(serializers.DateTimeField):
    """A datetime as Python's isoformat() writes it, in the zone it holds (UTC from the
    database: "+00:00", not DRF's "Z"); the contract's form for these objects."""

    def to_representation(self, value):
        return value.isoformat()


@extend_schema_field(OpenApiTypes.DOUBLE)
class AsStoredNumberField(serializers.FloatField):
    """A number as stored, unconverted: a reading's value keeps the form it has."""

    def to_representation(self, value):
        return value


class BlankAsNullCharField(serializers.CharField):
    """A text column where "" means none: written as null."""

    def to_representation(self, value):
        return value or None


class PreferencesSerializer(serializers.Serializer):
    glucose_unit = serializers.ChoiceField(GlucoseUnit.choices, required=False)
    weight_unit = serializers.ChoiceField(WeightUnit.choices, required=False)
    language = serializers.CharField(max_length=16, required=False)
    nudge_channel = serializers.ChoiceField(NudgeChannel.choices, required=False)
    quiet_hours_start = ClockTimeField(required=False, allow_null=True)
    quiet_hours_end = ClockTimeField(required=False, allow_null=True)
    daily_nudge_cap = serializers.IntegerField(required=False, min_value=0, max_value=24)

    def validate(self, attrs):
        start, end = attrs.get("quiet_hours_start"), attrs.get("quiet_hours_end")
        if (start is None) != (end is None):
            raise serializers.ValidationError(
                {"quiet_hours_end": ["Give both ends of the quiet hours, or neither."]}
            )
        return attrs


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
    value = AsStoredNumberField(source="sent_value")
    unit = serializers.CharField(source="sent_unit")


class ReadingSerializer(serializers.Serializer):
    """A stored reading: canonical value and unit, and the value and unit as sent."""

    # A reading has the fields of its metric's shape only, absent rather than null
    # (present(), below); the order here is the JSON's order for every shape.
    id = serializers.UUIDField(
        source="client_id", help_text="The id the client made for the reading."
    )
    type = serializers.ChoiceField(Metric.choices, source="metric")
    measured_at = serializers.SerializerMethodField(
        help_text="With the UTC offset the client sent."
    )
    received_at = AsWrittenDateTimeField()
    source = serializers.ChoiceField(ReadingSource.choices)
    entry = serializers.ChoiceField(
        Entry.choices,
        help_text="`device`: measured by a device and sent automatically; `manual`: typed by a "
        "person. Only device readings count as RPM transmissions.",
    )
    device = BlankAsNullCharField(
        source="device_serial", allow_null=True, help_text="The device serial, if any."
    )
    trend = serializers.CharField(
        required=False, help_text="A CGM's trend arrow as its uploader sent it (e.g. `Flat`)."
    )
    value = AsStoredNumberField(required=False, help_text="In the canonical unit.")
    systolic = AsStoredNumberField(required=False, help_text="blood_pressure")
    diastolic = AsStoredNumberField(required=False, help_text="blood_pressure")
    unit = serializers.CharField(required=False, help_text="The canonical unit.")
    sent = SentValueSerializer(source="*", required=False, help_text="The value and unit as sent.")
    medication = serializers.CharField(required=False, help_text="dose")
    status = serializers.ChoiceField(
        DoseStatus.choices, source="dose_status", required=False, help_text="dose"
    )
    scheduled_for = AsWrittenDateTimeField(required=False, allow_null=True, help_text="dose")
    context = serializers.ChoiceField(GlucoseContext.choices, required=False)
    part_of = serializers.UUIDField(
        required=False, help_text="A pulse stored from a blood pressure: that reading's id."
    )

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_measured_at(self, reading: Reading) -> str:
        offset = dt_timezone(timedelta(minutes=reading.utc_offset_minutes))
        return reading.measured_at.astimezone(offset).isoformat()

    def to_representation(self, reading: Reading) -> dict:
        data = super().to_representation(reading)
        shown = present(reading)
        return {name: value for name, value in data.items() if name in shown}


READING_COMMON = {"id", "type", "measured_at", "received_at", "source", "entry", "device"}
READING_SHAPES = {
    Metric.BLOOD_PRESSURE: {"systolic", "diastolic", "unit"},
    Metric.DOSE: {"medication", "status", "scheduled_for"},
}
SCALAR_SHAPE = {"value", "unit", "sent"}


def present(reading: Reading) -> set[str]:
    """The fields a reading's JSON has: the common ones, its metric's, and a glucose
    context or the blood pressure a pulse came from where there is one."""
    shown = READING_COMMON | READING_SHAPES.get(reading.metric, SCALAR_SHAPE)
    if reading.context:
        shown.add("context")
    if reading.part_of:
        shown.add("part_of")
    if reading.trend:
        shown.add("trend")
    return shown


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


# --- Schedules and medication plans -------------------------------------------------------

MEASURED_METRICS = [(value, label) for value, label in Metric.choices if value != Metric.DOSE]
TIMES_HELP = 'Local clock times "HH:MM" (24-hour) in the patient\'s time zone, each once.'
DAYS_HELP = "Weekdays in the patient's time zone, 0 = Monday … 6 = Sunday; [] = every day."
WINDOW_HELP = (
    "Minutes after each time during which a reading (or dose) still counts; then the slot is "
    "missed. A reading up to VIGIL_SLOT_LEAD_MINUTES (default 60) early counts too."
)


def _django_errors(clean, value):
    try:
        return clean(value)
    except DjangoValidationError as error:
        raise serializers.ValidationError(error.messages) from error


class ClockTimesField(serializers.ListField):
    child = serializers.RegexField(
        r"^([01]\d|2[0-3]):[0-5]\d$",
        error_messages={"invalid": 'Not a 24-hour local time "HH:MM", e.g. "07:00".'},
    )

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", TIMES_HELP)
        super().__init__(min_length=1, max_length=24, **kwargs)

    def to_internal_value(self, data):
        return _django_errors(clean_clock_times, super().to_internal_value(data))


class DaysOfWeekField(serializers.ListField):
    child = serializers.IntegerField(min_value=0, max_value=6)

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", DAYS_HELP)
        super().__init__(max_length=7, **kwargs)

    def to_internal_value(self, data):
        return _django_errors(clean_days_of_week, super().to_internal_value(data))


def window_minutes_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=MAX_WINDOW_MINUTES, help_text=WINDOW_HELP, **kwargs
    )


class PatientScheduleSerializer(serializers.Serializer):
    """An active measurement schedule as the patient's app shows it."""

    id = serializers.IntegerField()
    metric = serializers.ChoiceField(MEASURED_METRICS)
    times = ClockTimesField()
    days_of_week = DaysOfWeekField()
    window_minutes = window_minutes_field()


class PatientMedicationSerializer(serializers.Serializer):
    """An active medication plan as the patient's app shows it; `medication` is the id a
    dose reading names."""

    id = serializers.IntegerField()
    medication = serializers.CharField()
    name = serializers.CharField()
    dose_times = ClockTimesField()
    days_of_week = DaysOfWeekField()
    window_minutes = window_minutes_field()
    critical = serializers.BooleanField()


class ActiveOnlyListSerializer(serializers.ListSerializer):
    """The active rows of a relation."""

    def to_representation(self, data):
        # .all() and a filter here, not .filter(): MeApi prefetches the relations.
        return super().to_representation([row for row in data.all() if row.active])


class MeSerializer(serializers.Serializer):
    """What the patient's app needs to show: profile and, as they arrive, plans and targets."""

    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    timezone = serializers.CharField()
    protocols = ProtocolCodesField()
    preferences = PreferencesSerializer(source="*")
    schedules = ActiveOnlyListSerializer(
        child=PatientScheduleSerializer(), source="measurement_schedules"
    )
    medications = ActiveOnlyListSerializer(
        child=PatientMedicationSerializer(), source="medication_plans"
    )
    targets = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_targets(self, patient: Patient) -> list:
        return []  # none yet: targets arrive with the plans that set them


@extend_schema_field(rule_kinds.openapi_parameters_schema())
class RuleParametersField(serializers.JSONField):
    """A rule's parameters: documented by its kind's JSON Schema (monitoring.rules), which
    add_rule/change_rule check them against."""


class RuleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    protocol = serializers.CharField(
        source="protocol.code", allow_null=True, help_text="The protocol it came from."
    )
    kind = serializers.ChoiceField(RuleKind.choices)
    metric = serializers.ChoiceField(Metric.choices)
    severity = serializers.ChoiceField(Severity.choices)
    group = serializers.CharField()
    title = serializers.CharField()
    parameters = RuleParametersField()
    default_parameters = serializers.DictField(allow_null=True)
    reference = serializers.CharField()
    source = serializers.CharField()
    active = serializers.BooleanField()
    version = serializers.IntegerField()
    updated_at = AsWrittenDateTimeField()


class RuleCreateSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=64)
    kind = serializers.ChoiceField(RuleKind.choices)
    metric = serializers.ChoiceField(Metric.choices)
    severity = serializers.ChoiceField(Severity.choices)
    group = serializers.SlugField(max_length=64, required=False)
    title = serializers.CharField(max_length=200)
    parameters = RuleParametersField()
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class RuleChangeSerializer(serializers.Serializer):
    parameters = RuleParametersField(required=False)
    severity = serializers.ChoiceField(Severity.choices, required=False)
    active = serializers.BooleanField(required=False)
    title = serializers.CharField(max_length=200, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text=(
            "The version this change was made on. If the rule has had another change since, "
            "nothing is saved and the answer is 409 with the current version."
        ),
    )

    def validate(self, attrs):
        if not set(attrs) - {"note", "version"}:
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        "Change at least one of parameters, severity, active, title."
                    ]
                }
            )
        return attrs


# --- Nudges and push tokens (the patient app) ---------------------------------------------


class NudgeSerializer(serializers.ModelSerializer):
    purpose = serializers.ChoiceField(NudgePurpose.choices)
    channel = serializers.ChoiceField(
        NudgeChannel.choices, help_text="How it reached the patient (in_app after a fallback)."
    )
    status = serializers.ChoiceField(NudgeStatus.choices)

    class Meta:
        model = Nudge
        fields = [
            "id",
            "purpose",
            "text",
            "channel",
            "status",
            "created_at",
            "sent_at",
            "opened_at",
        ]
        read_only_fields = fields


class PushTokenSerializer(serializers.ModelSerializer):
    token = serializers.CharField(
        max_length=4096, help_text="The app install's FCM registration token."
    )
    platform = serializers.ChoiceField(PushPlatform.choices)

    class Meta:
        model = PushToken
        fields = ["id", "token", "platform", "created_at"]
        read_only_fields = ["id", "created_at"]
        # Registering a token again is not an error: register_push_token keeps one row.
        validators = []


class PushTokenDeleteSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=4096)


# --- Schedules and medication plans (staff) ---------------------------------------------


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    protocol = serializers.CharField(
        source="protocol.code", allow_null=True, help_text="The protocol it came from."
    )
    metric = serializers.ChoiceField(MEASURED_METRICS)
    times = ClockTimesField()
    days_of_week = DaysOfWeekField()
    window_minutes = window_minutes_field()
    active = serializers.BooleanField()
    next_slot_at = AsWrittenDateTimeField(
        allow_null=True, help_text="When the next slot falls due (UTC); null when inactive."
    )
    created_at = AsWrittenDateTimeField()
    updated_at = AsWrittenDateTimeField()


class ImmutableFieldsMixin:
    """PATCH bodies naming a field that identifies the row get a 400 for it, not silence."""

    immutable: tuple[str, ...] = ()

    def validate(self, attrs):
        data = self.initial_data
        errors = {
            name: ["Cannot be changed: add a new one and delete this one."]
            for name in self.immutable
            if name in data
        }
        if errors:
            raise serializers.ValidationError(errors)
        if not attrs:
            changeable = ", ".join(self.fields)
            raise serializers.ValidationError(
                {"non_field_errors": [f"Change at least one of {changeable}."]}
            )
        return attrs


class ScheduleCreateSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=64, help_text="Unique among the patient's schedules.")
    metric = serializers.ChoiceField(
        MEASURED_METRICS,
        error_messages={
            "invalid_choice": '"{input}" is not a measured metric; doses are medication plans.'
        },
    )
    times = ClockTimesField()
    days_of_week = DaysOfWeekField(required=False, default=list)
    window_minutes = window_minutes_field()
    active = serializers.BooleanField(required=False, default=True)


class ScheduleChangeSerializer(ImmutableFieldsMixin, serializers.Serializer):
    immutable = ("key", "metric")

    times = ClockTimesField(required=False)
    days_of_week = DaysOfWeekField(required=False)
    window_minutes = window_minutes_field(required=False)
    active = serializers.BooleanField(required=False)


class MedicationPlanSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    medication = serializers.CharField(help_text="The id dose readings name.")
    name = serializers.CharField()
    dose_times = ClockTimesField()
    days_of_week = DaysOfWeekField()
    window_minutes = window_minutes_field()
    critical = serializers.BooleanField(
        help_text="Missed doses escalate to the care team (anticoagulant, insulin …)."
    )
    active = serializers.BooleanField()
    next_slot_at = AsWrittenDateTimeField(allow_null=True)
    created_at = AsWrittenDateTimeField()
    updated_at = AsWrittenDateTimeField()


class MedicationPlanCreateSerializer(serializers.Serializer):
    medication = serializers.CharField(
        max_length=64, help_text="The id the app's dose readings will name; one plan each."
    )
    name = serializers.CharField(max_length=200)
    dose_times = ClockTimesField()
    days_of_week = DaysOfWeekField(required=False, default=list)
    window_minutes = window_minutes_field()
    critical = serializers.BooleanField(required=False, default=False)
    active = serializers.BooleanField(required=False, default=True)


class MedicationPlanChangeSerializer(ImmutableFieldsMixin, serializers.Serializer):
    immutable = ("medication",)

    name = serializers.CharField(max_length=200, required=False)
    dose_times = ClockTimesField(required=False)
    days_of_week = DaysOfWeekField(required=False)
    window_minutes = window_minutes_field(required=False)
    critical = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)
