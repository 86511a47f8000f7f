"""The bands a rule draws on a chart of its metric: the ranges of values it cares about.

Kinds build them here (conditions on a reading, a CGM band, a target range); the charts
colour and draw them (monitoring/charts).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.rules.base import SYMBOLS, RuleLike
from monitoring.units import format_number

SERIES_OF = {"systolic": "Systolic", "diastolic": "Diastolic"}


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


def condition_bands(rule: RuleLike, *, unit: str) -> list[Band]:
    """A rule on conditions of single readings (or of their mean): the region they match."""
    parameters = rule.parameters or {}
    if not parameters.get("conditions"):
        return []
    by_component: dict[str, list[dict]] = {}
    for condition in parameters["conditions"]:
        by_component.setdefault(condition.get("component", "value"), []).append(condition)
    bands = []
    if parameters.get("match", "any") == "all" and len(by_component) == 1:
        # All conditions on one component: one band, their intersection (54 ≤ glucose < 70).
        component, conditions = next(iter(by_component.items()))
        low = max((c["value"] for c in conditions if c["op"] in ("gt", "ge")), default=None)
        high = min((c["value"] for c in conditions if c["op"] in ("lt", "le")), default=None)
        text = " and ".join(_condition_text(c, unit) for c in conditions)
        bands.append(
            Band(low, high, rule.severity, f"{rule.title} ({text})", SERIES_OF.get(component))
        )
        return bands
    for component, conditions in by_component.items():
        for condition in conditions:
            bound = condition["value"]
            low, high = (bound, None) if condition["op"] in ("gt", "ge") else (None, bound)
            prefix = f"{SERIES_OF[component]} " if component in SERIES_OF else ""
            bands.append(
                Band(
                    low,
                    high,
                    rule.severity,
                    f"{rule.title} ({prefix}{_condition_text(condition, unit)})",
                    SERIES_OF.get(component),
                )
            )
    return bands


def _condition_text(condition: dict, unit: str) -> str:
    return f"{SYMBOLS[condition['op']]} {format_number(condition['value'])} {unit}".strip()


def range_text(low: float | None, high: float | None, unit: str) -> str:
    if low is None:
        return f"< {format_number(high)} {unit}".strip()
    if high is None:
        return f"> {format_number(low)} {unit}".strip()
    return f"{format_number(low)}–{format_number(high)} {unit}".strip()
