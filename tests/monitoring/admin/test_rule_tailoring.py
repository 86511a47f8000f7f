"""Tailoring a rule in words (issue 14.4, 14.5, 14.8): the rule page's form generated from the
kind's parameter schema, the kind's reasons on the fields they name, the 30-day preview
(exact N and M on a built history), and the rule's history in words — through the admin's
own URLs, on real PostgreSQL."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from alerts.models import AlertStatus
from monitoring.evaluation import unit_of
from monitoring.models import Rule
from monitoring.patient_forms import parameter_fields
from monitoring.patient_rules import apply_protocols, change_rule
from monitoring.protocols import protocol_templates
from tests.factories import AlertFactory
from tests.monitoring.admin.patients_helpers import (  # noqa: F401
    NOW,
    coordinator_client,
    frozen,
    physician_client,
    rule_url,
    stored,
)

DEFAULTS = {t.key: t for templates in protocol_templates().values() for t in templates}

# --- The form's fields, from each kind's schema ---------------------------------------------

FIELDS = {
    "hypoglycemia_level_1": [
        ("conditions[0].op", "ChoiceField", "When glucose is"),
        ("conditions[0].value", "FloatField", "Limit (mg/dL)"),
        ("conditions[1].op", "ChoiceField", "When glucose is"),
        ("conditions[1].value", "FloatField", "Limit (mg/dL)"),
        ("match", "ChoiceField", "Fires when"),
    ],
    "bp_crisis": [
        ("conditions[0].op", "ChoiceField", "When systolic is"),
        ("conditions[0].value", "FloatField", "Limit (mmHg)"),
        ("conditions[1].op", "ChoiceField", "When diastolic is"),
        ("conditions[1].value", "FloatField", "Limit (mmHg)"),
        ("match", "ChoiceField", "Fires when"),
    ],
    "bp_home_avg_above_goal": [
        ("conditions[0].op", "ChoiceField", "When systolic is"),
        ("conditions[0].value", "FloatField", "Limit (mmHg)"),
        ("conditions[1].op", "ChoiceField", "When diastolic is"),
        ("conditions[1].value", "FloatField", "Limit (mmHg)"),
        ("match", "ChoiceField", "Fires when"),
        ("window_days", "FloatField", "Over the last (days)"),
        ("min_readings", "IntegerField", "From at least (readings)"),
    ],
    "hf_gain_1_day": [
        ("window_days", "IntegerField", "Within (days)"),
        ("delta", "FloatField", "Amount (kg)"),
        ("direction", "ChoiceField", "When weight"),
        ("op", "ChoiceField", "By"),
    ],
    "inr_low_nice_marker": [
        ("conditions[0].op", "ChoiceField", "When INR is"),
        ("conditions[0].value", "FloatField", "Limit"),
        ("count", "IntegerField", "In (readings)"),
        ("within_days", "FloatField", "Within (days)"),
    ],
    "weight_missing": [("silent_hours", "FloatField", "No reading for (hours)")],
    "dose_taking_rate_7_days": [
        ("window_days", "FloatField", "Over the last (days)"),
        ("below_percent", "FloatField", "Below (%)"),
    ],
    "doses_missed_consecutively": [
        ("count", "IntegerField", "In a row"),
        ("medications", "CharField", "Medications (ids, comma-separated)"),
    ],
    "cgm_tbr_lt54": [
        ("band.lower.value", "FloatField", "Band from (mg/dL)"),
        ("band.lower.inclusive", "BooleanField", "including it"),
        ("band.upper.value", "FloatField", "Band to (mg/dL)"),
        ("band.upper.inclusive", "BooleanField", "including it"),
        ("target.op", "ChoiceField", "Target: the measure stays"),
        ("target.value", "FloatField", "Target (%)"),
        ("window_days", "FloatField", "Over the last (days)"),
        ("min_days", "FloatField", "Judged with at least (days)"),
        ("min_percent_active", "FloatField", "and at least (% of readings)"),
        ("sensor_interval_minutes", "FloatField", "Sensor reading every (minutes)"),
    ],
    "inr_ttr_rosendaal": [
        ("target_low", "FloatField", "Target range from"),
        ("target_high", "FloatField", "Target range to"),
        ("max_gap_days", "IntegerField", "Gaps between results not counted over (days)"),
        ("window_days", "FloatField", "Over the last (days)"),
        ("below_percent", "FloatField", "Below (%)"),
    ],
}


def fields_of(kind: str, metric: str, parameters: dict):
    fields = parameter_fields(kind=kind, metric=metric, unit=unit_of(metric), parameters=parameters)
    return [(name, type(field).__name__, field.label) for name, field in fields.items()]


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_the_form_has_one_field_per_parameter_of_the_kinds_schema(key):
    template = DEFAULTS[key]

    assert fields_of(template.kind, template.metric, template.parameters) == FIELDS[key]


def test_a_sustained_rule_asks_for_a_count_or_a_duration():
    fields = parameter_fields(
        kind="sustained",
        metric="glucose",
        unit="mg/dL",
        parameters={"conditions": [{"op": "lt", "value": 70}], "count": 3},
    )

    assert [(name, field.label, field.required) for name, field in fields.items()] == [
        ("conditions[0].op", "When glucose is", True),
        ("conditions[0].value", "Limit (mg/dL)", True),
        ("count", "For (readings in a row)", False),
        ("duration_minutes", "Or for at least (minutes)", False),
    ]
    assert fields["count"].help_text == "A whole number, at least 2; may be left empty."


def test_every_kind_has_its_fields_tested():
    tested = {DEFAULTS[key].kind for key in FIELDS} | {"sustained"}
    assert tested == {t.kind for t in DEFAULTS.values()} | {"sustained"}


def test_operators_are_offered_as_words(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")

    page = physician_client.get(rule_url(rule)).content.decode()

    row = re.search(
        r'<div class="form-row" data-parameter="conditions\[1\].op">.*?</div>\s*</div>', page, re.S
    )[0]
    assert re.findall(r'<option value="(\w+)"( selected)?>([^<]+)</option>', row) == [
        ("lt", " selected", "below"),
        ("le", "", "at or below"),
        ("gt", "", "above"),
        ("ge", "", "at or above"),
    ]
    assert 'value="70"' in page and "Limit (mg/dL)" in page
    assert "Warn when glucose is at or above 54 mg/dL and below 70 mg/dL" in page


# --- Tailoring through the form -----------------------------------------------------------


def tailoring(rule: Rule, **fields) -> dict:
    """The form as the page shows it for `rule`, with `fields` changed."""
    data = {
        "conditions[0].op": "ge",
        "conditions[0].value": "54",
        "conditions[1].op": "lt",
        "conditions[1].value": "70",
        "match": "all",
        "severity": rule.severity,
        "active": "on",
        "title": rule.title,
        "note": "",
        "parameters": "",
        "version": str(rule.version),
        "save": "Save a new version",
    }
    return data | fields


def test_a_threshold_tailored_in_words_saves_a_new_version_with_its_revision(
    physician, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")

    response = physician_client.post(
        rule_url(rule),
        tailoring(rule, **{"conditions[1].value": "80", "note": "Hypoglycaemia unawareness"}),
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.version, rule.parameters, rule.updated_by) == (
        2,
        {
            "conditions": [
                {"component": "value", "op": "ge", "value": 54},
                {"component": "value", "op": "lt", "value": 80},
            ],
            "match": "all",
        },
        physician,
    )
    assert [(r.version, r.changed_by, r.note) for r in rule.revisions.order_by("version")] == [
        (1, None, "diabetes protocol default"),
        (2, physician, "Hypoglycaemia unawareness"),
    ]


def test_the_kinds_reasons_land_on_the_fields_they_name_and_nothing_is_saved(
    physician_client, patient
):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = patient.rules.get(key="inr_ttr_rosendaal")

    response = physician_client.post(
        rule_url(rule),
        {
            "target_low": "3",
            "target_high": "2",
            "max_gap_days": "0",
            "window_days": "183",
            "below_percent": "sixty",
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": "1",
            "save": "Save a new version",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"below_percent": ["Enter a number."]}
    response = physician_client.post(
        rule_url(rule),
        {
            "target_low": "3",
            "target_high": "2",
            "max_gap_days": "0",
            "window_days": "183",
            "below_percent": "65",
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": "1",
            "save": "Save a new version",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "target_high": ["Must be above target_low."],
        "max_gap_days": ["Must be at least 1."],
    }
    html = response.content.decode()
    row = re.search(r'data-parameter="max_gap_days">.*?</div>', html, re.S)[0]
    assert "Must be at least 1." in row
    rule.refresh_from_db()
    assert (rule.version, rule.parameters) == (1, rule.default_parameters)
    assert rule.revisions.count() == 1


def test_an_unchanged_form_is_refused_and_nothing_is_saved(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")

    response = physician_client.post(rule_url(rule), tailoring(rule))

    assert response.context["form"].non_field_errors() == ["Nothing changed."]
    assert rule.revisions.count() == 1


# --- The preview --------------------------------------------------------------------------


@pytest.fixture
def hypo_history(frozen, patient):
    """The last 30 days of a patient with a level-2 hypoglycaemia rule: glucose of 60, 50,
    48, 60, 52, 60 mg/dL two days apart (and a 40 from 40 days ago), two alerts of the rule in
    the 30 days and one before."""
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")
    readings = [
        stored(patient, "glucose", NOW - timedelta(days=days), value=value, unit="mg/dL")
        for days, value in ((40, 40), (12, 60), (10, 50), (8, 48), (6, 60), (4, 52), (2, 60))
    ]
    for reading in readings:
        reading.save()
    for days in (41, 10, 4):
        AlertFactory(
            patient=patient,
            rule=rule,
            status=AlertStatus.RESOLVED,
            first_triggered_at=NOW - timedelta(days=days),
        )
    return rule


def preview(client, rule, value: str):
    return client.post(
        rule_url(rule),
        {
            "conditions[0].op": "lt",
            "conditions[0].value": value,
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": str(rule.version),
            "preview": "Preview the last 30 days",
        },
    )


@pytest.mark.parametrize(
    ("value", "would_fire", "text"),
    [
        # 50 and 48 are one alert (no reading clears between them), 52 another.
        ("54", 2, "Over the last 30 days this would have fired 2 times (it fired 2 times)."),
        ("49", 1, "Over the last 30 days this would have fired once (it fired 2 times)."),
        ("45", 0, "Over the last 30 days this would have fired 0 times (it fired 2 times)."),
    ],
)
def test_the_preview_replays_the_candidate_over_the_last_30_days(
    physician_client, hypo_history, value, would_fire, text
):
    response = preview(physician_client, hypo_history, value)

    assert response.status_code == 200
    shown = response.context["preview"]
    assert (shown.would_fire, shown.fired, shown.readings, shown.text) == (
        would_fire,
        2,
        6,
        text,
    )
    assert text in response.content.decode()
    hypo_history.refresh_from_db()
    assert hypo_history.version == 1  # previewed, not saved
    assert hypo_history.revisions.count() == 1


def test_a_dose_adherence_rule_has_no_replay_but_says_how_often_it_fired(
    physician_client, patient, frozen
):
    apply_protocols(patient=patient, codes=["heart_failure"])
    rule = patient.rules.get(key="dose_taking_rate_7_days")

    response = physician_client.post(
        rule_url(rule),
        {
            "window_days": "7",
            "below_percent": "70",
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": "1",
            "preview": "Preview",
        },
    )

    assert response.context["preview"].text == (
        "This kind of rule is evaluated from closed schedule slots: there is no preview. "
        "Over the last 30 days it fired 0 times."
    )


# --- History ------------------------------------------------------------------------------


def test_the_history_says_who_changed_what_from_what_to_what_and_when(
    physician, physician_client, patient, frozen
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")
    physician.first_name, physician.last_name = "Petra", "Physician"
    physician.save()
    change_rule(
        rule=rule,
        user=physician,
        parameters={"conditions": [{"component": "value", "op": "lt", "value": 50}]},
        severity="warning",
        note="Tolerates lower values.",
    )
    change_rule(rule=rule, user=physician, active=False)
    physician_client.cookies["vigil_tz"] = "Europe/Berlin"  # the viewer's browser zone

    response = physician_client.get(rule_url(rule))

    assert [(e.version, e.at, e.by, e.changes, e.note) for e in response.context["history"]] == [
        (
            3,
            "1 Mar 2026, 07:00 EST · 13:00 CET your time",
            "Petra Physician",
            ["Switched off."],
            "",
        ),
        (
            2,
            "1 Mar 2026, 07:00 EST · 13:00 CET your time",
            "Petra Physician",
            [
                "Changed from “Alert when glucose is below 54 mg/dL” to “Warn when glucose is "
                "below 50 mg/dL”."
            ],
            "Tolerates lower values.",
        ),
        (
            1,
            "1 Mar 2026, 07:00 EST · 13:00 CET your time",
            "Vigil (protocol default)",
            ["Started as: Alert when glucose is below 54 mg/dL."],
            "diabetes protocol default",
        ),
    ]
    html = response.content.decode()
    assert re.findall(r'<li data-version="(\d+)">', html) == ["3", "2", "1"]
    assert "Reason: Tolerates lower values." in html
    assert '"op"' not in html and "conditions" not in html.split('id="rule-history"')[1]


def test_the_rule_records_history_button_leads_to_the_rules_history(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")

    response = physician_client.get(reverse("admin:monitoring_rule_history", args=[rule.pk]))

    assert response.status_code == 302
    assert response["Location"] == f"{rule_url(rule)}#rule-history"


def test_another_teams_rule_history_is_not_found(physician_client, other_patient):
    apply_protocols(patient=other_patient, codes=["diabetes"])
    rule = other_patient.rules.get(key="hypoglycemia_level_2")

    response = physician_client.get(reverse("admin:monitoring_rule_history", args=[rule.pk]))

    assert response.status_code == 404


def test_the_rule_record_says_what_the_rule_does(physician_client, patient):
    apply_protocols(patient=patient, codes=["heart_failure"])
    rule = patient.rules.get(key="dose_taking_rate_7_days")

    page = physician_client.get(reverse("admin:monitoring_rule_change", args=[rule.pk]))

    assert page.status_code == 200
    assert (
        "Flag when fewer than 80 % of scheduled doses are taken over the last 7 days"
        in page.content.decode()
    )
