"""When a patient is asked to measure or take a dose, in their own local time.

A schedule (measurement) or plan (medication) lists local clock times and weekdays; each
occurrence is a Slot: one row per schedule and due instant, so a slot exists once however
many sweeps run. `next_slot_at` is the deadline column the reminder sweep selects on.
"""

from django.db import models
from django.db.models import Q

from monitoring.models.patients import Patient, Protocol
from monitoring.models.readings import Metric, Reading


class MeasurementSchedule(models.Model):
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="measurement_schedules"
    )
    key = models.CharField(max_length=64, help_text="Unique among the patient's schedules.")
    protocol = models.ForeignKey(
        Protocol, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metric = models.CharField(max_length=16, choices=Metric.choices)
    # Local clock times, "HH:MM", in the patient's time zone.
    times = models.JSONField()
    # Python weekdays, 0 = Monday … 6 = Sunday; empty means every day.
    days_of_week = models.JSONField(default=list, blank=True)
    # A measurement counts for a slot from its time until this many minutes after it.
    window_minutes = models.PositiveSmallIntegerField()
    active = models.BooleanField(default=True)
    # The next moment the sweep has something to do for this schedule (a reminder or a miss).
    next_slot_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "key"], name="measurement_schedule_key_unique_per_patient"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_slot_at"],
                condition=Q(active=True, next_slot_at__isnull=False),
                name="measurement_schedule_due",
            )
        ]
        ordering = ["patient_id", "metric", "key"]

    def __str__(self) -> str:
        return f"measurement schedule {self.pk}"


class MedicationPlan(models.Model):
    """One medication the patient takes on a schedule; `medication` is the id dose readings
    name. A critical medication (anticoagulant, insulin …) escalates when doses are missed."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="medication_plans")
    medication = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    dose_times = models.JSONField()
    days_of_week = models.JSONField(default=list, blank=True)
    window_minutes = models.PositiveSmallIntegerField()
    critical = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    next_slot_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "medication"], name="medication_plan_unique_per_patient"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_slot_at"],
                condition=Q(active=True, next_slot_at__isnull=False),
                name="medication_plan_due",
            )
        ]
        ordering = ["patient_id", "medication"]

    def __str__(self) -> str:
        return f"medication plan {self.pk}"


class SlotStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    MISSED = "missed", "Missed"


class Slot(models.Model):
    """One occurrence of a schedule or plan: due at a local time, closed after its window.

    Unique per (schedule, due_at) and (plan, due_at): the database makes each slot exist
    once. `reminded_at` / `miss_handled_at` are claimed by conditional UPDATE, so each
    reminder and each miss is acted on once even with two sweeps.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="slots")
    schedule = models.ForeignKey(
        MeasurementSchedule, null=True, blank=True, on_delete=models.CASCADE, related_name="slots"
    )
    plan = models.ForeignKey(
        MedicationPlan, null=True, blank=True, on_delete=models.CASCADE, related_name="slots"
    )
    due_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=SlotStatus.choices, default=SlotStatus.OPEN)
    # No database constraint: on PostgreSQL the readings table is partitioned by time and
    # its primary key is (id, measured_at), which `id` alone cannot reference. Django still
    # sets it NULL when a reading is deleted through the ORM (a patient's erasure), and the
    # retention job clears it before it drops readings in bulk (monitoring.retention).
    fulfilled_by = models.ForeignKey(
        Reading,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    reminded_at = models.DateTimeField(null=True, blank=True)
    miss_handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["schedule", "due_at"], name="slot_once_per_schedule"),
            models.UniqueConstraint(fields=["plan", "due_at"], name="slot_once_per_plan"),
            models.CheckConstraint(
                condition=Q(schedule__isnull=False, plan__isnull=True)
                | Q(schedule__isnull=True, plan__isnull=False),
                name="slot_belongs_to_a_schedule_or_a_plan",
            ),
        ]
        indexes = [
            models.Index(fields=["patient", "due_at"], name="slot_patient_due"),
            # Open slots whose window has closed: the miss sweep.
            models.Index(
                fields=["closes_at"], condition=Q(status="open"), name="slot_open_closing"
            ),
        ]
        ordering = ["due_at", "id"]

    def __str__(self) -> str:
        return f"slot {self.pk}"
