"""Units, conversions and plausibility limits, read from the clinical reference.

`clinical.yaml` (the project's copy of the clinical reference, shipped with the package) is the
only source of the numbers used here: conversion factors, canonical units and the
plausible ranges outside which a value is rejected as a measurement error. This module only
knows the spellings clients use for those units and how to read the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

REFERENCE_PATH = Path(__file__).with_name("clinical.yaml")

# API metric type -> top-level key in the clinical reference.
REFERENCE_KEYS = {
    "glucose": "blood_glucose",
    "blood_pressure": "blood_pressure",
    "weight": "body_weight",
    "inr": "inr",
    "heart_rate": "heart_rate",
    "spo2": "spo2",
    "temperature": "body_temperature",
}

# Spellings docs/api.md accepts besides the UCUM codes of the reference.
UNIT_ALIASES = {
    "lb": "[lb_av]",
    "°C": "Cel",
    "°F": "[degF]",
    "mmHg": "mm[Hg]",
}

# Glucose converted from mmol/L is kept in whole mg/dL, as the reference rounds it
# (blood_glucose.accepted_units: "integer mg/dL"). Its conversion policy asks thresholds to
# hold at the published pairs (3.9 mmol/L = 70 mg/dL, 10.0 = 180, 13.9 = 250, 3.0 = 54):
# whole mg/dL does that at every boundary, where 10.0 × 18.0156 = 180.156 would not.
CONVERTED_DECIMALS = {"mg/dL": 0}

# The reference states Fahrenheit as a formula rather than a factor.
FAHRENHEIT_FORMULA = "C = (F - 32) * 5 / 9"


@dataclass(frozen=True)
class Unit:
    """A unit a client may send: canonical = (sent - offset) * factor, rounded to `decimals`."""

    code: str
    factor: float = 1.0
    offset: float = 0.0
    # 6 decimals by default, so 100.4 °F is 38.0 °C, not 38.00000000000001.
    decimals: int = 6

    def to_canonical(self, value: float) -> float:
        return round((value - self.offset) * self.factor, self.decimals)


@dataclass(frozen=True)
class Range:
    lower: float
    upper: float
    unit: str

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def describe(self) -> str:
        return f"{format_number(self.lower)}–{format_number(self.upper)} {self.unit}".rstrip()


@dataclass(frozen=True)
class MetricUnits:
    metric: str
    canonical_unit: str
    units: dict[str, Unit]
    unit_required: bool
    plausible: Range | None = None
    components: dict[str, Range] = field(default_factory=dict)

    def lookup(self, spelling: str | None) -> Unit | None:
        if spelling is None or spelling == "":
            return None if self.unit_required else self.units[self.canonical_unit]
        return self.units.get(UNIT_ALIASES.get(spelling, spelling))

    def accepted_spellings(self) -> list[str]:
        aliases = [alias for alias, code in UNIT_ALIASES.items() if code in self.units]
        return sorted(set(self.units) | set(aliases))


def format_number(value: float) -> str:
    """120.0 -> '120', 5.55 -> '5.55': numbers as a person writes them."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.6g}"


@cache
def load_reference() -> dict:
    with REFERENCE_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _bound(raw: object) -> float:
    return float(raw["value"] if isinstance(raw, dict) else raw)


def _range(raw: dict, default_unit: str) -> Range:
    return Range(_bound(raw["lower"]), _bound(raw["upper"]), raw.get("unit", default_unit))


def _units(section: dict, canonical: str) -> dict[str, Unit]:
    units = {canonical: Unit(canonical)}
    for entry in section.get("accepted_units", []):
        if entry.get("status") == "unverified":
            continue  # not a conversion we stand behind
        code = entry.get("ucum") or entry.get("text")
        conversion = entry.get("to_canonical") or {}
        if "multiply_by" in conversion:
            factor = float(conversion["multiply_by"])
            converted = factor != 1
            units[code] = Unit(
                code,
                factor=factor,
                decimals=CONVERTED_DECIMALS.get(canonical, 6) if converted else 6,
            )
        elif "formula" in conversion:
            if conversion["formula"] != FAHRENHEIT_FORMULA:
                raise ValueError(f"unsupported conversion formula for {code}: {conversion}")
            units[code] = Unit(code, factor=5 / 9, offset=32.0)
        else:
            units[code] = Unit(code)  # another spelling of the canonical unit
    return units


def _display_unit(code: str) -> str:
    return {"{INR}": ""}.get(code, code)


@cache
def metric_units() -> dict[str, MetricUnits]:
    reference = load_reference()
    specs = {}
    for metric, key in REFERENCE_KEYS.items():
        section = reference[key]
        canonical = section["canonical_unit"]
        plausible = section["plausible_range"]
        components: dict[str, Range] = {}
        limits = None
        if metric == "blood_pressure":
            components = {
                part: _range(plausible[part], canonical) for part in ("systolic", "diastolic")
            }
        else:
            raw = plausible.get("accept", plausible)
            limits = _range(raw, canonical)
            limits = Range(limits.lower, limits.upper, _display_unit(limits.unit))
        specs[metric] = MetricUnits(
            metric=metric,
            canonical_unit=canonical,
            units=_units(section, canonical),
            # docs/api.md: glucose, weight and temperature must say their unit.
            unit_required=metric in {"glucose", "weight", "temperature"},
            plausible=limits,
            components=components,
        )
    return specs
