"""The rule tailoring form is driven by the rule kind's parameter schema: it says what the
parameters may be, and refuses what the API refuses with the same reason per parameter."""

import json

import pytest

from monitoring.patient_forms import RuleChangeForm
from tests.factories import RuleFactory

pytestmark = pytest.mark.django_db


def posted(rule, parameters) -> dict:
    return {
        "parameters": json.dumps(parameters),
        "severity": rule.severity,
        "active": "on",
        "title": rule.title,
        "version": rule.version,
    }


def test_the_form_says_what_the_kinds_parameters_may_be():
    rule = RuleFactory()

    help_text = RuleChangeForm(rule=rule).fields["parameters"].help_text

    assert help_text.startswith(
        "Leave empty to use the fields above. Filled in, it replaces them: "
        "Threshold: conditions: a list of {"
    )
    assert "op: lt | le | gt | ge" in help_text
    assert "match (optional): any | all" in help_text


def test_the_form_refuses_parameters_the_kind_refuses_naming_each_one():
    rule = RuleFactory()
    parameters = {"conditions": [{"op": "below", "value": 70}], "window_days": 3}

    form = RuleChangeForm(posted(rule, parameters), rule=rule)

    assert not form.is_valid()
    assert form.errors["parameters"] == [
        "conditions[0].op: Must be one of: lt, le, gt, ge.",
        "window_days: Not a parameter of this rule kind.",
    ]


def test_the_form_takes_parameters_the_kind_takes():
    rule = RuleFactory()
    parameters = {"conditions": [{"component": "value", "op": "lt", "value": 65}]}

    form = RuleChangeForm(posted(rule, parameters), rule=rule)

    assert form.is_valid(), form.errors
    assert form.changes() == {"parameters": parameters}


# --- The fields generated from the kind's schema ------------------------------------------


def fields_posted(rule, **fields) -> dict:
    return {
        "severity": rule.severity,
        "active": "on",
        "title": rule.title,
        "version": rule.version,
        **fields,
    }


CGM_TBR_54 = {
    "measure": "percent_in_band",
    "band": {"upper": {"value": 54, "inclusive": False}},
    "target": {"op": "lt", "value": 1},
    "window_days": 14,
    "min_days": 14,
    "min_percent_active": 70,
    "sensor_interval_minutes": 5,
}


def test_a_cgm_target_and_band_tailored_in_fields_keep_what_the_form_does_not_show():
    rule = RuleFactory(kind="cgm_summary", parameters=CGM_TBR_54)

    form = RuleChangeForm(
        fields_posted(
            rule,
            **{
                "band.upper.value": "54",
                "band.upper.inclusive": "",
                "band.lower.value": "",
                "target.op": "lt",
                "target.value": "2",
                "window_days": "14",
                "min_days": "14",
                "min_percent_active": "70",
                "sensor_interval_minutes": "5",
            },
        ),
        rule=rule,
    )

    assert form.is_valid(), form.errors
    assert form.changes() == {
        "parameters": {**CGM_TBR_54, "target": {"op": "lt", "value": 2}},
    }


def test_a_band_bound_with_a_value_and_its_inclusion_is_written_as_the_kind_keeps_it():
    rule = RuleFactory(kind="cgm_summary", parameters=CGM_TBR_54)

    form = RuleChangeForm(
        fields_posted(
            rule,
            **{
                "band.lower.value": "70",
                "band.lower.inclusive": "on",
                "band.upper.value": "180",
                "band.upper.inclusive": "on",
                "target.op": "gt",
                "target.value": "70",
                "window_days": "14",
                "min_days": "14",
                "min_percent_active": "70",
                "sensor_interval_minutes": "5",
            },
        ),
        rule=rule,
    )

    assert form.is_valid(), form.errors
    assert form.cleaned_data["parameters"]["band"] == {
        "lower": {"value": 70, "inclusive": True},
        "upper": {"value": 180, "inclusive": True},
    }


def test_a_sustained_rule_with_neither_count_nor_duration_is_told_on_the_count_field():
    rule = RuleFactory(
        kind="sustained",
        parameters={"conditions": [{"component": "value", "op": "lt", "value": 70}], "count": 3},
    )

    form = RuleChangeForm(
        fields_posted(rule, **{"conditions[0].op": "lt", "conditions[0].value": "70", "count": ""}),
        rule=rule,
    )

    assert not form.is_valid()
    assert form.errors == {"count": ["Give either 'count' or 'duration_minutes', not both."]}


def test_json_in_the_advanced_field_replaces_the_fields():
    rule = RuleFactory()

    form = RuleChangeForm(
        {
            **fields_posted(rule),
            "parameters": json.dumps(
                {"conditions": [{"op": "lt", "value": 70}, {"op": "gt", "value": 250}]}
            ),
        },
        rule=rule,
    )

    assert form.is_valid(), form.errors
    assert form.changes() == {
        "parameters": {"conditions": [{"op": "lt", "value": 70}, {"op": "gt", "value": 250}]}
    }
