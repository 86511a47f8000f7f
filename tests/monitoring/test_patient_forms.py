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
