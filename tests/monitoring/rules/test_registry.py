"""The registry of rule kinds: every kind declares one Kind, the database's list of kinds is
the registry's, the parameters' JSON Schema accepts every protocol default as its own kind's
and refuses what the kind refuses, and no module outside a kind's own names it."""

import re
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft7Validator, Draft202012Validator

from monitoring import rules
from monitoring.models import RuleKind
from monitoring.protocols import protocol_templates
from monitoring.rules import KINDS, InvalidParameters, schema_errors, validate_parameters
from monitoring.rules.base import ON_READING, ON_SCHEDULE, ON_SLOT_CLOSING, Kind

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = [template for templates in protocol_templates().values() for template in templates]


def test_the_databases_rule_kinds_are_the_registrys():
    assert RuleKind.choices == rules.choices()


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_is_declared_by_its_own_module(name):
    kind = KINDS[name]
    module = __import__(f"monitoring.rules.{name}", fromlist=["KIND"])

    assert isinstance(kind, Kind)
    assert module.KIND is kind
    assert kind.triggers and kind.triggers <= {ON_READING, ON_SCHEDULE, ON_SLOT_CLOSING}
    Draft202012Validator.check_schema(kind.parameters_schema)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_protocol_default_is_valid_for_its_kind_and_only_for_it(template):
    assert (
        validate_parameters(template.kind, template.parameters, metric=template.metric)
        == template.parameters
    )
    matching = [name for name in KINDS if not schema_errors(name, template.parameters)]
    assert matching == [template.kind]


@pytest.mark.parametrize("name", list(KINDS))
def test_a_kinds_schema_requires_its_parameters(name):
    with pytest.raises(InvalidParameters):
        validate_parameters(name, {}, metric="glucose")
    assert schema_errors(name, {})
    assert schema_errors(name, {"not_a_parameter": 1})


def test_what_the_schema_refuses_is_refused_with_the_parameter_it_concerns():
    # The kind's own check takes a boolean for a number (Python's True is an int); the
    # schema does not.
    parameters = {
        **next(t.parameters for t in TEMPLATES if t.kind == "cgm_summary"),
        "target": {"op": "lt", "value": True},
    }

    with pytest.raises(InvalidParameters) as refused:
        validate_parameters("cgm_summary", parameters, metric="glucose")

    assert list(refused.value.errors) == ["target.value"]


def test_the_openapi_document_shows_the_kinds_schema_for_rule_parameters():
    document = SchemaGenerator().get_schema(request=None, public=True)
    components = document["components"]["schemas"]
    expected = rules.openapi_parameters_schema()

    for component in ("Rule", "RuleCreateRequest", "PatchedRuleChangeRequest"):
        assert components[component]["properties"]["parameters"] == expected
    assert len(expected["oneOf"]) == len(KINDS)
    # OpenAPI 3.0's schema dialect is Draft 4-like: no "null" type, no `const`.
    Draft7Validator.check_schema(expected)
    assert '"null"' not in str(expected).replace("'", '"')


# Files that may name a kind besides its own module and the registry: the database's list
# of names (checked equal to the registry above) and its migrations. Protocols name kinds
# as data, in monitoring/protocols.yaml.
MAY_NAME_KINDS = {
    "monitoring/models/rules.py",
    "monitoring/rules/__init__.py",
}


def test_no_module_names_a_kind_but_its_own():
    names = "|".join(KINDS)
    pattern = re.compile(rf"""["']({names})["']|RuleKind\.[A-Z]""")
    offenders = []
    for package in ("monitoring", "alerts", "config", "delivery"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative in MAY_NAME_KINDS:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for match in pattern.finditer(line):
                    own = f"monitoring/rules/{match.group(1)}.py"
                    if relative != own:
                        offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []
