"""A minimal, scoped admin: care-team members see their teams' patients only.

The triage workspace (queue, charts, roles, audit) is built on top of this later.
"""

from django.contrib import admin

from monitoring.models import Device, Patient, Reading, Rule, RuleRevision


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
    list_display = [
        "id",
        "patient",
        "metric",
        "value",
        "systolic",
        "diastolic",
        "unit",
        "measured_at",
        "evaluated_at",
    ]
    list_filter = ["metric", "source"]
    date_hierarchy = "measured_at"
    raw_id_fields = ["patient", "device"]

    # Readings are immutable clinical records.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RuleRevisionInline(admin.TabularInline):
    model = RuleRevision
    extra = 0
    can_delete = False
    readonly_fields = [
        "version",
        "parameters",
        "severity",
        "active",
        "changed_by",
        "changed_at",
        "note",
    ]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Rule)
class RuleAdmin(ScopedToPatientsAdmin):
    """Read-only here: tailoring goes through change_rule (the API) so every change is a
    new version; the patient page of the workspace will edit through it too."""

    list_display = ["id", "patient", "key", "kind", "metric", "severity", "active", "version"]
    list_filter = ["kind", "metric", "severity", "active"]
    search_fields = ["key", "patient__external_id"]
    readonly_fields = [f.name for f in Rule._meta.fields]
    inlines = [RuleRevisionInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
