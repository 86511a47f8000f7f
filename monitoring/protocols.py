"""Protocol defaults: the rules a condition's patients start with, built from the clinical
reference.

protocols.yaml names, per protocol, the clinical.yaml entries to use and how Vigil
evaluates each; this module reads the numbers out of those entries, whatever shape the
reference states them in (bounds, `systolic_gt` keys, a sentence such as "INR >= 5.0"), so
that no clinical number is typed into code. Each template keeps its reference id and
sources, which the patient's copy of the rule shows to clinicians.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from monitoring.rules import validate_parameters
from monitoring.units import REFERENCE_KEYS, load_reference

PROTOCOLS_PATH = Path(__file__).with_name("protocols.yaml")
METRIC_OF_SECTION = {section: metric for metric, section in REFERENCE_KEYS.items()}
METRIC_OF_SECTION["medication_adherence"] = "dose"
OPS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
FLIPPED = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
DAYS_PER_MONTH = 365.25 / 12  # calendar arithmetic, not a clinical number
NUMBER = r"(\d+(?:\.\d+)?)"
OPERATOR = r"(<=|>=|<|>)"


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


def resolve(path: str) -> object:
    node: object = load_reference()
    for part in path.split("."):
        if isinstance(node, list):
            # A list is addressed by position, or by the `id` of one of its entries.
            node = node[int(part)] if part.isdigit() else next(e for e in node if e["id"] == part)
        else:
            node = node[part]
    return node


def _bound(raw: dict, inclusive_op: str, exclusive_op: str) -> dict:
    return {
        "component": "value",
        "op": inclusive_op if raw["inclusive"] else exclusive_op,
        "value": raw["value"],
    }


def conditions_from_bounds(entry: dict) -> dict:
    """{"lower": {value, inclusive}, "upper": …} -> a band (all conditions)."""
    conditions = []
    if "lower" in entry:
        conditions.append(_bound(entry["lower"], "ge", "gt"))
    if "upper" in entry:
        conditions.append(_bound(entry["upper"], "le", "lt"))
    return {"conditions": conditions, "match": "all"}


def conditions_from_component_keys(entry: dict) -> dict:
    """{"systolic_gt": 180, "diastolic_gt": 120, "logic": "or"} -> conditions."""
    conditions = []
    for name, value in entry.items():
        component, _, op = name.rpartition("_")
        if component in ("systolic", "diastolic") and op in FLIPPED:
            conditions.append({"component": component, "op": op, "value": value})
    if not conditions:
        raise ReferenceMismatch(f"no component limits in {entry}")
    return {"conditions": conditions, "match": "all" if entry.get("logic") == "and" else "any"}


def conditions_from_sentence(sentence: str) -> dict:
    """'INR >= 5.0', 'HR <= 50 at rest', 'SpO2 <= 87%', '4.5 <= INR <= 10, no bleeding'."""
    band = re.match(rf"^{NUMBER}%? {OPERATOR} \w+ {OPERATOR} {NUMBER}", sentence)
    if band:
        low, low_op, high_op, high = band.groups()
        return {
            "conditions": [
                {"component": "value", "op": FLIPPED[OPS[low_op]], "value": float(low)},
                {"component": "value", "op": OPS[high_op], "value": float(high)},
            ],
            "match": "all",
        }
    single = re.match(rf"^(?:single \w+ )?\w+ {OPERATOR} {NUMBER}", sentence)
    if single:
        op, value = single.groups()
        return {
            "conditions": [{"component": "value", "op": OPS[op], "value": float(value)}],
            "match": "any",
        }
    raise ReferenceMismatch(f"cannot read a limit from {sentence!r}")


def _threshold(entry: dict, spec: dict) -> dict:
    if "low" in entry and "high" in entry:  # a target range: alert outside it
        return {
            "conditions": [
                {"component": "value", "op": "lt", "value": entry["low"]},
                {"component": "value", "op": "gt", "value": entry["high"]},
            ],
            "match": "any",
        }
    if "lower" in entry or "upper" in entry:
        return conditions_from_bounds(entry)
    if "rule" in entry:
        return conditions_from_sentence(_clause(entry["rule"], spec))
    return conditions_from_component_keys(entry)


def _clause(sentence: str, spec: dict) -> str:
    """'two INR >= 5 within 6 months, or any INR >= 8' -> clause 0 or 1 (without 'any')."""
    if "clause" not in spec:
        return sentence
    part = sentence.split(", or ")[spec["clause"]]
    return part.removeprefix("any ")


def _rate_of_change(entry: dict, spec: dict) -> dict:
    if "default" in entry:
        default = entry["default"]
        return {
            "window_days": default["window_days"],
            "delta": default["delta_kg_gt"],
            "direction": "gain",
            "op": "gt",
        }
    match = re.match(
        rf"^(gain|loss) {OPERATOR} .*\({NUMBER} kg\) (?:over|in|within) (\d+) days?", entry["rule"]
    )
    if not match:
        raise ReferenceMismatch(f"cannot read a weight change from {entry['rule']!r}")
    direction, op, delta, days = match.groups()
    return {"window_days": int(days), "delta": float(delta), "direction": direction, "op": OPS[op]}


def _average(entry: dict, spec: dict) -> dict:
    formula = resolve(spec["window_ref"])["formula"]
    days = re.search(r"default (\d+) days", formula)
    if not days:
        raise ReferenceMismatch(f"no averaging window in {formula!r}")
    return conditions_from_component_keys(entry) | {
        "window_days": int(days[1]),
        # Not clinical: how many readings make an average worth acting on.
        "min_readings": spec["min_readings"],
    }


def _count_in_window(entry: dict, spec: dict) -> dict:
    sentence = _clause(entry["rule"], spec)
    match = re.match(rf"^(\w+) (\w+) {OPERATOR} {NUMBER} within (\d+) months?", sentence)
    if not match:
        raise ReferenceMismatch(f"cannot read a count in a window from {sentence!r}")
    count, _name, op, value, months = match.groups()
    return {
        "conditions": [{"component": "value", "op": OPS[op], "value": float(value)}],
        "match": "any",
        "count": NUMBER_WORDS[count],
        "within_days": round(int(months) * DAYS_PER_MONTH),
    }


def _adherence(entry: dict, spec: dict) -> dict:
    rule = entry["rule"]
    consecutive = re.match(r"^>= (\d+) consecutive missed doses", rule)
    if consecutive:
        return {"mode": "consecutive_missed", "count": int(consecutive[1]), "medications": []}
    rate = re.match(rf"^(\d+)-day taking adherence < {NUMBER}%", rule)
    if rate:
        return {"mode": "taking_rate", "window_days": int(rate[1]), "below_percent": float(rate[2])}
    raise ReferenceMismatch(f"cannot read an adherence rule from {rule!r}")


def _cgm_band(measure: str) -> dict:
    ranges = resolve("blood_glucose.cgm_targets.ranges_mg_dL")
    bands = {
        "tir_70_180_pct": ranges["in_range"],
        "tbr_lt70_pct": {"upper": ranges["low"]["upper"]},
        "tbr_lt54_pct": ranges["very_low"],
        "tar_gt180_pct": {"lower": ranges["high"]["lower"]},
        "tar_gt250_pct": ranges["very_high"],
    }
    return {
        side: dict(bands[measure][side]) for side in ("lower", "upper") if side in bands[measure]
    }


def _cgm_summary(entry: dict, spec: dict) -> dict:
    measure = spec["ref"].rsplit(".", 1)[1]
    (op, value), *_ = ((k, v) for k, v in entry.items() if k in FLIPPED)
    sufficiency = resolve("blood_glucose.cgm_targets.data_sufficiency")
    interval = re.search(r"(\d+)-min sensor", sufficiency["example"])
    parameters = {
        "measure": "cv" if measure == "cv_pct" else "percent_in_band",
        "target": {"op": op, "value": value},
        "window_days": sufficiency["min_days"],
        "min_days": sufficiency["min_days"],
        "min_percent_active": sufficiency["min_percent_active"],
        "sensor_interval_minutes": int(interval[1]),
    }
    if measure != "cv_pct":
        parameters["band"] = _cgm_band(measure)
    return parameters


def _inr_ttr(entry: dict, spec: dict) -> dict:
    poor = entry["quality_thresholds"][0]["rule"]
    below = re.match(rf"^TTR < {NUMBER}%", poor)
    window = re.search(r"within (\d+) months", resolve("inr.thresholds")[1]["rule"])
    if not below or not window:
        raise ReferenceMismatch("cannot read the TTR limit or window from the reference")
    target = resolve(spec["range_ref"])
    return {
        "target_low": target["low"],
        "target_high": target["high"],
        "max_gap_days": entry["parameters"]["max_gap_days"],
        # NICE judges control over 6 months (its poor-control markers' window).
        "window_days": round(int(window[1]) * DAYS_PER_MONTH),
        "below_percent": float(below[1]),
    }


BUILDERS = {
    "threshold": _threshold,
    "rate_of_change": _rate_of_change,
    "average": _average,
    "count_in_window": _count_in_window,
    "adherence": _adherence,
    "cgm_summary": _cgm_summary,
    "inr_ttr": _inr_ttr,
}


def _source(reference: str) -> str:
    """The evidence status and sources of the nearest entry on the path that states them."""
    parts = reference.split(".")
    entry: dict = {}
    for length in range(len(parts), 0, -1):
        candidate = resolve(".".join(parts[:length]))
        if isinstance(candidate, dict) and "status" in candidate:
            entry = candidate
            break
    status = entry.get("status", "")
    sources = ", ".join(entry.get("sources", []))
    return f"{status}: {sources}" if sources else status


def _template(protocol: str, spec: dict) -> RuleTemplate:
    if "ref" not in spec:  # an engineering choice with its own parameters
        parameters, reference, metric = spec["parameters"], "", spec["metric"]
        source = f"{spec['status']}: {spec['note']}"
        key = spec["key"]
        severity = spec["severity"]
    else:
        entry = resolve(spec["ref"])
        parameters = BUILDERS[spec["kind"]](entry, spec)
        reference = spec["ref"]
        metric = METRIC_OF_SECTION[reference.split(".")[0]]
        source = _source(reference)
        if spec.get("status_note"):
            source += f" ({spec['status_note']})"
        key = spec.get("key") or entry["id"]
        severity = spec.get("severity") or (
            resolve(spec["severity_ref"]) if "severity_ref" in spec else entry
        ).get("severity")
    validate_parameters(spec["kind"], parameters, metric=metric)
    return RuleTemplate(
        key=key,
        protocol=protocol,
        kind=spec["kind"],
        metric=metric,
        severity=severity,
        group=spec["group"],
        title=spec["title"],
        parameters=parameters,
        reference=reference,
        source=source,
    )


@cache
def protocol_templates() -> dict[str, tuple[RuleTemplate, ...]]:
    with PROTOCOLS_PATH.open(encoding="utf-8") as handle:
        definitions = yaml.safe_load(handle)
    return {
        protocol: tuple(_template(protocol, spec) for spec in specs)
        for protocol, specs in definitions.items()
    }


def template_for(key: str) -> RuleTemplate:
    """The default rule with this key, from the first protocol that has it (protocols naming
    the same rule give it the same parameters: one copy per patient)."""
    for templates in protocol_templates().values():
        for template in templates:
            if template.key == key:
                return template
    raise KeyError(key)
