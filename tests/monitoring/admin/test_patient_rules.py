"""The patient page in the admin (monitoring/admin/patients.py): the rules beside their
defaults, and tailoring them — through the admin's own URLs, on real PostgreSQL.

Staff act through their roles (alerts.teams: the role groups, narrowed to each team): a
coordinator enrols and handles credentials, a physician tailors rules, a nurse reads.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import timedelta

from monitoring.models import (
    Rule,
)
from monitoring.patient_rules import apply_protocols
from tests.monitoring.admin.patients_helpers import (  # noqa: F401
    change_url,
    coordinator_client,
    physician_client,
    rule_url,
)

# --- Rules --------------------------------------------------------------------------------


def test_the_rules_show_the_protocol_default_and_its_source_beside_the_patients_value(
    physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")

    page = physician_client.get(change_url(patient)).content.decode()
    rule_page = physician_client.get(rule_url(rule)).content.decode()

    row = re.search(r'<tr data-rule="hypoglycemia_level_1".*?</tr>', page, re.S)[0]
    assert "Warn when glucose is at or above 54 mg/dL and below 70 mg/dL" in row
    assert "blood_glucose.thresholds.hypoglycemia_level_1" in row
    assert rule.source in row
    assert "Reference: blood_glucose.thresholds.hypoglycemia_level_1" in rule_page
    assert f"Source: {rule.source}" in rule_page


def test_a_rule_page_states_the_problem_and_the_late_data_policy_of_its_alerts(
    physician_client, patient, settings
):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    settings.VIGIL_STALE_READING_AGE = timedelta(hours=24)

    target = physician_client.get(rule_url(patient.rules.get(key="inr_target_range")))
    critical = physician_client.get(rule_url(patient.rules.get(key="inr_critical")))
    ttr = physician_client.get(rule_url(patient.rules.get(key="inr_ttr_rosendaal")))

    assert target.context["policy_notes"] == [
        "Two-sided: a reading below the range feeds the “Low INR” alert, one above it the "
        "“High INR” alert.",
        "A reading measured more than 24 hours before it arrives raises an alert only when it "
        "crosses a critical limit, titled as late with its measured time; otherwise it is "
        "stored and shown but raises nothing.",
    ]
    assert critical.context["policy_notes"][0] == (
        "Feeds the “High INR” problem: a critical alert of that problem keeps its lesser "
        "findings from paging; other problems are never held back."
    )
    assert ttr.context["policy_notes"] == []


def test_tailoring_a_rule_saves_a_new_version_with_its_revision(
    physician, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")
    tailored = {
        "conditions": [
            {"component": "value", "op": "ge", "value": 54},
            {"component": "value", "op": "lt", "value": 80},
        ],
        "match": "all",
    }

    response = physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"component": "value", "op": "ge", "value": 54},'
            ' {"component": "value", "op": "lt", "value": 80}], "match": "all"}',
            "severity": "critical",
            "active": "on",
            "title": rule.title,
            "note": "Hypoglycaemia unawareness",
            "version": "1",
        },
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.version, rule.parameters, rule.severity, rule.updated_by) == (
        2,
        tailored,
        "critical",
        physician,
    )
    assert rule.default_parameters["conditions"][1]["value"] == 70
    revisions = list(rule.revisions.order_by("version"))
    assert [(r.version, r.severity, r.changed_by, r.note) for r in revisions] == [
        (1, "warning", None, "diabetes protocol default"),
        (2, "critical", physician, "Hypoglycaemia unawareness"),
    ]
    history = physician_client.get(rule_url(rule)).content.decode()
    assert re.findall(r'<li data-version="(\d+)">', history) == ["2", "1"]
    page = physician_client.get(change_url(patient)).content.decode()
    row = re.search(r'<tr data-rule="hypoglycemia_level_1".*?</tr>', page, re.S)[0]
    assert "Glucose is at or above 54 mg/dL and below 80 mg/dL" in row  # the patient's value
    assert "Glucose is at or above 54 mg/dL and below 70 mg/dL" in row  # beside the default
    assert "tailored" in row


def test_invalid_parameters_are_named_one_by_one_and_nothing_is_saved(physician_client, patient):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = patient.rules.get(key="inr_ttr_rosendaal")

    response = physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"target_low": 3.0, "target_high": 2.0, "max_gap_days": 0,'
            ' "window_days": 183, "below_percent": 65, "colour": "red"}',
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": "1",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "parameters": [
            "target_high: Must be above target_low.",
            "max_gap_days: Must be at least 1.",
            "colour: Not a parameter of this rule kind.",
        ]
    }
    assert "max_gap_days: Must be at least 1." in response.content.decode()
    rule.refresh_from_db()
    assert (rule.version, rule.parameters) == (1, rule.default_parameters)
    assert rule.revisions.count() == 1


def test_a_json_syntax_error_is_a_form_error(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")

    response = physician_client.post(
        rule_url(rule),
        {"parameters": "{conditions: <54}", "severity": "critical", "title": "x", "version": "1"},
    )

    assert response.context["form"].errors == {"parameters": ["Enter a valid JSON."]}
    rule.refresh_from_db()
    assert rule.version == 1


def test_a_change_on_top_of_a_colleagues_newer_version_is_refused(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")
    Rule.objects.filter(pk=rule.pk).update(version=2)

    response = physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"op": "lt", "value": 50}], "match": "all"}',
            "severity": "critical",
            "title": rule.title,
            "version": "1",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Someone saved version 2 of this rule since you opened it; review it below and make "
        "your change again."
    ]
    rule.refresh_from_db()
    assert rule.parameters == rule.default_parameters
    assert rule.revisions.count() == 1


def test_a_coordinator_sees_the_rules_but_cannot_tailor_them(coordinator_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")

    page = coordinator_client.get(rule_url(rule))
    response = coordinator_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"op": "lt", "value": 50}], "match": "all"}',
            "severity": "critical",
            "title": rule.title,
            "version": "1",
        },
    )

    assert page.status_code == 200
    assert page.context["form"] is None
    assert response.status_code == 403
    rule.refresh_from_db()
    assert (rule.version, rule.parameters) == (1, rule.default_parameters)
