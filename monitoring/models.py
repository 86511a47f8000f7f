import hashlib
import secrets
import zoneinfo
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone name")


def hash_secret(secret: str) -> str:
    """Tokens are 256-bit random strings, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> tuple[str, str]:
    """A new credential as (shown-once plaintext, stored hash)."""
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    return plaintext, hash_secret(plaintext)


class ProtocolCode(models.TextChoices):
    HEART_FAILURE = "heart_failure", "Heart failure"
    HYPERTENSION = "hypertension", "Hypertension"
    DIABETES = "diabetes", "Diabetes"
    ANTICOAGULATION = "anticoagulation", "Anticoagulation (warfarin)"
    COPD = "copd", "COPD"


class ProtocolQuerySet(models.QuerySet):
    def for_codes(self, codes: list[str]) -> "ProtocolQuerySet":
        """The protocols with these codes, creating any row that is missing (a database
        flushed after its data migration ran, as test databases are)."""
        self.bulk_create(
            [Protocol(code=code, name=ProtocolCode(code).label) for code in codes],
            ignore_conflicts=True,
        )
        return self.filter(code__in=codes)


class Protocol(models.Model):
    """A condition's default monitoring programme; its default rules are in protocols.yaml."""

    code = models.CharField(max_length=32, choices=ProtocolCode.choices, unique=True)
    name = models.CharField(max_length=120)

    objects = ProtocolQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class PatientQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PatientQuerySet":
        """Patients of the staff user's care teams; every patient for a superuser."""
        if user.is_superuser:
            return self
        return self.filter(care_team__memberships__user=user)


class GlucoseUnit(models.TextChoices):
    MG_DL = "mg/dL", "mg/dL"
    MMOL_L = "mmol/L", "mmol/L"


class WeightUnit(models.TextChoices):
    KG = "kg", "kg"
    LB = "lb", "lb"


class NudgeChannel(models.TextChoices):
    IN_APP = "in_app", "In the app"
    PUSH = "push", "Push notification"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class Patient(models.Model):
    external_id = models.CharField(
        "MRN / external id", max_length=64, unique=True, help_text="The clinic's own identifier."
    )
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    care_team = models.ForeignKey(
        "alerts.CareTeam", on_delete=models.PROTECT, related_name="patients"
    )
    protocols = models.ManyToManyField(Protocol, blank=True, related_name="patients")
    # Preferences: how the app shows values and how nudges reach the patient.
    glucose_unit = models.CharField(
        max_length=8, choices=GlucoseUnit.choices, default=GlucoseUnit.MG_DL
    )
    weight_unit = models.CharField(max_length=4, choices=WeightUnit.choices, default=WeightUnit.KG)
    language = models.CharField(max_length=16, default="en")
    nudge_channel = models.CharField(
        max_length=8, choices=NudgeChannel.choices, default=NudgeChannel.IN_APP
    )
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    daily_nudge_cap = models.PositiveSmallIntegerField(default=3)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        # No PHI: the id is enough to find the row.
        return f"patient {self.pk}"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class DeviceKind(models.TextChoices):
    GLUCOSE_METER = "glucose_meter", "Glucose meter"
    CGM = "cgm", "Continuous glucose monitor"
    BP_MONITOR = "bp_monitor", "Blood pressure monitor"
    SCALE = "scale", "Scale"
    INR_METER = "inr_meter", "INR meter"
    PULSE_OXIMETER = "pulse_oximeter", "Pulse oximeter"
    THERMOMETER = "thermometer", "Thermometer"
    OTHER = "other", "Other"


class Device(models.Model):
    """A patient's measuring device; its key may post readings for that patient only."""

    KEY_PREFIX = "vgd"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="devices")
    kind = models.CharField(max_length=20, choices=DeviceKind.choices)
    model = models.CharField(max_length=120, blank=True)
    serial = models.CharField(max_length=120)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "serial"],
                condition=Q(revoked_at__isnull=True),
                name="device_serial_unique_per_patient_while_active",
            )
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"device {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PatientAppToken(models.Model):
    """A patient app's credential: expires, can be revoked, stored only as a hash."""

    PREFIX = "vgp"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="app_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"app token {self.pk}"

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class StaffToken(models.Model):
    """A care-team member's API credential from POST /api/v1/auth/token."""

    PREFIX = "vgs"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"staff token {self.pk}"

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class Metric(models.TextChoices):
    GLUCOSE = "glucose", "Blood glucose"
    BLOOD_PRESSURE = "blood_pressure", "Blood pressure"
    WEIGHT = "weight", "Body weight"
    INR = "inr", "INR"
    HEART_RATE = "heart_rate", "Heart rate"
    SPO2 = "spo2", "SpO2"
    TEMPERATURE = "temperature", "Body temperature"
    DOSE = "dose", "Medication dose"


class GlucoseContext(models.TextChoices):
    FASTING = "fasting", "Fasting"
    BEFORE_MEAL = "before_meal", "Before a meal"
    AFTER_MEAL = "after_meal", "After a meal"
    BEDTIME = "bedtime", "Bedtime"
    RANDOM = "random", "Random"


class DoseStatus(models.TextChoices):
    TAKEN = "taken", "Taken"
    SKIPPED = "skipped", "Skipped"


class ReadingSource(models.TextChoices):
    APP = "app", "Patient app"
    DEVICE = "device", "Device key"


class Reading(models.Model):
    """One measurement or dose event. Immutable once stored.

    One table for every metric. `value` is in the metric's canonical unit (blood pressure
    uses `systolic` / `diastolic`, both mm[Hg]); `sent_value` / `sent_unit` keep what the
    client sent. `fingerprint` identifies the content so a re-sent id with other content is
    reported as a conflict instead of silently overwriting or duplicating.
    """

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="readings", db_index=False
    )
    client_id = models.UUIDField()
    metric = models.CharField(max_length=16, choices=Metric.choices)
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    systolic = models.FloatField(null=True, blank=True)
    diastolic = models.FloatField(null=True, blank=True)
    sent_value = models.FloatField(null=True, blank=True)
    sent_unit = models.CharField(max_length=16, blank=True)
    context = models.CharField(max_length=16, choices=GlucoseContext.choices, blank=True)
    medication = models.CharField(max_length=64, blank=True)
    dose_status = models.CharField(max_length=8, choices=DoseStatus.choices, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    measured_at = models.DateTimeField()
    # The UTC offset the client stated, so the local clock time it saw can be shown.
    utc_offset_minutes = models.SmallIntegerField(default=0)
    received_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=ReadingSource.choices)
    device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="readings"
    )
    device_serial = models.CharField(max_length=120, blank=True)
    # A heart rate taken with a blood pressure points at that reading's client id.
    part_of = models.UUIDField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The idempotency key: one reading per client id per patient, whatever races.
            models.UniqueConstraint(
                fields=["patient", "client_id"], name="reading_client_id_unique_per_patient"
            ),
            models.CheckConstraint(
                condition=~Q(metric="blood_pressure")
                | Q(systolic__isnull=False, diastolic__isnull=False),
                name="reading_blood_pressure_has_components",
            ),
        ]
        indexes = [
            # "This patient's readings of this metric in this time window" (rules, charts, API).
            models.Index(
                fields=["patient", "metric", "-measured_at"], name="reading_patient_metric_time"
            ),
            # The evaluation sweep reads only the (few) rows still waiting.
            models.Index(
                fields=["received_at"],
                condition=Q(evaluated_at__isnull=True),
                name="reading_unevaluated",
            ),
        ]
        ordering = ["-measured_at", "-id"]

    def __str__(self) -> str:
        return f"reading {self.pk}"

    @property
    def is_evaluated(self) -> bool:
        return self.evaluated_at is not None


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"

    @classmethod
    def rank(cls, value: str) -> int:
        return list(cls.values).index(value)


class RuleKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold"
    SUSTAINED = "sustained", "Sustained"
    COUNT_IN_WINDOW = "count_in_window", "Count in window"
    RATE_OF_CHANGE = "rate_of_change", "Rate of change"
    AVERAGE = "average", "Average over a window"
    MISSING_DATA = "missing_data", "Missing data"
    ADHERENCE = "adherence", "Dose adherence"
    CGM_SUMMARY = "cgm_summary", "CGM summary metric"
    INR_TTR = "inr_ttr", "INR time in therapeutic range"


class Rule(models.Model):
    """One of a patient's own rules: a copy of a protocol default, or added by a clinician.

    `parameters` are in the metric's canonical unit; `default_parameters` keep the protocol
    value it started from, and `reference` / `source` where that value came from. Every
    change bumps `version` and writes a RuleRevision; alerts record the version that fired.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="rules")
    key = models.CharField(max_length=64, help_text="Unique among the patient's rules.")
    protocol = models.ForeignKey(
        Protocol, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    metric = models.CharField(max_length=16, choices=Metric.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    group = models.CharField(
        max_length=64, help_text="Rules of one group feed one alert (the highest severity wins)."
    )
    title = models.CharField(max_length=200)
    parameters = models.JSONField()
    default_parameters = models.JSONField(null=True, blank=True)
    reference = models.CharField(max_length=200, blank=True)
    source = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    # Scheduled kinds (missing data, summaries): when the sweep next looks at this rule.
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "key"], name="rule_key_unique_per_patient")
        ]
        indexes = [
            # The scheduled-rules sweep: active rules whose check is due.
            models.Index(
                fields=["next_check_at"],
                condition=Q(active=True, next_check_at__isnull=False),
                name="rule_check_due",
            )
        ]
        ordering = ["patient_id", "metric", "key"]

    def __str__(self) -> str:
        return f"rule {self.pk} ({self.key} v{self.version})"


class RuleRevision(models.Model):
    """A rule as it was at one version: who set what, when, and why."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    parameters = models.JSONField()
    severity = models.CharField(max_length=8, choices=Severity.choices)
    active = models.BooleanField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "version"], name="rule_revision_unique")
        ]
        ordering = ["rule_id", "version"]

    def __str__(self) -> str:
        return f"rule {self.rule_id} v{self.version}"
