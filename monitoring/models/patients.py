"""Patients, their protocols and the credentials that act for them."""

import hashlib
import secrets
import zoneinfo
from datetime import date, datetime

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
    # Unique within the care team, not across teams: a team enrolling an MRN that another
    # team holds must not learn that it exists (patient_external_id_unique_per_team).
    external_id = models.CharField(
        "MRN / external id", max_length=64, help_text="The clinic's own identifier."
    )
    name = models.CharField(max_length=200)
    # Optional: enrolment (API and admin) does not ask for it; the patient page sets it.
    # The care team's pages show the age from it ("age unknown" without one).
    date_of_birth = models.DateField(null=True, blank=True)
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
    # Where SMS and email nudges go, when the patient chose those channels.
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +4915112345678")
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["care_team", "external_id"],
                name="patient_external_id_unique_per_team",
                violation_error_message="A patient with this MRN is already enrolled in this "
                "care team.",
            )
        ]

    def __str__(self) -> str:
        # No PHI: the id is enough to find the row.
        return f"patient {self.pk}"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def age_on(self, day: date) -> int | None:
        """Completed years on `day` (None without a date of birth); born on 29 February,
        a year is completed on 1 March in a common year."""
        born = self.date_of_birth
        if born is None:
            return None
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


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
    # monitoring.auth.user_fingerprint(user) when issued: a changed password no longer
    # matches and the token is refused (Django's session auth hash, for tokens). Tokens
    # from before the column have "" and are refused: their users log in again.
    user_fingerprint = models.CharField(max_length=64, default="")
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
