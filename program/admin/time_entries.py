"""Care time in the admin: the list of entries with an "approve" action, entries logged and
changed by hand, and the timer's buttons (start, stop, discard) and the approve button that
the patient page and the alert page post to (program/templatetags/care_time.py draws them).

Everything goes through program.care_time; the list and forms are scoped and audited by
TeamScopedAdmin, the buttons' views record what they change with monitoring.audit.record.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.urls import path
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from alerts.admin_scoping import TeamScopedAdmin, scope_to_teams
from alerts.models import Alert
from alerts.teams import APPROVE_TIME, LOG_TIME, can
from monitoring.audit import record
from monitoring.display import format_instant
from monitoring.models import AuditAction, Patient
from program.care_time import (
    NOTE_MAX_LENGTH,
    ApprovalRefused,
    InvalidTimeEntry,
    NotApprovable,
    NotEditable,
    TimerAlreadyRunning,
    TimerNotRunning,
    approve_time_entry,
    change_time_entry,
    discard_timer,
    entry_errors,
    log_time,
    start_timer,
    stop_timer,
)
from program.models import Activity, Episode, TimeEntry

MAY_NOT_LOG = "Your role in this patient's care team does not log care time."
ENTRY_FIELDS = ["started_at", "minutes", "activity", "interactive", "note"]


class TimeEntryForm(forms.ModelForm):
    """An entry logged by hand, or changed by its author: the checks of program.care_time."""

    class Meta:
        model = TimeEntry
        fields = ["patient", *ENTRY_FIELDS]
        help_texts = {
            "started_at": "When the time began (your time zone as the admin shows it).",
            "interactive": "A real-time phone or video call with the patient or caregiver.",
        }

    user = None  # set by TimeEntryAdmin.get_form

    def clean(self):
        data = super().clean()
        patient = data.get("patient") or getattr(self.instance, "patient", None)
        if patient is None or self.errors:
            return data
        if not self.instance.pk and not can(self.user, LOG_TIME, team_id=patient.care_team_id):
            self.add_error("patient", MAY_NOT_LOG)
            return data
        errors = entry_errors(
            started_at=data["started_at"],
            minutes=data["minutes"],
            activity=data["activity"],
            interactive=data.get("interactive", False),
            note=data.get("note", ""),
            now=timezone.now(),
        )
        for field, reasons in errors.items():
            self.add_error(field, reasons)
        return data


class TimerStopForm(forms.Form):
    activity = forms.ChoiceField(choices=Activity.choices)
    interactive = forms.BooleanField(required=False)
    note = forms.CharField(required=False, max_length=NOTE_MAX_LENGTH)


class ApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "approved"

    def lookups(self, request, model_admin):
        return [("no", "Not approved"), ("yes", "Approved")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(approved_at__isnull=self.value() == "no")
        return queryset


@admin.register(TimeEntry)
class TimeEntryAdmin(TeamScopedAdmin):
    """Entries are added through log_time, changed through change_time_entry (their author,
    until approved), approved through approve_time_entry, never deleted (a running timer is
    discarded from the timer's own button)."""

    list_display = [
        "id",
        "patient",
        "user",
        "started_at",
        "minutes",
        "activity",
        "interactive",
        "source",
        "capped",
        "approved_by",
        "approved_at",
    ]
    list_select_related = ["patient", "user", "approved_by"]
    list_filter = [ApprovalFilter, "activity", "interactive", "capped", "source"]
    search_fields = ["patient__external_id", "patient__name"]
    raw_id_fields = ["patient", "alert"]
    ordering = ["-started_at", "-id"]
    actions = ["approve"]
    shown_fields = [
        "patient",
        "user",
        "source",
        "alert",
        "started_at",
        "stopped_at",
        "minutes",
        "activity",
        "interactive",
        "note",
        "capped",
        "approved_by",
        "approved_at",
    ]

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The author, until approved; a running timer is stopped, not changed.
        if obj is not None and (
            obj.user_id != request.user.pk or obj.is_approved or obj.is_running
        ):
            return False
        return super().has_change_permission(request, obj)

    def has_approve_permission(self, request) -> bool:
        """The "approve" action is offered to physicians and billing practitioners; each
        entry's approver is decided by program.care_time."""
        user = request.user
        return (
            user.is_superuser
            or user.has_perm(APPROVE_TIME)
            or Episode.objects.filter(billing_practitioner=user).exists()
        )

    def get_fields(self, request, obj=None):
        return ["patient", *ENTRY_FIELDS] if obj is None else self.shown_fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        editable = set(ENTRY_FIELDS) if self.has_change_permission(request, obj) else set()
        return [name for name in self.shown_fields if name not in editable]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = TimeEntryForm
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in ENTRY_FIELDS}
        if change:
            changed, _ = change_time_entry(entry=obj, user=request.user, **data)
            obj.updated_at = changed.updated_at
            return
        entry = log_time(user=request.user, patient=form.cleaned_data["patient"], **data)
        # The admin logs the addition and redirects with its own instance: make it the entry.
        obj.pk, obj.user, obj.source = entry.pk, request.user, entry.source
        obj._state.adding, obj._state.db = False, entry._state.db

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (NotEditable, InvalidTimeEntry) as error:
            # Approved (or changed) since the form was shown.
            detail = str(error) if isinstance(error, NotEditable) else "The entry changed."
            self.message_user(request, detail, messages.ERROR)
            return redirect(request.get_full_path())

    # --- Approval ---------------------------------------------------------------------------

    @admin.action(description="Approve selected time entries", permissions=["approve"])
    def approve(self, request, queryset):
        approved, left = 0, []
        for entry in queryset.select_related("patient").order_by("pk"):
            try:
                approve_time_entry(entry=entry, user=request.user)
            except (ApprovalRefused, NotApprovable) as error:
                left.append(f"{entry.pk} ({error})")
            else:
                approved += 1
        if approved:
            self.message_user(
                request, f"Approved {approved} time entr{pluralize(approved, 'y,ies')}."
            )
        if left:
            self.message_user(request, f"Left alone: {'; '.join(left)}", messages.WARNING)

    # --- The buttons of the patient and alert pages -------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "timer/start/",
                view(require_POST(self.start_timer_view)),
                name="program_timeentry_timer_start",
            ),
            path(
                "timer/<int:entry_id>/stop/",
                view(require_POST(self.stop_timer_view)),
                name="program_timeentry_timer_stop",
            ),
            path(
                "timer/<int:entry_id>/discard/",
                view(require_POST(self.discard_timer_view)),
                name="program_timeentry_timer_discard",
            ),
            path(
                "<int:entry_id>/approve/",
                view(require_POST(self.approve_view)),
                name="program_timeentry_approve",
            ),
            *super().get_urls(),
        ]

    def _back(self, request, patient_id: int | None):
        """To the page the button was on (`next`, this site's only), else the patient's."""
        target = request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return redirect(target)
        if patient_id is not None:
            return redirect("admin:monitoring_patient_change", patient_id)
        return redirect("admin:program_timeentry_changelist")

    def _audit(self, request, entry: TimeEntry, action: str, fields=()) -> None:
        record(
            user=request.user,
            patient=entry.patient_id,
            action=action,
            what=entry,
            fields=fields,
            request=request,
            object_id=entry.pk,
        )

    def _patient(self, request) -> Patient:
        """The patient named by the form: 404 outside the user's teams, as a missing one."""
        try:
            patient_id = int(request.POST.get("patient", ""))
        except ValueError:
            raise Http404("patient not found") from None
        patient = scope_to_teams(Patient.objects.all(), request.user, "care_team")
        patient = patient.filter(pk=patient_id).first()
        if patient is None:
            raise Http404("patient not found")
        return patient

    def start_timer_view(self, request):
        patient = self._patient(request)
        if not can(request.user, LOG_TIME, team_id=patient.care_team_id):
            raise PermissionDenied
        alert = None
        if request.POST.get("alert"):
            alert = Alert.objects.filter(pk=request.POST["alert"], patient=patient).first()
            if alert is None:
                raise Http404("alert not found")
        try:
            entry = start_timer(user=request.user, patient=patient, alert=alert)
        except TimerAlreadyRunning as error:
            self.message_user(request, _already_running(error.running), messages.WARNING)
        else:
            self._audit(request, entry, AuditAction.CREATE)
            self.message_user(request, "Timer started.")
        return self._back(request, patient.pk)

    def stop_timer_view(self, request, entry_id: int):
        form = TimerStopForm(request.POST)
        if not form.is_valid():
            reasons = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            self.message_user(request, f"The timer is still running: {reasons}", messages.ERROR)
            return self._back(request, None)
        try:
            entry = stop_timer(user=request.user, entry_id=entry_id, **form.cleaned_data)
        except (TimerNotRunning, InvalidTimeEntry) as error:
            detail = str(error)
            if isinstance(error, InvalidTimeEntry):
                detail = "The timer is still running: " + "; ".join(
                    " ".join(reasons) for reasons in error.errors.values()
                )
            self.message_user(request, detail, messages.ERROR)
            return self._back(request, None)
        self._audit(
            request,
            entry,
            AuditAction.CHANGE,
            ["stopped_at", "minutes", "activity", "interactive", "note"],
        )
        capped = f", capped at {entry.minutes} minutes" if entry.capped else ""
        self.message_user(request, f"Timer stopped: {entry.minutes} min logged{capped}.")
        return self._back(request, entry.patient_id)

    def discard_timer_view(self, request, entry_id: int):
        try:
            entry = discard_timer(user=request.user, entry_id=entry_id)
        except TimerNotRunning as error:
            self.message_user(request, str(error), messages.ERROR)
            return self._back(request, None)
        self._audit(request, entry, AuditAction.DELETE)
        self.message_user(request, "Timer discarded: nothing logged.")
        return self._back(request, entry.patient_id)

    def approve_view(self, request, entry_id: int):
        entry = self.get_object(request, str(entry_id))
        if entry is None:
            raise Http404("time entry not found")
        try:
            approve_time_entry(entry=entry, user=request.user)
        except ApprovalRefused as error:
            raise PermissionDenied(str(error)) from error
        except NotApprovable as error:
            self.message_user(request, str(error), messages.WARNING)
        else:
            self._audit(request, entry, AuditAction.CHANGE, ["approved_at", "approved_by"])
            self.message_user(request, f"Approved {entry.minutes} min of {entry.user}.")
        return self._back(request, entry.patient_id)


def _already_running(running: TimeEntry | None) -> str:
    if running is None:
        return "You had a timer running a moment ago: try again."
    started = format_instant(running.started_at, running.patient.zone)
    return (
        f"Your timer is running already (since {started}, shown in the timer box): stop it first."
    )
