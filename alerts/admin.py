"""Admin for care teams and alerts, scoped to the user's teams (superusers see all).

The Alert admin is the care team's triage workspace: the queue (alerts/triage.py) and the
alert page (alerts/alert_page.py). Alert changes go through alerts/lifecycle.py.
"""

from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import Http404
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from alerts.admin_scoping import TeamScopedAdmin
from alerts.alert_forms import (
    AcknowledgeForm,
    AssignForm,
    NoteForm,
    ResolveForm,
    assignable_users,
)
from alerts.alert_page import alert_page_context
from alerts.lifecycle import (
    InvalidAssignee,
    InvalidTransition,
    acknowledge_alert,
    assign_alert,
    note_alert,
    resolve_alert,
)
from alerts.models import (
    Alert,
    AlertStatus,
    CareTeam,
    CareTeamMembership,
    ChannelFault,
    Notification,
    NotificationAttempt,
    Silence,
)
from alerts.teams import sync_role_groups
from alerts.triage import (
    QUEUE_ORDER,
    AssigneeFilter,
    CareTeamFilter,
    ConditionClearedFilter,
    QueueChangeList,
    QueueColumns,
    StatusFilter,
    all_columns_wanted,
    with_queue_annotations,
)
from config.admin_lists import BoundedChangeListMixin
from monitoring.audit import record
from monitoring.models import AuditAction


class MembershipInline(admin.TabularInline):
    model = CareTeamMembership
    extra = 1
    raw_id_fields = ["user"]


class CareTeamForm(forms.ModelForm):
    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        if url and urlsplit(url).scheme != "https" and not settings.VIGIL_ALLOW_HTTP_WEBHOOKS:
            raise ValidationError(
                "Use an https:// URL: the webhook names the patient, and plain http would "
                "send that in the clear."
            )
        return url


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    form = CareTeamForm
    # A team's webhook is typed without a scheme at times: https, never plain http.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
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

    def save_related(self, request, form, formsets, change):
        # Members added, removed or given another role: their role groups follow.
        team = form.instance
        before = set(CareTeamMembership.objects.filter(team=team).values_list("user", flat=True))
        super().save_related(request, form, formsets, change)
        after = set(CareTeamMembership.objects.filter(team=team).values_list("user", flat=True))
        sync_role_groups(users=get_user_model().objects.filter(pk__in=before | after))


@admin.register(Alert)
class AlertAdmin(QueueColumns, TeamScopedAdmin):
    """The triage queue (the changelist) and the alert page (a read-only change view).

    Nothing here saves an alert: the queue's bulk actions and the alert page's buttons call
    alerts.lifecycle (acknowledge_alert, assign_alert, resolve_alert), which write the
    AlertEvent with who and when. Both need the change permission on alerts.
    """

    # The priority columns fit 1024–1920 px; the rest come with ?columns=all (alerts/triage.py).
    list_display = QueueColumns.PRIORITY_COLUMNS
    list_display_links = ["summary"]
    list_filter = [
        StatusFilter,
        CareTeamFilter,
        "severity",
        "metric",
        AssigneeFilter,
        ConditionClearedFilter,
    ]
    search_fields = ["patient__name", "patient__external_id"]
    search_help_text = "Search by patient name or MRN."
    list_per_page = 50
    # "N of M": the count of every alert ever raised is a query the queue does not need.
    show_full_result_count = False
    actions = ["acknowledge", "assign_to_me", "resolve_with_note"]
    # The alert page renders its own layout; no field of the model form is shown or saved.
    fields = ["title"]
    readonly_fields = ["title"]

    def get_queryset(self, request):
        return with_queue_annotations(super().get_queryset(request))

    def get_list_display(self, request):
        # The on-demand columns after the priority ones: a sort by column (?o=3) names the
        # same column with them or without.
        if all_columns_wanted(request):
            return [*QueueColumns.PRIORITY_COLUMNS, *QueueColumns.MORE_COLUMNS]
        return QueueColumns.PRIORITY_COLUMNS

    def get_changelist(self, request, **kwargs):
        return QueueChangeList

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Triage queue", **(extra_context or {})})

    def get_ordering(self, request):
        return QUEUE_ORDER

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The alert page is a view, never a form that saves the row: changes go through the
        # lifecycle views below, which ask may_triage().
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def may_triage(self, request, alert=None) -> bool:
        """The change permission on alerts (through the role held in the alert's team)."""
        return super().has_change_permission(request, alert)

    # --- Bulk actions ------------------------------------------------------------------------

    @admin.action(description="Acknowledge selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset):
        done = self._each(
            request,
            queryset,
            lambda alert: acknowledge_alert(alert=alert, user=request.user),
            skip=lambda alert: alert.status != AlertStatus.OPEN,
        )
        self._report(request, done, "Acknowledged", "not open")

    @admin.action(description="Assign selected alerts to me", permissions=["change"])
    def assign_to_me(self, request, queryset):
        done = self._each(
            request,
            queryset,
            lambda alert: assign_alert(alert=alert, user=request.user, assignee=request.user),
            skip=lambda alert: alert.is_resolved,
        )
        self._report(request, done, "Assigned to you", "resolved")

    @admin.action(description="Resolve selected alerts with a note…", permissions=["change"])
    def resolve_with_note(self, request, queryset):
        """Django's intermediate-page pattern: the first POST (from the queue) shows the note
        and reason form; its submit posts the same selection back with `apply`, and only then
        resolves (each alert with that reason)."""
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            note, reason = form.cleaned_data["note"], form.cleaned_data["reason"]
            done = self._each(
                request,
                queryset,
                lambda alert: resolve_alert(
                    alert=alert, user=request.user, note=note, reason=reason
                ),
                skip=lambda alert: alert.is_resolved,
            )
            self._report(request, done, "Resolved", "resolved already")
            return None
        return TemplateResponse(
            request,
            "admin/alerts/alert/resolve_with_note.html",
            {
                **self.admin_site.each_context(request),
                "title": "Resolve alerts with a note and a reason",
                "opts": self.opts,
                "alerts": list(queryset),
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def _each(self, request, queryset, change, *, skip) -> tuple[int, list[int], list[int]]:
        """Apply `change` to each selected alert the user triages (their role in its team);
        returns how many changed, the ids skipped, and the ids of teams they do not triage."""
        changed, skipped, denied = 0, [], []
        for alert in queryset.order_by("pk"):
            if not self.may_triage(request, alert):
                denied.append(alert.pk)
            elif skip(alert):
                skipped.append(alert.pk)
            else:
                try:
                    change(alert)
                except InvalidTransition:
                    skipped.append(alert.pk)  # changed by someone else since the page loaded
                else:
                    changed += 1
        return changed, skipped, denied

    def _report(self, request, done, verb: str, reason: str) -> None:
        changed, skipped, denied = done
        if changed:
            self.message_user(request, f"{verb}: {changed} alert{pluralize(changed)}.")
        for ids, why in ((skipped, reason), (denied, "your role in their team does not triage")):
            if ids:
                self.message_user(
                    request,
                    f"Left alone {len(ids)} alert{pluralize(len(ids))} ({why}): "
                    f"{', '.join(str(pk) for pk in ids)}.",
                    messages.WARNING,
                )

    # --- The alert page ---------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        views = [
            ("acknowledge", self.acknowledge_view),
            ("assign-to-me", self.assign_to_me_view),
            ("assign", self.assign_view),
            ("note", self.note_view),
            ("resolve", self.resolve_view),
        ]
        return [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(view),
                name=f"{info[0]}_{info[1]}_{name.replace('-', '_')}",
            )
            for name, view in views
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(alert_page_context(alert=obj, now=timezone.now()))
            context.update(
                title=obj.title,
                subtitle=None,
                may_triage=self.may_triage(request, obj) and not obj.is_resolved,
                acknowledge_form=AcknowledgeForm(),
                resolve_form=ResolveForm(),
            )
            # A note changes no state: it may follow a resolved alert too (a call back).
            context.update(
                may_note=self.may_triage(request, obj),
                note_form=NoteForm(),
                assignable=list(assignable_users(obj)),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _lifecycle_view(self, request, object_id, name: str, change):
        """One of the alert page's buttons: `change(alert)` calls alerts.lifecycle and says
        what happened. Another team's alert is a 404, as if it did not exist."""
        alert = self.get_object(request, unquote(object_id))
        if alert is None:
            raise Http404("No such alert.")
        if not self.may_triage(request, alert):
            raise PermissionDenied
        try:
            done = change(alert)
        except (InvalidTransition, InvalidAssignee) as error:
            self.message_user(request, str(error), messages.WARNING)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            record(
                user=request.user,
                patient=alert.patient_id,
                action=AuditAction.CHANGE,
                what=alert,
                fields=[f"action:{name}"],
                request=request,
            )
            self.message_user(request, done)
        return redirect("admin:alerts_alert_change", alert.pk)

    @staticmethod
    def _note(request, form_class) -> str:
        return AlertAdmin._valid(form_class(request.POST))["note"]

    @staticmethod
    def _valid(form) -> dict:
        """The form's data, or a ValidationError with its reasons in the form's field order."""
        if not form.is_valid():
            raise ValidationError([e for field in form.errors.values() for e in field])
        return form.cleaned_data

    @method_decorator(require_POST)
    def acknowledge_view(self, request, object_id):
        def acknowledge(alert):
            note = self._note(request, AcknowledgeForm)
            was_open = alert.status == AlertStatus.OPEN
            acknowledge_alert(alert=alert, user=request.user, note=note)
            return "Alert acknowledged." if was_open else "The alert was acknowledged already."

        return self._lifecycle_view(request, object_id, "acknowledge", acknowledge)

    @method_decorator(require_POST)
    def assign_to_me_view(self, request, object_id):
        def assign(alert):
            assign_alert(alert=alert, user=request.user, assignee=request.user)
            return "Alert assigned to you."

        return self._lifecycle_view(request, object_id, "assign_to_me", assign)

    @method_decorator(require_POST)
    def assign_view(self, request, object_id):
        def assign(alert):
            assignee = self._valid(AssignForm(request.POST, alert=alert))["assignee"]
            assign_alert(alert=alert, user=request.user, assignee=assignee)
            return f"Alert assigned to {assignee.get_username()}."

        return self._lifecycle_view(request, object_id, "assign", assign)

    @method_decorator(require_POST)
    def note_view(self, request, object_id):
        def note(alert):
            note_alert(alert=alert, user=request.user, note=self._note(request, NoteForm))
            return "Note added."

        return self._lifecycle_view(request, object_id, "note", note)

    @method_decorator(require_POST)
    def resolve_view(self, request, object_id):
        def resolve(alert):
            data = self._valid(ResolveForm(request.POST))
            resolve_alert(alert=alert, user=request.user, note=data["note"], reason=data["reason"])
            return "Alert resolved."

        return self._lifecycle_view(request, object_id, "resolve", resolve)


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
class NotificationAdmin(BoundedChangeListMixin, TeamScopedAdmin):
    team_path = "alert__patient__care_team"
    list_display = ["id", "alert", "channel", "recipient", "status", "attempts", "sent_at"]
    list_filter = ["channel", "status"]
    # A growing table (config/admin_lists.py): newest first by the primary key, no
    # count, no sorting by a column no index serves.
    ordering = ["-id"]
    sortable_by = ()
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
