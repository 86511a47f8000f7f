"""Rule kinds, one module each, each declaring its Kind (see base.py); the registry.

Evaluation, charts, pages and the API ask the registry about a rule's kind (kind_of(rule),
KINDS[name]) and never compare kind names: adding a kind is one module, listed here, and
its tests.
"""

from __future__ import annotations

import json
from functools import cache

from jsonschema import Draft202012Validator

from monitoring.rules import (
    adherence,
    average,
    cgm_summary,
    count_in_window,
    inr_ttr,
    missing_data,
    rate_of_change,
    sustained,
    threshold,
    words,
)
from monitoring.rules.base import (
    ON_READING,
    ON_SCHEDULE,
    ON_SLOT_CLOSING,
    InvalidParameters,
    Kind,
    describe_parameters,
)
from monitoring.units import format_number

KINDS: dict[str, Kind] = {
    module.KIND.name: module.KIND
    for module in (
        threshold,
        sustained,
        count_in_window,
        rate_of_change,
        average,
        missing_data,
        adherence,
        cgm_summary,
        inr_ttr,
    )
}


def kind_of(rule) -> Kind:
    """The kind of a rule (or of anything with a `kind` name: a protocol's rule template)."""
    return KINDS[rule.kind]


def choices() -> list[tuple[str, str]]:
    """(name, label) of every kind, as RuleKind's choices hold them."""
    return [(kind.name, kind.label) for kind in KINDS.values()]


def is_scheduled(kind: str) -> bool:
    """Scheduled kinds are evaluated by the clock (a sweep), not only on each new reading."""
    return KINDS[kind].runs(ON_SCHEDULE)


def names_running(trigger: str) -> list[str]:
    """The names of the kinds that run on `trigger` (ON_READING …), for a query's filter."""
    return sorted(name for name, kind in KINDS.items() if kind.runs(trigger))


def validate_parameters(kind: str, parameters: object, *, metric: str) -> dict:
    """The parameters, checked: by the kind (a reason per parameter) and against its JSON
    Schema (what the API documents). Raises InvalidParameters."""
    if kind not in KINDS:
        raise InvalidParameters({"kind": [f"Must be one of: {', '.join(KINDS)}."]})
    if _holds_null_character(parameters):
        # PostgreSQL's jsonb cannot store U+0000 (the insert fails), even in a part of the
        # parameters a kind does not read, such as an extra key inside a condition.
        raise InvalidParameters({"parameters": ["Null characters are not allowed."]})
    parameters = KINDS[kind].validate(parameters, metric=metric)
    errors = schema_errors(kind, parameters)
    if errors:
        raise InvalidParameters(errors)
    return parameters


def schema_errors(kind: str, parameters: object) -> dict[str, list[str]]:
    """What the kind's JSON Schema finds wrong, per parameter ("parameters": the whole)."""
    errors: dict[str, list[str]] = {}
    for error in _validator(kind).iter_errors(parameters):
        name = _parameter_name(error.absolute_path)
        errors.setdefault(name, []).append(error.message)
    return errors


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(KINDS[kind].parameters_schema)


def _parameter_name(path) -> str:
    """A path in the parameters as the kinds name it: conditions[0].op, band.lower."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "parameters"


def parameters_schema() -> dict:
    """JSON Schema of a rule's `parameters`: one of the kinds' (the rule's `kind` says which).
    The OpenAPI document shows it for the rule endpoints (monitoring/serializers.py)."""
    return {
        "type": "object",
        "description": (
            "The rule kind's parameters, in the metric's canonical unit; which schema applies "
            "is given by the rule's `kind`."
        ),
        "oneOf": [{**kind.parameters_schema, "title": kind.name} for kind in KINDS.values()],
    }


def openapi_parameters_schema() -> dict:
    """parameters_schema() in OpenAPI 3.0's dialect (what drf-spectacular writes): a null
    allowed is `nullable`, not a "null" type."""
    return _openapi_30(parameters_schema())


def _openapi_30(schema):
    if isinstance(schema, list):
        return [_openapi_30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _openapi_30(value) for key, value in schema.items()}
    kind = schema.get("type")
    if kind == "null":
        return {"enum": [None], "nullable": True}
    if isinstance(kind, list):
        others = [name for name in kind if name != "null"]
        schema["type"] = others[0]
        schema["nullable"] = "null" in kind
    if None in schema.get("enum", []):
        schema["nullable"] = True
    for combiner in ("anyOf", "oneOf"):
        branches = schema.get(combiner, [])
        if any(branch.get("nullable") and branch.get("enum") == [None] for branch in branches):
            schema[combiner] = [b for b in branches if b.get("enum") != [None]]
            schema["nullable"] = True
    return schema


def parameters_help(kind: str) -> str:
    """The kind's parameters in words, from its JSON Schema (the tailoring form's help):
    "window_days: a number ≥ 1; min_readings: a whole number ≥ 1; …"."""
    return _shape(KINDS[kind].parameters_schema, top=True)


def _shape(schema: dict, *, top: bool = False) -> str:
    for combiner in ("oneOf", "anyOf"):
        if combiner in schema and "properties" not in schema:
            return " — or — ".join(_shape(branch, top=top) for branch in schema[combiner])
    if "enum" in schema:
        return " | ".join("null" if v is None else str(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):  # ["integer", "null"]: may be left out
        return _shape({**schema, "type": next(name for name in kind if name != "null")})
    if kind == "string":
        return "text"
    if kind in ("number", "integer"):
        words = "a whole number" if kind == "integer" else "a number"
        if "minimum" in schema:
            words += f" ≥ {format_number(schema['minimum'])}"
        return words
    if kind == "array":
        return f"a list of {_shape(schema.get('items', {}))}"
    if "properties" in schema:
        required = set(schema.get("required", ()))
        parts = [
            f"{name}{'' if name in required else ' (optional)'}: {_shape(part)}"
            for name, part in schema["properties"].items()
        ]
        title = f"{schema['title']}: " if top and "title" in schema else ""
        return title + ("; ".join(parts) if top else "{" + ", ".join(parts) + "}")
    return schema.get("description", "any value")


def describe(kind: str, parameters: object, *, unit: str, metric: str = "") -> str:
    """The rule's parameters in a clinician's words, as the kind says them ("glucose is below
    54 mg/dL"); None: "", not an object: its JSON; parameters the kind cannot word (stored
    before a check): its generic description."""
    if parameters is None:
        return ""
    if not isinstance(parameters, dict):
        return json.dumps(parameters, ensure_ascii=False)
    try:
        worded = KINDS[kind].describe(parameters, unit=unit, metric=metric)
    except (KeyError, TypeError, ValueError, AttributeError):
        worded = ""
    return worded or describe_parameters(parameters, unit=unit)


def sentence(rule, parameters: object = None, *, unit: str, severity: str | None = None) -> str:
    """The rule as a sentence, its numbers its own parameters: "Warn when glucose is below
    70 mg/dL". `rule`: anything with kind, metric, severity and parameters (a Rule, a
    revision's rule); `parameters`/`severity` another version's."""
    parameters = rule.parameters if parameters is None else parameters
    clause = describe(rule.kind, parameters, unit=unit, metric=rule.metric)
    return words.sentence(severity=severity or rule.severity, clause=clause)


def _holds_null_character(value: object) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            return True
    return False


__all__ = [
    "KINDS",
    "ON_READING",
    "ON_SCHEDULE",
    "ON_SLOT_CLOSING",
    "InvalidParameters",
    "Kind",
    "choices",
    "describe",
    "is_scheduled",
    "kind_of",
    "names_running",
    "parameters_help",
    "parameters_schema",
    "schema_errors",
    "sentence",
    "validate_parameters",
]
