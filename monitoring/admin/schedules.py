"""Measurement schedules, medication plans and their slots."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.admin_scoping import TeamScopedAdmin
from config.admin_lists import BoundedChangeListMixin
from monitoring import schedules
from monitoring.models import (
    MeasurementSchedule,
    MedicationPlan,
    Metric,
    Slot,
)

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).


# --- Schedules and medication plans -------------------------------------------------------


class ScheduleTimingForm(forms.ModelForm):
    """The same checks as the staff API: local times "HH:MM", weekdays 0–6, a window."""

    def clean_days_of_week(self):
        return schedules.clean_days_of_week(self.cleaned_data.get("days_of_week"))

    def clean_window_minutes(self):
        return schedules.clean_window_minutes(self.cleaned_data.get("window_minutes"))


class MeasurementScheduleForm(ScheduleTimingForm):
    class Meta:
        model = MeasurementSchedule
        fields = ["patient", "key", "metric", "times", "days_of_week", "window_minutes", "active"]
        help_texts = {
            "times": 'Local times in the patient\'s time zone, e.g. ["07:00", "19:00"].',
            "days_of_week": "0 = Monday … 6 = Sunday, e.g. [0, 3]; [] = every day.",
        }

    def clean_times(self):
        return schedules.clean_clock_times(self.cleaned_data.get("times"))

    def clean_metric(self):
        metric = self.cleaned_data.get("metric")
        if metric == Metric.DOSE:
            raise ValidationError("Doses are scheduled as medication plans.")
        return metric


class MedicationPlanForm(ScheduleTimingForm):
    class Meta:
        model = MedicationPlan
        fields = [
            "patient",
            "medication",
            "name",
            "dose_times",
            "days_of_week",
            "window_minutes",
            "critical",
            "active",
        ]
        help_texts = {
            "medication": "The id the patient's app names in dose readings.",
            "dose_times": 'Local times in the patient\'s time zone, e.g. ["08:00"].',
            "days_of_week": "0 = Monday … 6 = Sunday, e.g. [0, 3]; [] = every day.",
        }

    def clean_dose_times(self):
        return schedules.clean_clock_times(self.cleaned_data.get("dose_times"))


class ScheduleAdmin(TeamScopedAdmin):
    """Adds and changes go through monitoring.schedules, which sets `next_slot_at` (the
    sweep's deadline) from the times in the patient's time zone. The patient choices are the
    user's teams' patients (TeamScopedAdmin)."""

    raw_id_fields = ["patient"]
    readonly_fields = ["next_slot_at", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # The key and the medication identify the row (dose readings name the medication).
        identity = ["patient", "key", "metric", "medication"] if obj else []
        fields = {f.name for f in self.model._meta.fields}
        return [*self.readonly_fields, *(name for name in identity if name in fields)]

    def save_model(self, request, obj, form, change):
        if not change:
            schedules.reschedule(obj, zone=obj.patient.zone, now=timezone.now())
            obj.save()
            return
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        obj.next_slot_at = schedules.change_schedule(owner=obj, **changes).next_slot_at


@admin.register(MeasurementSchedule)
class MeasurementScheduleAdmin(ScheduleAdmin):
    form = MeasurementScheduleForm
    list_display = ["id", "patient", "key", "metric", "times", "days_of_week", "active"]
    list_filter = ["metric", "active", "protocol"]
    search_fields = ["key", "patient__external_id"]


@admin.register(MedicationPlan)
class MedicationPlanAdmin(ScheduleAdmin):
    form = MedicationPlanForm
    list_display = ["id", "patient", "medication", "name", "dose_times", "critical", "active"]
    list_filter = ["critical", "active"]
    search_fields = ["medication", "name", "patient__external_id"]


@admin.register(Slot)
class SlotAdmin(BoundedChangeListMixin, TeamScopedAdmin):
    """Read-only: slots are written by the reminder sweep and by readings."""

    list_display = [
        "id",
        "patient",
        "schedule",
        "plan",
        "due_at",
        "closes_at",
        "status",
        "reminded_at",
        "miss_handled_at",
    ]
    list_filter = ["status"]
    # A growing table (config/admin_lists.py): newest first by the primary key, no
    # count, no date hierarchy, no sorting by a column no index serves.
    ordering = ["-id"]
    sortable_by = ()
    search_fields = ["patient__external_id"]
    list_select_related = ["patient", "schedule", "plan"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
