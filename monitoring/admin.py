"""A minimal, scoped admin: care-team members see their teams' patients only.

The triage workspace (queue, charts, roles, audit) is built on top of this later.
"""

from django.contrib import admin

from monitoring.models import Device, Patient, Reading


class ScopedToPatientsAdmin(admin.ModelAdmin):
    patient_path = "patient"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            **{f"{self.patient_path}__care_team__memberships__user": request.user}
        )


@admin.register(Patient)
class PatientAdmin(ScopedToPatientsAdmin):
    list_display = ["id", "external_id", "name", "care_team", "timezone", "created_at"]
    list_filter = ["care_team", "protocols"]
    search_fields = ["external_id", "name"]
    filter_horizontal = ["protocols"]

    def get_queryset(self, request):
        return Patient.objects.visible_to(request.user).select_related("care_team")


@admin.register(Device)
class DeviceAdmin(ScopedToPatientsAdmin):
    list_display = ["id", "patient", "kind", "model", "serial", "revoked_at", "last_seen_at"]
    list_filter = ["kind"]
    readonly_fields = ["key_hash", "created_at", "last_seen_at"]
    raw_id_fields = ["patient"]


@admin.register(Reading)
class ReadingAdmin(ScopedToPatientsAdmin):
    list_display = ["id", "patient", "metric", "value", "systolic", "diastolic", "unit",
                    "measured_at", "evaluated_at"]  # fmt: skip
    list_filter = ["metric", "source"]
    date_hierarchy = "measured_at"
    raw_id_fields = ["patient", "device"]

    # Readings are immutable clinical records.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
