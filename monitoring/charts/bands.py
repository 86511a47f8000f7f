"""Bands: the ranges of values a patient's rules care about, and their colours.

bands_from_rules turns a patient's own rules into the bands a chart of their metric draws.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitoring.rules.base import SYMBOLS
from monitoring.units import format_number

# Severity colours, drawn lowest first so the most severe band lies on top. The same hues
# mark severity in the triage queue; "target" is an in-range band (INR 2–3, TIR 70–180).
SEVERITY_COLOURS = {
    "target": "#2e7d32",
    "info": "#1565c0",
    "warning": "#e08a00",
    "critical": "#c62828",
}
SEVERITY_WORDS = {
    "target": "Target",
    "info": "Info",
    "warning": "Warning",
    "critical": "Critical",
}


@dataclass(frozen=True)
class Band:
    """A range of values a rule cares about; `low`/`high` None means unbounded that side.

    `series` ties the band to one series of a multi-series chart (blood pressure: a systolic
    threshold says nothing about diastolic values); such bands are drawn as threshold lines.
    """

    low: float | None
    high: float | None
    severity: str
    label: str
    series: str | None = None


def band_order(band: Band) -> int:
    return list(SEVERITY_COLOURS).index(band.severity) if band.severity in SEVERITY_COLOURS else 0


def band_text(band: Band) -> str:
    return f"{SEVERITY_WORDS.get(band.severity, band.severity.title())}: {band.label}"


def bands_from_rules(rules: Iterable, *, unit: str) -> list[Band]:
    """The bands a patient's rules draw on a chart of their metric.

    Reads threshold-like conditions (threshold, sustained, count in window, average), a CGM
    summary's band and INR time-in-range's target range. Rate-of-change, missing-data and
    adherence rules have no value band. Duplicates (two rules, one region) are drawn once.
    """
    bands: dict[tuple, Band] = {}
    for rule in rules:
        for band in _rule_bands(rule, unit):
            bands.setdefault((band.low, band.high, band.severity, band.series), band)
    return list(bands.values())


CONDITION_KINDS = {"threshold", "sustained", "count_in_window", "average"}


def _rule_bands(rule, unit: str) -> list[Band]:
    parameters = rule.parameters or {}
    if rule.kind in CONDITION_KINDS and parameters.get("conditions"):
        return _condition_bands(rule, parameters, unit)
    if rule.kind == "cgm_summary" and parameters.get("band"):
        band = parameters["band"]
        low = band.get("lower", {}).get("value")
        high = band.get("upper", {}).get("value")
        severity = "target" if low is not None and high is not None else rule.severity
        return [Band(low, high, severity, f"{rule.title} ({_range_text(low, high, unit)})")]
    if rule.kind == "inr_ttr" and "target_low" in parameters:
        low, high = parameters["target_low"], parameters["target_high"]
        return [Band(low, high, "target", f"Target range {_range_text(low, high, unit)}")]
    return []


def _condition_bands(rule, parameters: dict, unit: str) -> list[Band]:
    by_component: dict[str, list[dict]] = {}
    for condition in parameters["conditions"]:
        by_component.setdefault(condition.get("component", "value"), []).append(condition)
    series_of = {"systolic": "Systolic", "diastolic": "Diastolic"}
    bands = []
    if parameters.get("match", "any") == "all" and len(by_component) == 1:
        # All conditions on one component: one band, their intersection (54 ≤ glucose < 70).
        component, conditions = next(iter(by_component.items()))
        low = max((c["value"] for c in conditions if c["op"] in ("gt", "ge")), default=None)
        high = min((c["value"] for c in conditions if c["op"] in ("lt", "le")), default=None)
        text = " and ".join(_condition_text(c, unit) for c in conditions)
        bands.append(
            Band(low, high, rule.severity, f"{rule.title} ({text})", series_of.get(component))
        )
        return bands
    for component, conditions in by_component.items():
        for condition in conditions:
            bound = condition["value"]
            low, high = (bound, None) if condition["op"] in ("gt", "ge") else (None, bound)
            prefix = f"{series_of[component]} " if component in series_of else ""
            bands.append(
                Band(
                    low,
                    high,
                    rule.severity,
                    f"{rule.title} ({prefix}{_condition_text(condition, unit)})",
                    series_of.get(component),
                )
            )
    return bands


def _condition_text(condition: dict, unit: str) -> str:
    return f"{SYMBOLS[condition['op']]} {format_number(condition['value'])} {unit}".strip()


def _range_text(low: float | None, high: float | None, unit: str) -> str:
    if low is None:
        return f"< {format_number(high)} {unit}".strip()
    if high is None:
        return f"> {format_number(low)} {unit}".strip()
    return f"{format_number(low)}–{format_number(high)} {unit}".strip()
