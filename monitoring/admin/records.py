"""Devices, readings and rules as records: scoped, and read-only where they are history."""

from django.contrib import admin, messages
from django.template.defaultfilters import pluralize

from alerts.admin_scoping import TeamScopedAdmin
from monitoring.evaluation.failures import retry_failed_evaluations
from monitoring.models import (
    Device,
    Reading,
    Rule,
    RuleRevision,
)

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).


@admin.register(Device)
class DeviceAdmin(TeamScopedAdmin):
    """Read-only: a device is registered (its key shown once) and revoked on its patient's
    page, through monitoring.auth; a device added here would have no key."""

    list_display = ["id", "patient", "kind", "model", "serial", "revoked_at", "last_seen_at"]
    list_filter = ["kind"]
    readonly_fields = ["key_hash", "created_at", "last_seen_at"]
    raw_id_fields = ["patient"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EvaluationFailedFilter(admin.SimpleListFilter):
    title = "evaluation failed"
    parameter_name = "evaluation_failed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        # A failed reading is unevaluated: the partial index reading_unevaluated finds it.
        failed = {"evaluated_at__isnull": True, "evaluation_failed_at__isnull": False}
        if self.value() == "yes":
            return queryset.filter(**failed)
        if self.value() == "no":
            return queryset.exclude(**failed)
        return queryset


@admin.register(Reading)
class ReadingAdmin(TeamScopedAdmin):
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
        "evaluation_failed_at",
    ]
    list_filter = ["metric", "source", EvaluationFailedFilter]
    date_hierarchy = "measured_at"
    raw_id_fields = ["patient", "device"]
    readonly_fields = ["evaluated_at", "evaluation_failed_at", "evaluation_error"]
    actions = ["retry_evaluation"]

    # Readings are immutable clinical records.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # Whoever sees a reading may have its evaluation retried: it changes nothing of the
    # record, and evaluating twice changes nothing more than once.
    @admin.action(description="Retry evaluation of the selected readings", permissions=["view"])
    def retry_evaluation(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        retried = retry_failed_evaluations(reading_ids=selected)
        if retried:
            self.message_user(
                request, f"Evaluation retried: {retried} reading{pluralize(retried)}."
            )
        if len(selected) > retried:
            left = len(selected) - retried
            self.message_user(
                request,
                f"Left alone {left} reading{pluralize(left)} (evaluation had not failed).",
                messages.WARNING,
            )


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
class RuleAdmin(TeamScopedAdmin):
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
