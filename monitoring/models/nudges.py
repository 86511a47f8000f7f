"""Nudges to the patient: message variants, what was sent, and what each patient responds to.

A NudgeVariant is a message (kind, language, text) stored as data. Each nudge records the
decision that chose its variant (candidates, sampled values, probability of the choice) and,
once its window has passed, whether the patient acted. VariantPosterior keeps each patient's
success/failure counts per variant; the policy adds a population prior to them.
"""

from django.db import models
from django.db.models import Q

from delivery.models import Attempt
from monitoring.models.patients import NudgeChannel, Patient
from monitoring.models.schedules import Slot


class NudgePurpose(models.TextChoices):
    MEASUREMENT_DUE = "measurement_due", "Measurement due"
    MEASUREMENT_MISSED = "measurement_missed", "Measurement missed"
    DOSE_DUE = "dose_due", "Dose due"
    DOSE_MISSED = "dose_missed", "Dose missed"
    STREAK = "streak", "Streak"
    # The patient's current device period may fall short of the days with data it needs
    # (program.outreach): an encouragement to send a reading today.
    KEEP_SENDING = "keep_sending", "Keep sending (days with data at risk)"


class VariantKind(models.TextChoices):
    PLAIN = "plain", "Plain reminder"
    BENEFIT = "benefit", "Benefit framing"
    CARE_TEAM = "care_team", "Care-team framing"
    STREAK = "streak", "Streak encouragement"
    SUPPORTIVE = "supportive", "Supportive after a miss"


class NudgeVariant(models.Model):
    key = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=12, choices=VariantKind.choices)
    # The purposes this message can serve (a supportive message follows a miss, …).
    purposes = models.JSONField()
    language = models.CharField(max_length=16, default="en")
    # Placeholders: {what} (e.g. "your weight"), {time} (local), {streak} (days); for
    # keep_sending {days} (with data so far), {needed} (in the period), {left} (days left).
    text = models.TextField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class NudgeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # The reminder's measurement or dose was logged before the nudge went out.
    CANCELLED = "cancelled", "Cancelled (already done)"


class Nudge(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="nudges")
    slot = models.ForeignKey(
        Slot, null=True, blank=True, on_delete=models.SET_NULL, related_name="nudges"
    )
    purpose = models.CharField(max_length=20, choices=NudgePurpose.choices)
    variant = models.ForeignKey(
        NudgeVariant, null=True, blank=True, on_delete=models.SET_NULL, related_name="nudges"
    )
    channel = models.CharField(max_length=8, choices=NudgeChannel.choices)
    text = models.TextField()
    status = models.CharField(
        max_length=10, choices=NudgeStatus.choices, default=NudgeStatus.PENDING
    )
    # The policy's decision: candidates, sampled values, chosen variant, its probability.
    decision = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    # The patient's local day a once-a-day nudge (keep_sending) is for; the constraint below
    # holds it to one per patient, purpose and day, whatever retries or sweeps do.
    local_day = models.DateField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Delivery's lease (delivery/outbox.py): a worker sending the nudge, or one waiting for
    # its retry, holds the row until then, so a redelivered task does not send.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Outcome: did the patient act (log the reading or dose) before `outcome_due_at`?
    outcome_due_at = models.DateTimeField(null=True, blank=True)
    acted = models.BooleanField(null=True, blank=True)
    acted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Each slot gets each kind of nudge once, whatever retries or sweeps do.
            models.UniqueConstraint(
                fields=["slot", "purpose"],
                condition=Q(slot__isnull=False),
                name="nudge_once_per_slot_and_purpose",
            ),
            # ... and each once-a-day purpose once per patient and local day. Its index also
            # serves "was this patient nudged today" (program.outreach.keep_sending_nudges_on).
            models.UniqueConstraint(
                fields=["patient", "purpose", "local_day"],
                condition=Q(local_day__isnull=False),
                name="nudge_once_per_patient_day_and_purpose",
            ),
        ]
        indexes = [
            models.Index(fields=["patient", "-created_at"], name="nudge_patient_recent"),
            # Outcomes still to settle once their window closes.
            models.Index(
                fields=["outcome_due_at"],
                condition=Q(acted__isnull=True, outcome_due_at__isnull=False),
                name="nudge_outcome_due",
            ),
            # The outbox sweep's query (delivery.outbox.enqueue_due): pending, oldest first.
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="nudge_pending"
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"nudge {self.pk}"


class NudgeAttempt(Attempt):
    """One try at delivering a nudge (the fields: delivery.models.Attempt)."""

    nudge = models.ForeignKey(Nudge, on_delete=models.CASCADE, related_name="attempt_log")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["nudge", "number"], name="nudge_attempt_unique")
        ]
        ordering = ["nudge_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of nudge {self.nudge_id}"


class VariantPosterior(models.Model):
    """One patient's record with one variant: how often they acted after it, or did not."""

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="variant_posteriors"
    )
    variant = models.ForeignKey(NudgeVariant, on_delete=models.CASCADE, related_name="+")
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "variant"], name="variant_posterior_unique")
        ]

    def __str__(self) -> str:
        return f"posterior {self.pk}"


class PushPlatform(models.TextChoices):
    ANDROID = "android", "Android"
    IOS = "ios", "iOS"
    WEB = "web", "Web"


class PushToken(models.Model):
    """An FCM registration token of one of the patient's app installs."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="push_tokens")
    token = models.CharField(max_length=4096)
    platform = models.CharField(max_length=8, choices=PushPlatform.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    # FCM answers UNREGISTERED for a token that is gone: it is retired, not retried.
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "token"], name="push_token_unique_per_patient"
            )
        ]

    def __str__(self) -> str:
        return f"push token {self.pk}"
