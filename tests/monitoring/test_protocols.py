"""Protocol defaults against the clinical reference.

protocols.yaml writes each default rule with its numbers and names, for every number, the
clinical.yaml entry it comes from. These tests read both files here (the reference through
tests.monitoring.rules.conftest.reference, independently of monitoring.protocols) and hold
every default equal to its entry: value, operator and unit. They also prove that the rules
patients start with are exactly the ones the product gave them before the numbers became
data (protocol_defaults.json), and that a number changed in one file but not the other, or
a number with no source, stops the protocols from loading.
"""

import copy
import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from monitoring.models import ProtocolCode
from monitoring.protocols import (
    ReferenceMismatch,
    build_template,
    build_templates,
    protocol_templates,
)
from monitoring.rules import validate_parameters
from monitoring.units import load_reference, metric_units
from tests.monitoring.rules.conftest import reference

HERE = Path(__file__).resolve().parent
PROTOCOLS_YAML = HERE.parents[1] / "monitoring" / "protocols.yaml"
SPECS = yaml.safe_load(PROTOCOLS_YAML.read_text(encoding="utf-8"))
# The templates as the product built them from the prose of the reference, before its
# numbers became data (captured at commit ba5428e): the stored rules must not change.
BEFORE = json.loads((HERE / "protocol_defaults.json").read_text(encoding="utf-8"))
SOURCES = reference("sources")
SECTION_METRIC = {
    "blood_glucose": "glucose",
    "blood_pressure": "blood_pressure",
    "body_weight": "weight",
    "inr": "inr",
    "heart_rate": "heart_rate",
    "spo2": "spo2",
    "body_temperature": "temperature",
    "medication_adherence": "dose",
}
OPERATORS = {"lt", "le", "gt", "ge"}
FLIPPED = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}
# A range's bound as the operator of a rule firing inside it (clinical.yaml range_notation).
BOUND_OPS = {
    ("lower", True): "ge",
    ("lower", False): "gt",
    ("upper", True): "le",
    ("upper", False): "lt",
}
DAYS_PER_MONTH = 365.25 / 12  # UCUM "mo", the mean Julian month: calendar arithmetic
UNITS_ANY_METRIC = {"d", "mo", "min", "%"}  # time and percentages; counts are {annotations}

SPECS_BY_PROTOCOL = [(protocol, spec) for protocol, specs in SPECS.items() for spec in specs]
NUMBERS = [
    pytest.param(protocol, spec, path, source, id=f"{protocol}:{spec['key']}:{path}")
    for protocol, spec in SPECS_BY_PROTOCOL
    for path, source in spec.get("numbers", {}).items()
]
TEMPLATES = [
    pytest.param(template, id=f"{protocol}:{template.key}")
    for protocol, templates in protocol_templates().items()
    for template in templates
]


def at(parameters: dict, path: str) -> object:
    node: object = parameters
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def spec_of(template) -> dict:
    return next(spec for spec in SPECS[template.protocol] if spec["key"] == template.key)


def as_limit(source: str) -> dict:
    """What clinical.yaml states at `source`: a limit {op, value, unit} as written, a bound
    with the operator it implies and its entry's unit, or a bare value."""
    node = reference(source)
    if isinstance(node, dict) and "inclusive" in node:
        parent, _, side = source.rpartition(".")
        return {
            "op": BOUND_OPS[side, node["inclusive"]],
            "value": node["value"],
            "unit": reference(parent).get("unit"),
        }
    return node if isinstance(node, dict) else {"value": node}


def number_in_days(limit: dict) -> float:
    return round(limit["value"] * DAYS_PER_MONTH) if limit.get("unit") == "mo" else limit["value"]


def as_data(templates) -> dict:
    return {p: [dataclasses.asdict(t) for t in ts] for p, ts in templates.items()}


# --- Every default equals its reference entry ------------------------------------------------


def test_there_is_a_protocol_for_each_condition_we_enrol_patients_for():
    assert set(protocol_templates()) == set(ProtocolCode.values)


@pytest.mark.parametrize(("protocol", "spec", "path", "source"), NUMBERS)
def test_each_default_number_equals_the_reference_entry_it_names(protocol, spec, path, source):
    given = at(spec["parameters"], path)
    stated = reference(source)

    if isinstance(given, dict) and "inclusive" in given:  # a CGM band's bound, as stated
        assert given == stated
    elif isinstance(given, dict):  # a condition or a target: operator and value
        limit = as_limit(source)
        assert (given["op"], given["value"]) == (limit["op"], limit["value"])
    elif isinstance(stated, dict):  # a size: a delta, a count, a window
        assert given == number_in_days(as_limit(source))
    else:
        assert given == stated


@pytest.mark.parametrize(("protocol", "spec", "path", "source"), NUMBERS)
def test_each_default_number_is_in_a_unit_its_rule_compares(protocol, spec, path, source):
    unit = as_limit(source).get("unit")
    canonical = metric_units()[spec["metric"]].canonical_unit if spec["metric"] != "dose" else None

    assert unit is None or unit in UNITS_ANY_METRIC or unit.startswith("{") or unit == canonical
    if isinstance(at(spec["parameters"], path), dict) and "op" in at(spec["parameters"], path):
        # A measured value is compared in the metric's canonical unit (or as a percentage).
        assert unit in (canonical, "%")


@pytest.mark.parametrize(("protocol", "spec"), SPECS_BY_PROTOCOL)
def test_every_number_of_a_referenced_default_names_its_source(protocol, spec):
    if "reference" not in spec:
        assert spec["status"] == "engineering_choice" and spec["note"]
        return
    sourced = set(spec.get("numbers", {})) | set(spec.get("engineering_choices", {}))

    def numbers(node, path=""):
        if isinstance(node, dict):
            for name, child in node.items():
                yield from numbers(child, f"{path}.{name}" if path else name)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from numbers(child, f"{path}.{index}" if path else str(index))
        elif isinstance(node, int | float):
            yield path

    unsourced = [
        path
        for path in numbers(spec["parameters"])
        if not any(path == name or path.startswith(f"{name}.") for name in sourced)
    ]
    assert unsourced == []


def test_every_limit_in_the_reference_is_data_with_an_operator_a_value_and_a_unit():
    def limits(node, path=""):
        if isinstance(node, list):  # list items by id where they have one
            node = {(c.get("id", i) if isinstance(c, dict) else i): c for i, c in enumerate(node)}
        if not isinstance(node, dict):
            return
        for name, limit in node.get("limits", {}).items():
            yield f"{path}.limits.{name}", limit
        for name, child in node.items():
            yield from limits(child, f"{path}.{name}" if path else str(name))

    found = dict(limits(load_reference()))

    assert found
    for path, limit in found.items():
        assert set(limit) <= {"op", "value", "unit"}, path
        assert limit.get("op", "lt") in OPERATORS, path
        assert isinstance(limit["value"], int | float) and limit["unit"], path


# --- Behaviour unchanged ---------------------------------------------------------------------


def test_the_defaults_are_exactly_the_rules_the_product_gave_patients_before():
    # json.dumps tells 5.0 from 5: a stored rule's parameters keep their very numbers.
    assert json.dumps(as_data(protocol_templates()), sort_keys=True) == json.dumps(
        BEFORE, sort_keys=True
    )


def test_rewording_the_references_prose_changes_no_default():
    reworded = copy.deepcopy(load_reference())

    def reword(node):
        if isinstance(node, dict):
            for name, child in node.items():
                if name in ("rule", "definition", "example", "formula", "note"):
                    node[name] = "reworded"
                else:
                    reword(child)
        elif isinstance(node, list):
            for child in node:
                reword(child)

    reword(reworded)

    assert as_data(build_templates(SPECS, reworded)) == as_data(protocol_templates())


# --- A number changed in one place only stops the protocols from loading --------------------


def changed(node: object) -> object:
    """Another number (or operator) where `node` states one."""
    if isinstance(node, str):
        return FLIPPED[node]
    if isinstance(node, dict):
        return {**node, "value": node["value"] + 1}
    return node + 1


def change_at(tree: object, path: str) -> None:
    """Change the number (or operator) at a dotted path; list items by position or id."""

    def key_in(node, part):
        if not isinstance(node, list):
            return part
        return (
            int(part)
            if part.isdigit()
            else next(i for i, item in enumerate(node) if item.get("id") == part)
        )

    *parents, last = path.split(".")
    for part in parents:
        tree = tree[key_in(tree, part)]
    key = key_in(tree, last)
    tree[key] = changed(tree[key])


@pytest.mark.parametrize(("protocol", "spec", "path", "source"), NUMBERS)
def test_a_default_changed_in_protocols_yaml_alone_fails_to_load(protocol, spec, path, source):
    spec = copy.deepcopy(spec)
    change_at(spec["parameters"], path)

    with pytest.raises(ReferenceMismatch, match=source):
        build_template(protocol, spec)


@pytest.mark.parametrize(("protocol", "spec", "path", "source"), NUMBERS)
def test_a_default_changed_in_clinical_yaml_alone_fails_to_load(protocol, spec, path, source):
    edited = copy.deepcopy(load_reference())
    change_at(edited, source)

    with pytest.raises(ReferenceMismatch, match=source):
        build_template(protocol, spec, edited)


def test_a_default_whose_reference_states_another_unit_fails_to_load():
    edited = copy.deepcopy(load_reference())
    gain = next(e for e in edited["body_weight"]["thresholds"] if e["id"] == "hf_gain_1_day")
    gain["limits"]["gain"]["unit"] = "[lb_av]"  # 0.9 lb is not the 0.9 kg weight rules compare
    spec = next(s for s in SPECS["heart_failure"] if s["key"] == "hf_gain_1_day")

    with pytest.raises(ReferenceMismatch, match=r"\[lb_av\]"):
        build_template("heart_failure", spec, edited)


def test_a_number_without_a_source_fails_to_load():
    spec = copy.deepcopy(next(s for s in SPECS["hypertension"] if s["key"] == "bp_crisis"))
    spec["parameters"]["conditions"].append({"component": "systolic", "op": "gt", "value": 170})

    with pytest.raises(ReferenceMismatch, match="without a source"):
        build_template("hypertension", spec)


def test_parameters_their_kind_refuses_fail_to_load():
    spec = copy.deepcopy(next(s for s in SPECS["heart_failure"] if s["key"] == "weight_missing"))
    spec["parameters"]["silent_hours"] = -36

    with pytest.raises(Exception):  # noqa: B017 - whichever error the kind's schema raises
        build_template("heart_failure", spec)


# --- The templates themselves ----------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_is_valid_parameters_for_its_kind(template):
    assert validate_parameters(template.kind, template.parameters, metric=template.metric) == (
        template.parameters
    )


@pytest.mark.parametrize("protocol", list(protocol_templates()))
def test_keys_are_unique_within_a_protocol(protocol):
    counts = Counter(template.key for template in protocol_templates()[protocol])

    assert [key for key, count in counts.items() if count > 1] == []


def test_a_key_shared_by_protocols_is_the_same_rule_in_each():
    by_key: dict[str, set] = {}
    for templates in protocol_templates().values():
        for template in templates:
            shape = (template.kind, template.metric, template.severity, template.group)
            by_key.setdefault(template.key, set()).add((shape, yaml.safe_dump(template.parameters)))

    assert {key: len(shapes) for key, shapes in by_key.items() if len(shapes) > 1} == {}


def test_patients_do_not_share_a_templates_parameters():
    first, second, *_ = [
        template
        for templates in protocol_templates().values()
        for template in templates
        if template.key == "dose_taking_rate_7_days"
    ]

    assert first.parameters == second.parameters and first.parameters is not second.parameters


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_keeps_its_reference_path_and_the_metric_of_that_section(template):
    spec = spec_of(template)

    assert template.reference == spec.get("reference", "")
    if template.reference:
        assert template.metric == SECTION_METRIC[template.reference.split(".")[0]]
    else:
        assert template.metric == spec["metric"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_templates_severity_is_its_reference_entrys_or_a_declared_engineering_choice(
    template,
):
    spec = spec_of(template)
    entry = reference(spec["reference"]) if "reference" in spec else {}

    if "severity" in entry:
        assert "severity" not in spec
        assert template.severity == entry["severity"]
    elif "severity_ref" in spec:
        assert template.severity == reference(spec["severity_ref"])["severity"]
    else:
        assert template.severity == spec["severity"]
        assert "engineering choice" in template.source or template.source.startswith(
            "engineering_choice"
        )


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_states_its_evidence_and_every_source_it_names_exists(template):
    spec = spec_of(template)
    if "reference" not in spec:
        assert template.source == f"engineering_choice: {spec['note']}"
        return
    # The status and sources of the nearest entry on the path that states them.
    parts = spec["reference"].split(".")
    entry = next(
        candidate
        for candidate in (reference(".".join(parts[:n])) for n in range(len(parts), 0, -1))
        if isinstance(candidate, dict) and "status" in candidate
    )
    status, _, named = template.source.partition(": ")
    named_sources = named.split(" (")[0]

    assert status == entry["status"]
    assert named_sources.split(", ") == entry.get("sources", [""])
    assert all(source in SOURCES for source in entry.get("sources", []))
