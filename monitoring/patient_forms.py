"""Forms of the patient page in the admin: enrolment and preferences, tailoring a rule (its
fields generated from the rule kind's parameter schema), registering a device; and the
rule's history in words. They validate input only; the admin saves through the domain
functions (enrol_patient, change_rule, register_device)."""

from __future__ import annotations

import copy
import json
import zoneinfo
from dataclasses import dataclass
from functools import cache

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from monitoring import rules as rule_kinds
from monitoring.display import display_unit, format_instant_for
from monitoring.evaluation import unit_of
from monitoring.models import DeviceKind, Patient, ProtocolCode, Rule, RuleRevision, Severity
from monitoring.units import format_number

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
        if value in (None, ""):
            return ""
        return json.dumps(value, ensure_ascii=False, indent=2)


# --- The tailoring form's parameter fields, from the kind's JSON Schema ---------------------

# A parameter as the form asks for it: its label and the unit it is in ("unit": the metric's,
# as a clinician writes it). A parameter not listed is labelled from its name.
PARAMETER_LABELS = {
    "window_days": ("Over the last", "days"),
    "within_days": ("Within", "days"),
    "min_readings": ("From at least", "readings"),
    "count": ("Count", ""),
    "duration_minutes": ("Or for at least", "minutes"),
    "delta": ("By", "unit"),
    "silent_hours": ("No reading for", "hours"),
    "below_percent": ("Below", "%"),
    "target_low": ("Target range from", "unit"),
    "target_high": ("Target range to", "unit"),
    "max_gap_days": ("Gaps between results not counted over", "days"),
    "min_days": ("Judged with at least", "days"),
    "min_percent_active": ("and at least", "% of readings"),
    "sensor_interval_minutes": ("Sensor reading every", "minutes"),
}
CHOICE_WORDS = {
    "direction": [("gain", "rises"), ("loss", "falls")],
    "op": [("gt", "more than"), ("ge", "at least")],
    "match": [("any", "any of these holds"), ("all", "all of these hold")],
}
# Parameters that choose which other parameters apply: changed through the JSON only.
FIXED = ("mode", "measure")
OPERATOR_CHOICES = list(rule_kinds.words.OPERATOR_WORDS.items())


def _number_help(schema: dict) -> str:
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = "A whole number" if "integer" in kinds else "A number"
    if "minimum" in schema:
        words += f", at least {format_number(schema['minimum'])}"
    if "null" in kinds:
        words += "; may be left empty"
    return f"{words}. {schema['description']}" if "description" in schema else f"{words}."


def _schema_for(kind: str, parameters: dict) -> dict:
    """The kind's schema of these parameters: a kind with modes (adherence) has one per mode."""
    schema = rule_kinds.KINDS[kind].parameters_schema
    for branch in schema.get("oneOf", []) if "properties" not in schema else []:
        mode = branch.get("properties", {}).get("mode", {}).get("enum", [None])[0]
        if mode == parameters.get("mode"):
            return branch
    return schema


def parameter_fields(
    *, kind: str, metric: str, unit: str, parameters: dict
) -> dict[str, forms.Field]:
    """One form field per parameter of the rule, named by the parameter's path as the kind
    names it in its errors (conditions[0].value, target.op, band.lower.value, window_days):
    operators as words, units as a clinician writes them, help from the kind's schema."""
    schema = _schema_for(kind, parameters)
    required = set(schema.get("required", ()))
    shown_unit = display_unit(unit)
    fields: dict[str, forms.Field] = {}
    for name, part in schema.get("properties", {}).items():
        if name in FIXED:
            continue
        if name == "conditions":
            fields.update(_condition_fields(parameters, metric, shown_unit))
        elif name == "match":
            if len(parameters.get("conditions") or []) > 1:
                fields[name] = forms.ChoiceField(
                    label="Fires when", choices=CHOICE_WORDS["match"], initial="any"
                )
        elif name == "target":
            fields["target.op"] = forms.ChoiceField(
                label="Target: the measure stays",
                choices=OPERATOR_CHOICES,
                help_text="The rule fires when the target is missed.",
            )
            fields["target.value"] = forms.FloatField(label="Target (%)")
        elif name == "band":
            fields.update(_band_fields(shown_unit))
        elif name == "medications":
            fields[name] = forms.CharField(
                label="Medications (ids, comma-separated)",
                required=False,
                help_text=part.get("description", ""),
            )
        elif name in CHOICE_WORDS:
            subject = rule_kinds.words.subject_of(metric)
            fields[name] = forms.ChoiceField(
                label=f"When {subject}" if name == "direction" else "By",
                choices=CHOICE_WORDS[name],
                required=name in required,
            )
        else:
            fields[name] = _number_field(kind, name, part, name in required, shown_unit)
    return fields


def _number_field(kind, name, schema, required, unit) -> forms.Field:
    label, in_unit = PARAMETER_LABELS.get(name, (name.replace("_", " ").capitalize(), ""))
    # Where the kind asks for it in its own words (Kind.parameter_labels).
    label, in_unit = rule_kinds.KINDS[kind].parameter_labels.get(name, (label, in_unit))
    in_unit = unit if in_unit == "unit" else in_unit
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    nullable = "null" in kinds
    field_class = forms.IntegerField if "integer" in kinds else forms.FloatField
    # No min_value: the kind's validation is the authority, with its own reason.
    return field_class(
        label=f"{label} ({in_unit})" if in_unit else label,
        required=required and not nullable,
        help_text=_number_help(schema),
    )


def _condition_fields(parameters: dict, metric: str, unit: str) -> dict[str, forms.Field]:
    fields = {}
    subject = rule_kinds.words.subject_of(metric)
    for position, condition in enumerate(parameters.get("conditions") or []):
        component = condition.get("component", "value") if isinstance(condition, dict) else ""
        name = subject if component in ("value", "") else component
        fields[f"conditions[{position}].op"] = forms.ChoiceField(
            label=f"When {name} is", choices=OPERATOR_CHOICES
        )
        fields[f"conditions[{position}].value"] = forms.FloatField(
            label=f"Limit ({unit})" if unit else "Limit", help_text="A number."
        )
    return fields


def _band_fields(unit: str) -> dict[str, forms.Field]:
    suffix = f" ({unit})" if unit else ""
    return {
        "band.lower.value": forms.FloatField(
            label=f"Band from{suffix}", required=False, help_text="Empty: no lower bound."
        ),
        "band.lower.inclusive": forms.BooleanField(label="including it", required=False),
        "band.upper.value": forms.FloatField(
            label=f"Band to{suffix}", required=False, help_text="Empty: no upper bound."
        ),
        "band.upper.inclusive": forms.BooleanField(label="including it", required=False),
    }


def parameter_initial(parameters: dict) -> dict[str, object]:
    """The current parameters as the fields' initial values, by path."""
    initial: dict[str, object] = {}
    for position, condition in enumerate(parameters.get("conditions") or []):
        if isinstance(condition, dict):
            initial[f"conditions[{position}].op"] = condition.get("op")
            initial[f"conditions[{position}].value"] = condition.get("value")
    for name in ("target",):
        if isinstance(parameters.get(name), dict):
            initial["target.op"] = parameters[name].get("op")
            initial["target.value"] = parameters[name].get("value")
    band = parameters.get("band")
    if isinstance(band, dict):
        for side in ("lower", "upper"):
            if isinstance(band.get(side), dict):
                initial[f"band.{side}.value"] = band[side].get("value")
                initial[f"band.{side}.inclusive"] = band[side].get("inclusive")
    if isinstance(parameters.get("medications"), list):
        initial["medications"] = ", ".join(parameters["medications"])
    for name, value in parameters.items():
        if name not in ("conditions", "target", "band", "medications"):
            initial[name] = value
    return initial


def _whole(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parameters_from(fields: dict[str, object], current: dict) -> dict:
    """The parameters the fields say, on top of the current ones (what the form does not
    show, such as a condition's component or the mode, is kept)."""
    parameters = copy.deepcopy(current)
    for name, value in fields.items():
        value = _whole(value)
        if name.startswith("conditions["):
            position, key = name[len("conditions[") :].split("].")
            parameters["conditions"][int(position)][key] = value
        elif name.startswith("target."):
            parameters.setdefault("target", {})[name.split(".")[1]] = value
        elif name.startswith("band."):
            continue
        elif name == "medications":
            parameters[name] = [part.strip() for part in (value or "").split(",") if part.strip()]
        elif value is None:
            parameters.pop(name, None)
        else:
            parameters[name] = value
    if any(name.startswith("band.") for name in fields):
        band = {}
        for side in ("lower", "upper"):
            bound = fields.get(f"band.{side}.value")
            if bound is not None:
                band[side] = {
                    "value": _whole(bound),
                    "inclusive": bool(fields.get(f"band.{side}.inclusive")),
                }
        parameters["band"] = band
    return parameters


class RuleChangeForm(forms.Form):
    """A new version of one rule: one field per parameter of its kind (generated from the
    kind's JSON Schema, parameter_fields), its severity, name and the reason. The kind's own
    validation decides, and its reasons land on the field of the parameter they name.

    The whole parameters as JSON remain an advanced path ("parameters"): filled in, they
    replace the fields (a condition added or removed, an adherence rule's mode changed).
    `version` is the one the clinician saw: a colleague's change saved in between is not
    silently overwritten. `preview`: the parameters are checked for the preview, not saved,
    so an unchanged rule is no error."""

    severity = forms.ChoiceField(choices=Severity.choices)
    active = forms.BooleanField(required=False)
    title = forms.CharField(
        label="Name", max_length=200, help_text="The rule's name; its sentence says what it does."
    )
    note = forms.CharField(
        label="Reason",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Kept in the rule's history.",
    )
    parameters = ParametersField(
        label="Parameters as JSON (advanced)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
    )
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, rule: Rule, preview: bool = False, **kwargs):
        self.rule = rule
        self.preview = preview
        self.unit = unit_of(rule.metric)
        structured = parameter_fields(
            kind=rule.kind, metric=rule.metric, unit=self.unit, parameters=rule.parameters
        )
        initial = {
            **parameter_initial(rule.parameters),
            "severity": rule.severity,
            "active": rule.active,
            "title": rule.title,
            "version": rule.version,
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.parameter_names = list(structured)
        # The parameters first, then the rest as declared.
        self.fields = {**structured, **self.fields}
        self.fields["parameters"].help_text = (
            "Leave empty to use the fields above. Filled in, it replaces them: "
            + rule_kinds.parameters_help(rule.kind)
        )
        if self.advanced:
            for name in self.parameter_names:
                self.fields[name].required = False

    @property
    def advanced(self) -> bool:
        """Whether the clinician gave the parameters as JSON."""
        return self.is_bound and bool(str(self.data.get("parameters", "")).strip())

    def parameter_fields(self):
        return [self[name] for name in self.parameter_names]

    def other_fields(self):
        return [self[name] for name in ("severity", "active", "title", "note")]

    def clean(self):
        data = super().clean()
        if data.get("version") is not None and data["version"] != self.rule.version:
            self.add_stale_error(self.rule.version)
            return data
        if not self.advanced:
            if any(name in self.errors for name in self.parameter_names):
                return data
            data["parameters"] = parameters_from(
                {name: data.get(name) for name in self.parameter_names}, self.rule.parameters
            )
        if data.get("parameters") is None:
            return data
        if not self.preview and not self.changes():
            raise ValidationError("Nothing changed.", code="unchanged")
        if self.preview or "parameters" in self.changes():
            try:
                data["parameters"] = rule_kinds.validate_parameters(
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
        """InvalidParameters' reasons: on the field of the parameter each names (the JSON
        field when the parameters came as JSON; the form's own errors for a parameter with
        no field)."""
        for name, messages in errors.items():
            field = None if self.advanced else self._field_of(name)
            for message in messages:
                if field is not None:
                    self.add_error(field, message)
                elif self.advanced:
                    self.add_error(
                        "parameters", message if name == "parameters" else f"{name}: {message}"
                    )
                else:
                    self.add_error(None, message if name == "parameters" else f"{name}: {message}")

    def _field_of(self, name: str) -> str | None:
        if name in self.parameter_names:
            return name
        return next(
            (
                field
                for field in self.parameter_names
                if field.startswith(f"{name}.") or field.startswith(f"{name}[")
            ),
            None,
        )


# --- The rule's history in words ----------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    at: str
    by: str
    changes: list[str]
    note: str


def rule_history(
    rule: Rule, revisions: list[RuleRevision], *, zone, viewer_zone=None
) -> list[HistoryEntry]:
    """The rule's versions, newest first, each as what changed from the version before, in
    words (“Alert when glucose is below 54 mg/dL” to “… below 50 mg/dL”), who changed it and
    when (on the patient's clock, and the viewer's beside it when it differs). Version 1 says
    what the rule started as."""
    unit = unit_of(rule.metric)
    entries = []
    previous = None
    for revision in sorted(revisions, key=lambda revision: revision.version):
        said = rule_kinds.sentence(rule, revision.parameters, unit=unit, severity=revision.severity)
        if previous is None:
            changes = [f"Started as: {said}."]
            if not revision.active:
                changes.append("Inactive.")
        else:
            changes = []
            before = rule_kinds.sentence(
                rule, previous.parameters, unit=unit, severity=previous.severity
            )
            if said != before:
                changes.append(f"Changed from “{before}” to “{said}”.")
            if revision.active != previous.active:
                changes.append("Switched on." if revision.active else "Switched off.")
            if not changes:
                changes.append("Saved with no change to what it does.")
        entries.append(
            HistoryEntry(
                version=revision.version,
                at=format_instant_for(revision.changed_at, zone, viewer_zone),
                by=_person(revision.changed_by),
                changes=changes,
                note=revision.note,
            )
        )
        previous = revision
    return entries[::-1]


def _person(user) -> str:
    if user is None:
        return "Vigil (protocol default)"
    return user.get_full_name() or user.get_username()


class DeviceRegisterForm(forms.Form):
    kind = forms.ChoiceField(choices=DeviceKind.choices)
    model = forms.CharField(max_length=120, required=False)
    serial = forms.CharField(max_length=120)
