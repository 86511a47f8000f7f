"""A minimal, scoped admin: care-team members see their teams' patients only.

The triage workspace (queue, charts, roles, audit) is built on top of this later.
"""

import json
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery, Sum
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from alerts.admin_scoping import TeamScopedAdmin
from alerts.models import CareTeam
from alerts.teams import has_team_permission
from monitoring import nudges, schedules
from monitoring.audit import record
from monitoring.auth import issue_app_token, register_device, revoke_app_token, revoke_device
from monitoring.enrolment import enrol_patient
from monitoring.evaluation import unit_of
from monitoring.models import (
    AuditAction,
    Device,
    MeasurementSchedule,
    MedicationPlan,
    Metric,
    Nudge,
    NudgePurpose,
    NudgeVariant,
    Patient,
    PatientAppToken,
    Reading,
    Rule,
    RuleRevision,
    Slot,
    VariantPosterior,
)
from monitoring.patient_forms import (
    PREFERENCE_FIELDS,
    DeviceRegisterForm,
    PatientEnrolForm,
    PatientForm,
    RuleChangeForm,
)
from monitoring.patient_rules import change_rule
from monitoring.patient_summary import CHART_DAYS, chart_data, render_chart, summarise_patient
from monitoring.rules import InvalidParameters
from monitoring.rules.base import SYMBOLS, Conditions
from monitoring.units import format_number
from monitoring.views import may_edit_rules

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).
ScopedToPatientsAdmin = TeamScopedAdmin


# --- The patient page ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRow:
    """A rule as the patient page lists it: the patient's value beside the protocol default."""

    rule: Rule
    current: str
    default: str | None
    tailored: bool


def describe_parameters(rule: Rule, parameters: dict | None) -> str:
    """Parameters as a clinician reads them: "≥ 54 mg/dL and < 70 mg/dL",
    "band < 70; target < 4; window_days 14; …". The exact JSON is on the rule's page."""
    if not isinstance(parameters, dict):
        return "" if parameters is None else json.dumps(parameters, ensure_ascii=False)
    parts = []
    rest = parameters
    if parameters.get("conditions"):
        try:
            parts.append(Conditions.from_parameters(parameters).describe(unit_of(rule.metric)))
            rest = {k: v for k, v in parameters.items() if k not in ("conditions", "match")}
        except (KeyError, TypeError, ValueError):
            pass
    parts += [f"{name} {_compact(value)}" for name, value in rest.items()]
    return "; ".join(parts)


def _compact(value) -> str:
    if isinstance(value, dict) and {"op", "value"} <= set(value) and value["op"] in SYMBOLS:
        return f"{SYMBOLS[value['op']]} {_compact(value['value'])}"
    if isinstance(value, dict) and {"lower", "upper"} & set(value):
        bounds = []
        for side, (inclusive, exclusive) in (("lower", ("≥", ">")), ("upper", ("≤", "<"))):
            bound = value.get(side)
            if isinstance(bound, dict) and "value" in bound:
                symbol = inclusive if bound.get("inclusive") else exclusive
                bounds.append(f"{symbol} {_compact(bound['value'])}")
        return " and ".join(bounds)
    if isinstance(value, list):
        return "[" + ", ".join(_compact(item) for item in value) + "]"
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value, ensure_ascii=False)
    return format_number(value)


def rule_row(rule: Rule) -> RuleRow:
    return RuleRow(
        rule=rule,
        current=describe_parameters(rule, rule.parameters),
        default=describe_parameters(rule, rule.default_parameters),
        tailored=rule.default_parameters is not None and rule.parameters != rule.default_parameters,
    )


class PatientPage:
    """The sections of a patient's change page below the form: summaries, charts, rules and
    credentials. Built when the page is rendered, so a save that redirects computes none."""

    chart_days = CHART_DAYS

    def __init__(self, *, model_admin: "PatientAdmin", request, patient: Patient):
        self.patient = patient
        self.now = timezone.now()
        self.may_edit_rules = may_edit_rules(request.user, patient)
        self.may_issue_app_tokens = model_admin.may(request, "add", PatientAppToken, patient)
        self.may_revoke_app_tokens = model_admin.may(request, "change", PatientAppToken, patient)
        self.may_register_devices = model_admin.may(request, "add", Device, patient)
        self.may_revoke_devices = model_admin.may(request, "change", Device, patient)

    @cached_property
    def rules(self) -> list[Rule]:
        return list(self.patient.rules.select_related("protocol"))

    @cached_property
    def rule_rows(self) -> list[RuleRow]:
        return [rule_row(rule) for rule in self.rules]

    @cached_property
    def summary(self):
        return summarise_patient(patient=self.patient, now=self.now, rules=self.rules)

    @cached_property
    def charts(self) -> list[tuple]:
        zone = self.patient.zone
        return [
            (chart, render_chart(chart, zone=zone))
            for chart in chart_data(patient=self.patient, now=self.now, rules=self.rules)
        ]

    @cached_property
    def app_tokens(self) -> list[PatientAppToken]:
        return list(self.patient.app_tokens.select_related("created_by").order_by("-id"))

    @cached_property
    def devices(self) -> list[Device]:
        return list(self.patient.devices.order_by("-id"))


@admin.register(Patient)
class PatientAdmin(TeamScopedAdmin):
    """The patient page. Enrolment saves through enrol_patient (the protocols' rules are
    copied), rules are tailored through change_rule (a new version each time), credentials
    are issued and revoked through monitoring.auth: the admin writes no model directly but
    the patient's own details and preferences. Scoped and audited by TeamScopedAdmin; its
    own views record what they show and change with monitoring.audit.record."""

    team_path = "care_team"
    form = PatientForm
    add_form = PatientEnrolForm
    list_display = ["id", "external_id", "name", "care_team", "timezone", "created_at"]
    list_filter = ["care_team", "protocols"]
    list_select_related = ["care_team"]
    search_fields = ["external_id", "name"]
    readonly_fields = ["protocol_list", "created_at"]
    add_fieldsets = [
        (None, {"fields": ["external_id", "name", "timezone", "care_team"]}),
        ("Protocols", {"fields": ["protocol_codes"]}),
        ("Preferences", {"fields": PREFERENCE_FIELDS}),
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "external_id",
                    "name",
                    "timezone",
                    "care_team",
                    "protocol_list",
                    "created_at",
                ]
            },
        ),
        ("Preferences", {"fields": PREFERENCE_FIELDS, "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("care_team")

    def may(self, request, action: str, model, patient: Patient) -> bool:
        """The model permission as the user holds it in the patient's team, e.g.
        may(request, "add", Device, patient): a coordinator of one team who is a nurse in
        another registers devices in the first only."""
        opts = model._meta
        perm = f"{opts.app_label}.{get_permission_codename(action, opts)}"
        return has_team_permission(request.user, patient.care_team_id, perm)

    def teams_for(self, request, perm: str):
        """The user's teams in which their role grants `perm`; every team for a superuser."""
        teams = CareTeam.objects.visible_to(request.user)
        if request.user.is_active and request.user.is_superuser:
            return teams
        allowed = [
            pk
            for pk in teams.values_list("pk", flat=True)
            if has_team_permission(request.user, pk, perm)
        ]
        return CareTeam.objects.filter(pk__in=allowed)

    # --- Enrolment and preferences ---

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, **kwargs)
        if "care_team" in form.base_fields:
            # Enrol into (or move the patient to) a team where the user's role may.
            perm = "monitoring.add_patient" if obj is None else "monitoring.change_patient"
            form.base_fields["care_team"].queryset = self.teams_for(request, perm)
        return form

    @admin.display(description="Protocols")
    def protocol_list(self, patient: Patient) -> str:
        return ", ".join(protocol.name for protocol in patient.protocols.all()) or "—"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        patient = enrol_patient(
            external_id=data["external_id"],
            name=data["name"],
            timezone=data["timezone"],
            care_team=data["care_team"],
            protocols=data["protocol_codes"],
            preferences={name: data[name] for name in PREFERENCE_FIELDS},
        )
        # The admin logs the addition and redirects with its own instance: make it the
        # enrolled patient.
        obj.pk, obj.created_at = patient.pk, patient.created_at
        obj._state.adding, obj._state.db = False, patient._state.db

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["patient_page"] = PatientPage(model_admin=self, request=request, patient=obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- The page's own views ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:patient_id>/rules/<int:rule_id>/",
                view(self.rule_view),
                name="monitoring_patient_rule",
            ),
            path(
                "<int:patient_id>/app-tokens/issue/",
                view(require_POST(self.issue_app_token_view)),
                name="monitoring_patient_issue_app_token",
            ),
            path(
                "<int:patient_id>/app-tokens/<int:token_id>/revoke/",
                view(require_POST(self.revoke_app_token_view)),
                name="monitoring_patient_revoke_app_token",
            ),
            path(
                "<int:patient_id>/devices/register/",
                view(self.register_device_view),
                name="monitoring_patient_register_device",
            ),
            path(
                "<int:patient_id>/devices/<int:device_id>/revoke/",
                view(require_POST(self.revoke_device_view)),
                name="monitoring_patient_revoke_device",
            ),
            *super().get_urls(),
        ]

    def visible_patient(self, request, patient_id: int) -> Patient:
        """The patient of a custom view: 404 outside the user's teams, exactly as for one
        that does not exist; 403 for a user whose role may not view patients."""
        patient = self.get_object(request, str(patient_id))
        if patient is None:
            raise Http404("patient not found")
        if not self.has_view_or_change_permission(request, patient):
            raise PermissionDenied
        return patient

    def _render(self, request, template: str, patient: Patient, title: str, **context):
        return TemplateResponse(
            request,
            f"admin/monitoring/patient/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": patient,
                "title": title,
                "patient_url": reverse("admin:monitoring_patient_change", args=[patient.pk]),
                **context,
            },
        )

    def _audit(self, request, patient: Patient, action: str, what, fields=()) -> None:
        record(
            user=request.user,
            patient=patient,
            action=action,
            what=what,
            fields=fields,
            request=request,
        )

    def rule_view(self, request, patient_id: int, rule_id: int):
        """A rule with its protocol default and source, its versions, and (for those who may
        edit rules) the form that saves a new version through change_rule."""
        patient = self.visible_patient(request, patient_id)
        rule = get_object_or_404(patient.rules.select_related("protocol"), pk=rule_id)
        may_edit = may_edit_rules(request.user, patient)
        form = RuleChangeForm(rule=rule) if may_edit else None
        if request.method == "POST":
            if not may_edit:
                raise PermissionDenied
            form = RuleChangeForm(request.POST, rule=rule)
            if form.is_valid():
                changes = form.changes()
                note = form.cleaned_data["note"]
                try:
                    saved = change_rule(rule=rule, user=request.user, note=note, **changes)
                except InvalidParameters as error:
                    form.add_parameter_errors(error.errors)
                else:
                    self._audit(request, patient, AuditAction.CHANGE, saved, fields=list(changes))
                    messages.success(request, f"Saved version {saved.version} of “{saved.title}”.")
                    return redirect(request.path)
        else:
            self._audit(request, patient, AuditAction.VIEW, rule)
        return self._render(
            request,
            "rule.html",
            patient,
            f"Rule “{rule.title}”",
            rule=rule,
            row=rule_row(rule),
            parameters_json=json.dumps(rule.parameters, ensure_ascii=False, indent=2),
            default_json=(
                None
                if rule.default_parameters is None
                else json.dumps(rule.default_parameters, ensure_ascii=False, indent=2)
            ),
            revisions=[
                (revision, json.dumps(revision.parameters, ensure_ascii=False))
                for revision in rule.revisions.select_related("changed_by").order_by("-version")
            ],
            unit=unit_of(rule.metric),
            form=form,
        )

    def _credential_patient(self, request, patient_id: int, action: str, model) -> Patient:
        """The patient of a credential view, with the permission its team grants the user."""
        patient = self.visible_patient(request, patient_id)
        if not self.may(request, action, model, patient):
            raise PermissionDenied
        return patient

    def _issued(self, request, patient: Patient, credential, secret: str, name: str):
        # Rendered, never redirected to: the plaintext exists only in this response (which
        # admin_view marks no-store); only its hash is kept.
        self._audit(request, patient, AuditAction.CREATE, credential)
        return self._render(
            request,
            "credential_issued.html",
            patient,
            f"{name.capitalize()} issued",
            credential_name=name,
            credential=credential,
            secret=secret,
        )

    def issue_app_token_view(self, request, patient_id: int):
        patient = self._credential_patient(request, patient_id, "add", PatientAppToken)
        token, plaintext = issue_app_token(patient=patient, created_by=request.user)
        return self._issued(request, patient, token, plaintext, "app token")

    def revoke_app_token_view(self, request, patient_id: int, token_id: int):
        patient = self._credential_patient(request, patient_id, "change", PatientAppToken)
        token = get_object_or_404(PatientAppToken, pk=token_id, patient=patient)
        revoke_app_token(token=token)
        self._audit(request, patient, AuditAction.CHANGE, token, fields=["revoked_at"])
        messages.success(request, f"App token {token.pk} is revoked.")
        return redirect("admin:monitoring_patient_change", patient.pk)

    def register_device_view(self, request, patient_id: int):
        patient = self._credential_patient(request, patient_id, "add", Device)
        form = DeviceRegisterForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                with transaction.atomic():
                    device, key = register_device(patient=patient, **form.cleaned_data)
            except IntegrityError:
                # (patient, serial) is unique among active devices: the database decides.
                form.add_error(
                    "serial", "This patient already has an active device with this serial."
                )
            else:
                return self._issued(request, patient, device, key, "device key")
        return self._render(
            request, "device_register.html", patient, "Register a device", form=form
        )

    def revoke_device_view(self, request, patient_id: int, device_id: int):
        patient = self._credential_patient(request, patient_id, "change", Device)
        device = get_object_or_404(Device, pk=device_id, patient=patient)
        revoke_device(device=device)
        self._audit(request, patient, AuditAction.CHANGE, device, fields=["revoked_at"])
        messages.success(request, f"Device {device.pk} ({device.serial}) is revoked.")
        return redirect("admin:monitoring_patient_change", patient.pk)


@admin.register(Device)
class DeviceAdmin(ScopedToPatientsAdmin):
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


class ScheduleAdmin(ScopedToPatientsAdmin):
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
class SlotAdmin(ScopedToPatientsAdmin):
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
    date_hierarchy = "due_at"
    search_fields = ["patient__external_id"]
    list_select_related = ["patient", "schedule", "plan"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Nudges: message variants and what was sent ---------------------------------------------


class NudgeVariantForm(forms.ModelForm):
    """A message as data: its purposes from NudgePurpose, and only the placeholders
    monitoring.nudges fills in ({what} and {time} for slots, {streak} for streaks)."""

    class Meta:
        model = NudgeVariant
        fields = ["key", "kind", "purposes", "language", "text", "active"]
        help_texts = {
            "purposes": 'e.g. ["measurement_due", "dose_due"]; one of: '
            + ", ".join(NudgePurpose.values),
            "language": 'A language tag, e.g. "en" or "de"; patients without a variant in '
            "their language get English.",
            "text": "Placeholders: {what} (e.g. “your weight check”), {time} (the slot's "
            "local time), {streak} (days, streak messages only).",
        }

    def clean_purposes(self):
        purposes = self.cleaned_data.get("purposes")
        if (
            not isinstance(purposes, list)
            or not purposes
            or any(purpose not in NudgePurpose.values for purpose in purposes)
        ):
            raise ValidationError(f"A non-empty list of: {', '.join(NudgePurpose.values)}.")
        return sorted(set(purposes), key=purposes.index)

    def clean_language(self):
        language = (self.cleaned_data.get("language") or "").strip().lower()
        if not language:
            raise ValidationError("A language tag, e.g. en or de.")
        return language

    def clean(self):
        cleaned = super().clean()
        text, purposes = cleaned.get("text"), cleaned.get("purposes")
        if text is None or purposes is None:
            return cleaned
        try:
            used = nudges.placeholders_of(text)
        except ValueError:
            self.add_error("text", "Unbalanced braces: write placeholders as {what}.")
            return cleaned
        allowed = {"streak"} if purposes == [NudgePurpose.STREAK] else {"what", "time"}
        if NudgePurpose.STREAK in purposes and len(purposes) > 1:
            self.add_error("purposes", "A streak message serves streaks only.")
        elif used - allowed:
            unknown = ", ".join("{" + name + "}" for name in sorted(used - allowed))
            shown = ", ".join("{" + name + "}" for name in sorted(allowed))
            self.add_error("text", f"Not filled in for these purposes: {unknown}; use {shown}.")
        return cleaned


@admin.register(NudgeVariant)
class NudgeVariantAdmin(admin.ModelAdmin):
    """Message variants are shared by every patient; each patient's record with a variant
    (VariantPosterior) is what the policy learns from, so variants are deactivated, not
    deleted. The outcome columns sum every patient's record."""

    form = NudgeVariantForm
    list_display = ["key", "kind", "language", "purposes", "active", "outcomes", "acted_share"]
    list_filter = ["kind", "language", "active"]
    search_fields = ["key", "text"]

    def get_queryset(self, request):
        totals = (
            VariantPosterior.objects.filter(variant=OuterRef("pk"))
            .values("variant")
            .annotate(total=Sum("successes"), failed=Sum("failures"))
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                successes=Subquery(totals.values("total")),
                failures=Subquery(totals.values("failed")),
            )
        )

    @admin.display(description="Outcomes")
    def outcomes(self, variant):
        return (variant.successes or 0) + (variant.failures or 0)

    @admin.display(description="Acted")
    def acted_share(self, variant):
        total = self.outcomes(variant)
        return f"{100 * (variant.successes or 0) / total:.0f} %" if total else "–"

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Nudge)
class NudgeAdmin(TeamScopedAdmin):
    """Read-only: nudges are written by monitoring.nudges, with the decision that chose
    their variant, and settled when their outcome window closes."""

    list_display = [
        "id",
        "patient",
        "purpose",
        "variant",
        "channel",
        "status",
        "created_at",
        "acted",
    ]
    list_filter = ["purpose", "status", "channel", "acted"]
    date_hierarchy = "created_at"
    search_fields = ["patient__external_id"]
    list_select_related = ["patient", "variant"]
    exclude = ["decision"]
    readonly_fields = ["decision_log"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Nudge._meta.fields if f.name != "decision"] + ["decision_log"]

    @admin.display(description="Decision")
    def decision_log(self, nudge):
        return format_html("<pre>{}</pre>", json.dumps(nudge.decision, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
