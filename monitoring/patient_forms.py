"""Forms of the patient page in the admin: enrolment and preferences, tailoring a rule,
registering a device. They validate input only; the admin saves through the domain
functions (enrol_patient, change_rule, register_device)."""

from __future__ import annotations

import json
import zoneinfo
from functools import cache

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from monitoring import rules as rule_kinds
from monitoring.models import DeviceKind, Patient, ProtocolCode, Rule, Severity

PREFERENCE_FIELDS = [
    "glucose_unit",
    "weight_unit",
    "language",
    "nudge_channel",
    "quiet_hours_start",
    "quiet_hours_end",
    "daily_nudge_cap",
    "phone",
    "email",
]
# The API's limit for the daily nudge cap (PreferencesSerializer).
MAX_DAILY_NUDGES = 24


@cache
def timezone_choices() -> list[tuple[str, str]]:
    return [("", "---------")] + [(name, name) for name in sorted(zoneinfo.available_timezones())]


class PatientForm(forms.ModelForm):
    """The patient's details and preferences, as the change page edits them."""

    timezone = forms.ChoiceField(
        choices=timezone_choices,
        help_text="IANA name; reminders, quiet hours and days are the patient's local ones.",
    )
    daily_nudge_cap = forms.IntegerField(min_value=0, max_value=MAX_DAILY_NUDGES, initial=3)

    class Meta:
        model = Patient
        fields = ["external_id", "name", "timezone", "care_team", *PREFERENCE_FIELDS]

    def clean(self):
        data = super().clean()
        start, end = data.get("quiet_hours_start"), data.get("quiet_hours_end")
        if (start is None) != (end is None):
            self.add_error("quiet_hours_end", "Give both ends of the quiet hours, or neither.")
        return data


class PatientEnrolForm(PatientForm):
    """Enrolment: the details, the protocols whose rules the patient starts with, and the
    preferences."""

    protocol_codes = forms.MultipleChoiceField(
        label="Protocols",
        choices=ProtocolCode.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The patient gets their own copy of each protocol's rules, to tailor.",
    )


class ParametersField(forms.JSONField):
    """JSON parameters, shown indented so a clinician can read and edit them."""

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


class RuleChangeForm(forms.Form):
    """A new version of one rule. `version` is the one the clinician saw: a colleague's
    change saved in between is not silently overwritten."""

    parameters = ParametersField(widget=forms.Textarea(attrs={"rows": 14, "cols": 70}))
    severity = forms.ChoiceField(choices=Severity.choices)
    active = forms.BooleanField(required=False)
    title = forms.CharField(max_length=200)
    note = forms.CharField(
        label="Reason",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
        help_text="Kept in the version history.",
    )
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, rule: Rule, **kwargs):
        self.rule = rule
        initial = {
            "parameters": rule.parameters,
            "severity": rule.severity,
            "active": rule.active,
            "title": rule.title,
            "version": rule.version,
        }
        super().__init__(*args, initial=initial, **kwargs)
        # What the parameters may be, from the kind's JSON Schema (the API checks the same).
        self.fields["parameters"].help_text = rule_kinds.parameters_help(rule.kind)

    def clean(self):
        data = super().clean()
        if data.get("version") is not None and data["version"] != self.rule.version:
            self.add_stale_error(self.rule.version)
            return data
        if "parameters" in data and not self.changes():
            raise ValidationError("Nothing changed.", code="unchanged")
        if "parameters" in self.changes():
            try:
                rule_kinds.validate_parameters(
                    self.rule.kind, data["parameters"], metric=self.rule.metric
                )
            except rule_kinds.InvalidParameters as error:
                self.add_parameter_errors(error.errors)
        return data

    def changes(self) -> dict:
        """The arguments for change_rule: only what differs from the current version."""
        current = {
            "parameters": self.rule.parameters,
            "severity": self.rule.severity,
            "active": self.rule.active,
            "title": self.rule.title,
        }
        return {
            name: self.cleaned_data[name]
            for name, value in current.items()
            if name in self.cleaned_data and self.cleaned_data[name] != value
        }

    def add_stale_error(self, current_version: int) -> None:
        """A colleague saved a version since this form was opened (seen in clean(), or by
        change_rule under the rule's row lock when the two saves raced)."""
        self.add_error(
            None,
            ValidationError(
                f"Someone saved version {current_version} of this rule since you opened it; "
                "review it below and make your change again.",
                code="stale",
            ),
        )

    def add_parameter_errors(self, errors: dict[str, list[str]]) -> None:
        """InvalidParameters' reasons, one line per parameter."""
        for name, messages in errors.items():
            for message in messages:
                self.add_error(
                    "parameters", message if name == "parameters" else f"{name}: {message}"
                )


class DeviceRegisterForm(forms.Form):
    kind = forms.ChoiceField(choices=DeviceKind.choices)
    model = forms.CharField(max_length=120, required=False)
    serial = forms.CharField(max_length=120)
