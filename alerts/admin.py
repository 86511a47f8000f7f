"""Admin for care teams and alerts, scoped to the user's teams (superusers see all).

Alert changes in the admin go through alerts/lifecycle.py; the fuller triage workspace
(queue, charts, roles, audit) builds on this.
"""

from django.contrib import admin, messages

from alerts.lifecycle import InvalidTransition, acknowledge_alert, resolve_alert
from alerts.models import (
    Alert,
    AlertEvent,
    CareTeam,
    CareTeamMembership,
    ChannelFault,
    Notification,
    NotificationAttempt,
    Silence,
)


class MembershipInline(admin.TabularInline):
    model = CareTeamMembership
    extra = 1
    raw_id_fields = ["user"]


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "critical_escalation_minutes",
        "warning_escalation_minutes",
        "repeat_minutes",
        "max_repeats",
        "created_at",
    ]
    search_fields = ["name"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return CareTeam.objects.visible_to(request.user)


class TeamScopedAdmin(admin.ModelAdmin):
    team_path = "patient__care_team"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.team_path}__memberships__user": request.user})


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "actor", "at", "note", "data"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(TeamScopedAdmin):
    list_display = [
        "id",
        "severity",
        "status",
        "title",
        "patient",
        "occurrences",
        "last_triggered_at",
        "condition_cleared_at",
        "escalation_level",
        "assignee",
    ]
    list_filter = ["status", "severity", "metric"]
    search_fields = ["patient__external_id", "patient__name", "title"]
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [AlertEventInline]
    actions = ["acknowledge", "resolve"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Acknowledge selected alerts")
    def acknowledge(self, request, queryset):
        for alert in queryset:
            try:
                acknowledge_alert(alert=alert, user=request.user)
            except InvalidTransition as error:
                self.message_user(request, f"Alert {alert.pk}: {error}", messages.WARNING)

    @admin.action(description="Resolve selected alerts")
    def resolve(self, request, queryset):
        for alert in queryset:
            try:
                resolve_alert(alert=alert, user=request.user)
            except InvalidTransition as error:
                self.message_user(request, f"Alert {alert.pk}: {error}", messages.WARNING)


@admin.register(Silence)
class SilenceAdmin(TeamScopedAdmin):
    list_display = ["id", "patient", "rule", "starts_at", "ends_at", "author", "reason"]
    raw_id_fields = ["patient", "rule"]
    readonly_fields = ["author"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)


class AttemptInline(admin.TabularInline):
    model = NotificationAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "outcome", "status_code", "error", "duration_ms"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(TeamScopedAdmin):
    team_path = "alert__patient__care_team"
    list_display = ["id", "alert", "channel", "recipient", "status", "attempts", "sent_at"]
    list_filter = ["channel", "status"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    inlines = [AttemptInline]

    def has_add_permission(self, request):
        return False


@admin.register(ChannelFault)
class ChannelFaultAdmin(admin.ModelAdmin):
    list_display = [
        "channel",
        "target",
        "failures",
        "first_failed_at",
        "last_failed_at",
        "cleared_at",
    ]
    list_filter = ["channel"]
    readonly_fields = [
        "channel",
        "target",
        "failures",
        "first_failed_at",
        "last_failed_at",
        "last_error",
    ]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser
