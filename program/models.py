"""The remote-monitoring program's records: episodes, care time, reviews, notes, the ledger.

Each row's own behaviour lives here; what spans rows (the ledger's rules, the panel, the
timer's one-per-user claim) lives in the program's modules (program/__init__.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class ConsentMethod(models.TextChoices):
    VERBAL = "verbal", "Verbal"
    WRITTEN = "written", "Written"
    ELECTRONIC = "electronic", "Electronic"


class EpisodeQuerySet(models.QuerySet):
    def active_on(self, day) -> EpisodeQuerySet:
        """Episodes running on a calendar day (start and end days included)."""
        return self.filter(Q(end__isnull=True) | Q(end__gte=day), start__lte=day)


class Episode(models.Model):
    """One patient's remote-monitoring episode of care: consent, the days it runs, who bills.

    The device periods of the ledger count 30-day periods from `start`; `end` (inclusive)
    closes the running one early. A patient has at most one open episode (no end), held by
    the database; episodes of one patient do not overlap (program.episodes checks it under
    the patient's lock).
    """

    patient = models.ForeignKey(
        "monitoring.Patient", on_delete=models.CASCADE, related_name="rpm_episodes"
    )
    start = models.DateField()
    end = models.DateField(null=True, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_method = models.CharField(max_length=12, choices=ConsentMethod.choices, blank=True)
    billing_practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # ICD-10-CM codes of the conditions monitored, as given ("I10", "E11.9").
    conditions = models.JSONField(default=list, blank=True)
    devices = models.ManyToManyField("monitoring.Device", blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = EpisodeQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient"], condition=Q(end__isnull=True), name="episode_one_open"
            ),
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=F("start")), name="episode_ends_after"
            ),
        ]
        indexes = [models.Index(fields=["patient", "-start"], name="episode_patient_start")]
        ordering = ["patient", "-start"]

    def __str__(self) -> str:
        return f"episode {self.pk}"

    @property
    def has_consent(self) -> bool:
        return self.consent_at is not None and bool(self.consent_method)


class Activity(models.TextChoices):
    DATA_REVIEW = "data_review", "Data review"
    PHONE_CALL = "phone_call", "Phone call"
    VIDEO_CALL = "video_call", "Video call"
    MESSAGE = "message", "Message"
    CARE_PLAN = "care_plan", "Care plan"


class TimeSource(models.TextChoices):
    TIMER = "timer", "Timer"
    MANUAL = "manual", "Entered by hand"


class TimeEntry(models.Model):
    """Time a care-team member spent on one patient's treatment management.

    A timer is an entry with `source: timer` and no `stopped_at` yet (no minutes); each user
    runs at most one, held by the database. A timer left running is capped when stopped or
    swept (`capped` set, for the approver to see). Minutes count toward the ledger once
    approved by the episode's billing practitioner or a physician of the team.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        "monitoring.Patient", on_delete=models.CASCADE, related_name="time_entries"
    )
    alert = models.ForeignKey(
        "alerts.Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=8, choices=TimeSource.choices)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    minutes = models.PositiveIntegerField(null=True, blank=True)
    activity = models.CharField(max_length=12, choices=Activity.choices)
    # A real-time interactive communication with the patient or caregiver (call, video).
    interactive = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    capped = models.BooleanField(default=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(source="timer", stopped_at__isnull=True),
                name="time_entry_one_running_timer",
            ),
            models.CheckConstraint(
                condition=Q(minutes__isnull=True) | Q(minutes__gte=1), name="time_entry_minutes"
            ),
            # Only a running timer has no minutes.
            models.CheckConstraint(
                condition=Q(minutes__isnull=False) | Q(source="timer", stopped_at__isnull=True),
                name="time_entry_minutes_unless_running",
            ),
        ]
        indexes = [
            models.Index(fields=["patient", "started_at"], name="time_entry_patient_start"),
        ]
        ordering = ["-started_at", "-id"]
        verbose_name_plural = "time entries"
        permissions = [("approve_timeentry", "Can approve time entries for billing")]

    def __str__(self) -> str:
        return f"time entry {self.pk}"

    @property
    def is_running(self) -> bool:
        return self.source == TimeSource.TIMER and self.stopped_at is None

    @property
    def is_approved(self) -> bool:
        return self.approved_at is not None


class Review(models.Model):
    """A care-team member's "reviewed" sign-off on a patient's data."""

    patient = models.ForeignKey(
        "monitoring.Patient", on_delete=models.CASCADE, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField()
    note = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "-at"], name="review_patient_at")]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"review {self.pk}"


class NoteKind(models.TextChoices):
    NOTE = "note", "Note"
    CALL = "call", "Call"


class CallOutcome(models.TextChoices):
    REACHED = "reached", "Reached the patient"
    LEFT_MESSAGE = "left_message", "Left a message"
    NO_ANSWER = "no_answer", "No answer"


class PatientNote(models.Model):
    """A note on a patient's record, or a call to or from the patient (the call log)."""

    patient = models.ForeignKey(
        "monitoring.Patient", on_delete=models.CASCADE, related_name="program_notes"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=NoteKind.choices, default=NoteKind.NOTE)
    call_outcome = models.CharField(max_length=16, choices=CallOutcome.choices, blank=True)
    text = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="call") | Q(call_outcome=""), name="note_outcome_only_for_calls"
            ),
        ]
        indexes = [models.Index(fields=["patient", "-at"], name="note_patient_at")]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk}"


class LineStatus(models.TextChoices):
    ACCRUING = "accruing", "Accruing"
    BILLABLE = "billable", "Billable"
    EXPORTED = "exported", "Exported"
    NOT_BILLABLE = "not_billable", "Not billable"


class LedgerLine(models.Model):
    """One code for one period of one episode, with the evidence it rests on.

    Device codes (99445/99454) per 30-day device period, the set-up code (99453) once per
    episode, treatment management (99470, 99457, 99458) per calendar month (program.ledger).
    A line not yet exported is recomputed from the records; an exported line is frozen.
    """

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="ledger_lines")
    patient = models.ForeignKey("monitoring.Patient", on_delete=models.CASCADE, related_name="+")
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    code = models.CharField(max_length=8)
    period_start = models.DateField()
    period_end = models.DateField()
    units = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=12, choices=LineStatus.choices)
    reason = models.CharField(max_length=200, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField()
    exported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["episode", "code", "period_start"], name="ledger_line_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["period_start", "patient"], name="ledger_period_patient"),
        ]
        ordering = ["patient", "period_start", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.period_start}"
