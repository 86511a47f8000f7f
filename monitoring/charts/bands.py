"""Bands: the ranges of values a patient's rules care about, and their colours.

bands_from_rules asks each of a patient's own rules' kind for the bands a chart of their
metric draws (monitoring/rules/bands.py: Band).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitoring.rules import kind_of
from monitoring.rules.bands import Band

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


def band_order(band: Band) -> int:
    return list(SEVERITY_COLOURS).index(band.severity) if band.severity in SEVERITY_COLOURS else 0


def band_text(band: Band) -> str:
    return f"{SEVERITY_WORDS.get(band.severity, band.severity.title())}: {band.label}"


def bands_from_rules(rules: Iterable, *, unit: str) -> list[Band]:
    """The bands a patient's rules draw on a chart of their metric, as each rule's kind
    draws them (Kind.bands): conditions on readings, a CGM summary's band, an INR target
    range; rates, missing data and adherence draw none. Duplicates (two rules, one region)
    are drawn once."""
    bands: dict[tuple, Band] = {}
    for rule in rules:
        for band in kind_of(rule).bands(rule, unit=unit):
            bands.setdefault((band.low, band.high, band.severity, band.series), band)
    return list(bands.values())
