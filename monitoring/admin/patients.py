"""The patient page: enrolment, rules beside their defaults, credentials, charts, summaries."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_POST

from alerts.admin_scoping import TeamScopedAdmin
from alerts.teams import TAILOR_RULES, can, teams_where
from alerts.triage import describe_provenance
from monitoring import rules as rule_kinds
from monitoring.admin.patient_print import PatientPrintAdmin
from monitoring.audit import record
from monitoring.auth import issue_app_token, register_device, revoke_app_token, revoke_device
from monitoring.clinical_header import ClinicalHeader, clinical_header
from monitoring.display import display_unit
from monitoring.enrolment import enrol_patient
from monitoring.evaluation import SINGLE_READING_KINDS, unit_of
from monitoring.evaluation.preview import preview_rule
from monitoring.models import (
    AuditAction,
    Device,
    Metric,
    Patient,
    PatientAppToken,
    Reading,
    Rule,
)
from monitoring.patient_forms import (
    PREFERENCE_FIELDS,
    DeviceRegisterForm,
    PatientEnrolForm,
    PatientForm,
    RuleChangeForm,
    rule_history,
)
from monitoring.patient_rules import StaleRule, change_rule
from monitoring.patient_summary import (
    CHART_DAYS,
    PERIOD_CHOICES,
    chart_data,
    period_from_query,
    render_agp,
    render_chart,
    render_time_in_ranges,
    summarise_patient,
)
from monitoring.problems import policy_notes
from monitoring.rules import InvalidParameters
from monitoring.rules.threshold import shown
from monitoring.rules.words import capitalised
from program.admin.reviews import PatientReviewsAdmin
from program.rule_statistics import rule_statistics

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).


# --- The patient page ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRow:
    """A rule as the patient page lists it: the patient's value beside the protocol default."""

    rule: Rule
    current: str
    default: str | None
    tailored: bool
    sentence: str = ""  # the rule as a sentence ("Warn when glucose is below 70 mg/dL")


def describe_parameters(rule: Rule, parameters: dict | None) -> str:
    """Parameters as a clinician reads them, as the rule's kind words them
    (monitoring.rules.describe). The exact JSON is on the rule's page."""
    worded = rule_kinds.describe(
        rule.kind, parameters, unit=unit_of(rule.metric), metric=rule.metric
    )
    return capitalised(worded)


def rule_row(rule: Rule) -> RuleRow:
    return RuleRow(
        rule=rule,
        current=describe_parameters(rule, rule.parameters),
        default=describe_parameters(rule, rule.default_parameters),
        tailored=rule.default_parameters is not None and rule.parameters != rule.default_parameters,
        sentence=rule_kinds.sentence(rule, unit=unit_of(rule.metric)),
    )


# The patient page's "Recent readings": a display count, not a clinical number.
RECENT_READINGS = 20
RECENT_FIELDS = (
    "metric",
    "measured_at",
    "value",
    "systolic",
    "diastolic",
    "medication",
    "dose_status",
    "source",
    "entry",
    "device_serial",
    "trend",
)


@dataclass(frozen=True)
class RecentReading:
    at: datetime  # shown with {% patient_time %}: the patient's clock and the viewer's
    metric: str
    value: str
    came_from: str  # issue 12.4: app, device key, FHIR client, Nightscout uploader and device


def reading_value(row) -> str:
    """A reading's value with its unit as a clinician writes it (monitoring.display)."""
    if row.metric == Metric.DOSE:
        return f"{row.medication} {row.dose_status}".strip() or "—"
    canonical = unit_of(row.metric)
    unit = display_unit(canonical)
    if row.systolic is not None and row.diastolic is not None:
        return f"{shown(row.systolic, canonical)}/{shown(row.diastolic, canonical)} {unit}"
    if row.value is None:
        return "—"
    return f"{shown(row.value, canonical)} {unit}".strip()


class PatientPage:
    """The sections of a patient's change page below the form: summaries, charts, rules and
    credentials. Built when the page is rendered, so a save that redirects computes none."""

    period_choices = PERIOD_CHOICES

    def __init__(self, *, model_admin: "PatientAdmin", request, patient: Patient):
        self.patient = patient
        self.now = timezone.now()
        # Issue 14.3: the period of the summaries and charts, from the page's GET parameters;
        # a value the page cannot use falls back to the default, and the page says why.
        self.period, self.period_problem = period_from_query(
            request.GET, zone=patient.zone, now=self.now
        )
        self.may_edit_rules = can(request.user, TAILOR_RULES, team_id=patient.care_team_id)
        self.may_issue_app_tokens = model_admin.may(request, "add", PatientAppToken, patient)
        self.may_revoke_app_tokens = model_admin.may(request, "change", PatientAppToken, patient)
        self.may_register_devices = model_admin.may(request, "add", Device, patient)
        self.may_revoke_devices = model_admin.may(request, "change", Device, patient)

    @cached_property
    def clinical_header(self) -> ClinicalHeader:
        return clinical_header(patient=self.patient, now=self.now)

    @cached_property
    def rules(self) -> list[Rule]:
        return list(self.patient.rules.select_related("protocol"))

    @cached_property
    def rule_rows(self) -> list[RuleRow]:
        return [rule_row(rule) for rule in self.rules]

    @cached_property
    def summary(self):
        return summarise_patient(
            patient=self.patient, now=self.now, rules=self.rules, period=self.period
        )

    @cached_property
    def agp(self):
        """The AGP and the time-in-ranges bar (SVG), when the CGM data are sufficient."""
        cgm = self.summary.cgm
        if cgm is None or not cgm.sufficient:
            return None
        return (
            render_agp(cgm, period=self.period, zone=self.patient.zone),
            render_time_in_ranges(cgm, period=self.period),
        )

    @cached_property
    def charts(self) -> list[tuple]:
        zone = self.patient.zone
        return [
            (chart, render_chart(chart, zone=zone))
            for chart in chart_data(
                patient=self.patient, now=self.now, rules=self.rules, period=self.period
            )
        ]

    @cached_property
    def recent_readings(self) -> list[RecentReading]:
        """The latest RECENT_READINGS readings, every metric, with where each came from: one
        query on reading_patient_time, reading those rows only whatever the history (looked
        for in the charts' CHART_DAYS first: Reading.objects.newest)."""
        rows = (
            Reading.objects.filter(patient=self.patient)
            .order_by("-measured_at", "-id")
            .values_list(*RECENT_FIELDS, named=True)
            .newest(RECENT_READINGS, since=self.now - timedelta(days=CHART_DAYS))
        )
        return [
            RecentReading(
                at=row.measured_at,
                metric=Metric(row.metric).label,
                value=reading_value(row),
                came_from=describe_provenance(
                    source=row.source,
                    entry=row.entry,
                    device_serial=row.device_serial,
                    trend=row.trend,
                ),
            )
            for row in rows
        ]

    @property
    def readings_url(self) -> str:
        """The readings list, this patient's, from their latest on."""
        return f"{reverse('admin:monitoring_reading_changelist')}?patient={self.patient.pk}"

    @cached_property
    def app_tokens(self) -> list[PatientAppToken]:
        return list(self.patient.app_tokens.select_related("created_by").order_by("-id"))

    @cached_property
    def devices(self) -> list[Device]:
        return list(self.patient.devices.order_by("-id"))


@admin.register(Patient)
class PatientAdmin(PatientPrintAdmin, PatientReviewsAdmin, TeamScopedAdmin):
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
                    "date_of_birth",
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
        return can(request.user, perm, team_id=patient.care_team_id)

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
            form.base_fields["care_team"].queryset = teams_where(request.user, perm)
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
            # Issue 14.5: the patient's name as the page's title and heading, not "patient 2"
            # (the model's str carries no PHI, for logs; the page is for the care team).
            context["title"], context["subtitle"] = obj.name, None
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
                # Issue 14.5: whose page this is, in the heading and the window's title.
                "subtitle": patient.name,
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
        may_edit = can(request.user, TAILOR_RULES, team_id=patient.care_team_id)
        form = RuleChangeForm(rule=rule) if may_edit else None
        preview = None
        if request.method == "POST":
            if not may_edit:
                raise PermissionDenied
            previewing = "preview" in request.POST
            form = RuleChangeForm(request.POST, rule=rule, preview=previewing)
            if form.is_valid() and previewing:
                # Issue 14.4: what the candidate would have done, before saving it.
                preview = preview_rule(
                    rule=rule,
                    parameters=form.cleaned_data["parameters"],
                    severity=form.cleaned_data["severity"],
                    now=timezone.now(),
                )
            elif form.is_valid():
                changes = form.changes()
                note = form.cleaned_data["note"]
                try:
                    saved = change_rule(
                        rule=rule,
                        user=request.user,
                        note=note,
                        expected_version=form.cleaned_data["version"],
                        **changes,
                    )
                except InvalidParameters as error:
                    form.add_parameter_errors(error.errors)
                except StaleRule as error:
                    form.add_stale_error(error.current_version)
                else:
                    self._audit(request, patient, AuditAction.CHANGE, saved, fields=list(changes))
                    messages.success(request, f"Saved version {saved.version} of “{saved.title}”.")
                    return redirect(request.path)
        else:
            self._audit(request, patient, AuditAction.VIEW, rule)
        revisions = list(rule.revisions.select_related("changed_by"))
        return self._render(
            request,
            "rule.html",
            patient,
            f"Rule “{rule.title}”",
            rule=rule,
            row=rule_row(rule),
            sentence=rule_kinds.sentence(rule, unit=unit_of(rule.metric)),
            default_sentence=(
                None
                if rule.default_parameters is None
                else rule_kinds.sentence(rule, rule.default_parameters, unit=unit_of(rule.metric))
            ),
            history=rule_history(
                rule,
                revisions,
                zone=patient.zone,
                viewer_zone=getattr(request, "viewer_zone", None),
            ),
            preview=preview,
            unit=unit_of(rule.metric),
            policy_notes=policy_notes(
                group=rule.group,
                late_data_applies=rule.kind in SINGLE_READING_KINDS,
                stale_hours=settings.VIGIL_STALE_READING_AGE / timedelta(hours=1),
            ),
            form=form,
            # Issue 13.3: how often it fires, how fast it is acknowledged, why it is resolved.
            statistics=rule_statistics(rule=rule, user=request.user, now=timezone.now()),
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
