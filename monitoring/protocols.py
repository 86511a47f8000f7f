"""Protocol defaults: the rules a condition's patients start with.

protocols.yaml writes each default rule as its kind stores it (kind, metric, parameters)
and names, for every number in it, the clinical.yaml entry that number comes from. Loading
holds each number to that entry (operator, value, unit) and each template's parameters to
its kind's schema, so a default that drifts from the reference, a number with no source or
parameters the kind would refuse fail when the protocols load (and in the tests), never on
a patient's rule. Nothing here reads prose: the reference states its numbers as data
(clinical.yaml `limits`, bounds, plain numbers). Each template keeps its reference path and
sources, which the patient's copy of the rule shows to clinicians.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from monitoring.rules import validate_parameters
from monitoring.units import load_reference, metric_units

PROTOCOLS_PATH = Path(__file__).with_name("protocols.yaml")
# A bound {value, inclusive} (clinical.yaml range_notation) as the operator of a rule that
# fires inside it.
BOUND_OPS = {
    ("lower", True): "ge",
    ("lower", False): "gt",
    ("upper", True): "le",
    ("upper", False): "lt",
}
# Units of the reference that a parameter counts in another unit: UCUM "mo" is the mean
# Julian month (365.25 / 12 days); windows are whole days. Calendar arithmetic, not clinical.
IN_DAYS = {"mo": 365.25 / 12}
# Units a parameter may take from the reference as they are, whatever the metric: time,
# percentages, and counts (UCUM annotations such as {doses}).
UNITS_AS_GIVEN = {"d", "min", "%"}


class ReferenceMismatch(ValueError):
    """protocols.yaml and clinical.yaml do not fit together."""


@dataclass(frozen=True)
class RuleTemplate:
    key: str  # unique among one patient's rules
    protocol: str
    kind: str
    metric: str
    severity: str
    group: str
    title: str
    parameters: dict
    reference: str  # clinical.yaml path, or "" for an engineering choice
    source: str  # evidence status and sources, shown beside the rule


def resolve(path: str, reference: dict | None = None) -> object:
    """The clinical.yaml node at a dotted path; a list item by position or by its `id`."""
    node: object = load_reference() if reference is None else reference
    for part in path.split("."):
        if isinstance(node, list):
            node = (
                node[int(part)] if part.isdigit() else next(e for e in node if e.get("id") == part)
            )
        else:
            node = node[part]
    return node


def _at(parameters: dict, path: str) -> object:
    node: object = parameters
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _numbers_in(node: object, path: str = "") -> Iterator[str]:
    """The path of every number in a parameters tree."""
    if isinstance(node, dict):
        for name, child in node.items():
            yield from _numbers_in(child, f"{path}.{name}" if path else name)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _numbers_in(child, f"{path}.{index}" if path else str(index))
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path


def stated_limit(path: str, reference: dict | None = None) -> dict:
    """What the reference states at `path`, as {op?, value, unit?}.

    A `limits` entry is that already; a bound {value, inclusive} under `lower`/`upper` gives
    the operator of a rule firing inside it and its entry's unit; a plain number is a value.
    """
    node = resolve(path, reference)
    if isinstance(node, dict) and "inclusive" in node:
        parent, _, side = path.rpartition(".")
        entry = resolve(parent, reference)
        return {"op": BOUND_OPS[side, node["inclusive"]], "value": node["value"]} | (
            {"unit": entry["unit"]} if "unit" in entry else {}
        )
    if isinstance(node, dict):
        return node
    return {"value": node}


def _in_parameter_units(limit: dict, *, metric: str, where: str) -> object:
    unit = limit.get("unit")
    if unit in IN_DAYS:
        return round(limit["value"] * IN_DAYS[unit])
    canonical = metric_units()[metric].canonical_unit if metric in metric_units() else None
    if unit is None or unit in UNITS_AS_GIVEN or unit == canonical or unit.startswith("{"):
        return limit["value"]
    raise ReferenceMismatch(f"{where} is in {unit}; {metric} rules compare {canonical}")


def check_number(given: object, source: str, *, metric: str, reference: dict | None = None):
    """Raise ReferenceMismatch unless `given` (a parameter) says what `source` states."""
    node = resolve(source, reference)
    if isinstance(given, dict) and "inclusive" in given:
        expected = node  # a band's bound: the bound itself
    elif not isinstance(node, dict):
        expected = node  # a plain value: a number, or a word such as an operator
    else:
        limit = stated_limit(source, reference)
        value = _in_parameter_units(limit, metric=metric, where=source)
        if isinstance(given, dict):  # a condition or a target: operator and value
            if "op" not in limit:
                raise ReferenceMismatch(f"{source} states no operator for {given}")
            given, expected = (given.get("op"), given.get("value")), (limit["op"], value)
        else:  # a size (a delta, a count, a window): the value
            expected = value
    if given != expected or isinstance(given, bool) != isinstance(expected, bool):
        raise ReferenceMismatch(
            f"protocols.yaml says {given!r} where {source} in clinical.yaml says {expected!r}"
        )


def _covered(path: str, sourced: set[str]) -> bool:
    """A number is sourced by its own path or by the condition/bound that holds it."""
    return any(path == name or path.startswith(f"{name}.") for name in sourced)


def check_numbers(spec: dict, reference: dict | None = None) -> None:
    """Every number of a template equals its source, and none is without one."""
    parameters, metric = spec["parameters"], spec["metric"]
    numbers = spec.get("numbers", {})
    for path, source in numbers.items():
        check_number(_at(parameters, path), source, metric=metric, reference=reference)
    if "reference" not in spec:  # an engineering choice as a whole, said in its note
        return
    sourced = set(numbers) | set(spec.get("engineering_choices", {}))
    unsourced = [path for path in _numbers_in(parameters) if not _covered(path, sourced)]
    if unsourced:
        raise ReferenceMismatch(f"{spec['key']}: numbers without a source: {unsourced}")


def _source(path: str, reference: dict | None = None) -> str:
    """The evidence status and sources of the nearest entry on the path that states them."""
    parts = path.split(".")
    entry: dict = {}
    for length in range(len(parts), 0, -1):
        candidate = resolve(".".join(parts[:length]), reference)
        if isinstance(candidate, dict) and "status" in candidate:
            entry = candidate
            break
    status = entry.get("status", "")
    sources = ", ".join(entry.get("sources", []))
    return f"{status}: {sources}" if sources else status


def build_template(protocol: str, spec: dict, reference: dict | None = None) -> RuleTemplate:
    check_numbers(spec, reference)
    # The kind's own schema: a default its kind would refuse fails here, not on a patient.
    validate_parameters(spec["kind"], spec["parameters"], metric=spec["metric"])
    path = spec.get("reference", "")
    if path:
        entry = resolve(path, reference)
        source = _source(path, reference)
        if spec.get("status_note"):
            source += f" ({spec['status_note']})"
        severity = spec.get("severity") or (
            resolve(spec["severity_ref"], reference) if "severity_ref" in spec else entry
        ).get("severity")
    else:
        source, severity = f"{spec['status']}: {spec['note']}", spec["severity"]
    return RuleTemplate(
        key=spec["key"],
        protocol=protocol,
        kind=spec["kind"],
        metric=spec["metric"],
        severity=severity,
        group=spec["group"],
        title=spec["title"],
        # A copy: protocols share rules (YAML anchors), patients must not share a dict.
        parameters=copy.deepcopy(spec["parameters"]),
        reference=path,
        source=source,
    )


def build_templates(
    definitions: dict, reference: dict | None = None
) -> dict[str, tuple[RuleTemplate, ...]]:
    return {
        protocol: tuple(build_template(protocol, spec, reference) for spec in specs)
        for protocol, specs in definitions.items()
    }


def load_definitions() -> dict:
    with PROTOCOLS_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@cache
def protocol_templates() -> dict[str, tuple[RuleTemplate, ...]]:
    return build_templates(load_definitions())


def template_for(key: str) -> RuleTemplate:
    """The default rule with this key, from the first protocol that has it (protocols naming
    the same rule give it the same parameters: one copy per patient)."""
    for templates in protocol_templates().values():
        for template in templates:
            if template.key == key:
                return template
    raise KeyError(key)
