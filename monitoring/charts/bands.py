"""Bands and limits: the ranges of values a patient's rules care about, and how each
severity is drawn.

bands_from_rules asks each of a patient's own rules' kind for the bands a chart of their
metric draws (monitoring/rules/bands.py: Band) and adds what the chart needs besides: the
operator at each bound ("> 180", "≥ 135") and whether the limits apply to an average
(Kind.bands_averaged_over_days: the home-BP 7-day mean) rather than to single readings.

limits_of turns bands into the lines a chart draws: one per value (and basis: single
readings or an N-day average), however many rules share it, named after all of them.
Severity is told apart without colour: a dash pattern and a weight per severity, and the
severity's word on every line and legend entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from monitoring.rules import bands as rule_bands
from monitoring.rules import kind_of
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
# (dash pattern, stroke width): critical solid and heavy, warning dashed, info dotted,
# target dash-dot — readable in greyscale and by the colour-blind.
SEVERITY_STROKES = {
    "critical": ("", "2.4"),
    "warning": ("6 3", "1.6"),
    "info": ("1.5 3", "1.6"),
    "target": ("9 3 2 3", "1.4"),
}


@dataclass(frozen=True)
class Band(rule_bands.Band):
    """A rule kind's band, as a chart draws it.

    `low_op`/`high_op`: the operator of the rule's condition at that bound ("gt", "ge", …),
    None where the rule has none (a target range). `average_days`: the band applies to the
    mean of that many days' readings, not to a single reading. `share`: the rule measures
    the share of time in the band.
    """

    low_op: str | None = None
    high_op: str | None = None
    average_days: float | None = None
    # The rule measures the share of readings in the band (CGM time below 54 mg/dL): no
    # single reading in it alerts (Kind.bands_mark_readings is False).
    share: bool = False


def band_order(band: rule_bands.Band) -> int:
    return list(SEVERITY_COLOURS).index(band.severity) if band.severity in SEVERITY_COLOURS else 0


def average_words(days: float) -> str:
    return f"{format_number(days)}-day average"


def band_text(band: rule_bands.Band) -> str:
    text = f"{SEVERITY_WORDS.get(band.severity, band.severity.title())}: {band.label}"
    days = getattr(band, "average_days", None)
    if days:
        text += f", on the {average_words(days)}"
    elif getattr(band, "share", False):
        text += ", on the share of time"
    return text


def tinted(band: rule_bands.Band) -> bool:
    """Whether the band is drawn as a tinted region: a region of single readings on a
    one-series chart (or a target range). Lines only for a band of one series of several,
    of an average, or of a share of time: a tint would say single readings in it alert."""
    if band.series is not None or getattr(band, "average_days", None):
        return False
    return band.severity == "target" or not getattr(band, "share", False)


def bands_from_rules(rules: Iterable, *, unit: str) -> list[Band]:
    """The bands a patient's rules draw on a chart of their metric, as each rule's kind
    draws them (Kind.bands): conditions on readings or their mean, a CGM summary's band,
    an INR target range; rates, missing data and adherence draw none. Duplicates (two
    rules, one region) are drawn once."""
    bands: dict[tuple, Band] = {}
    for rule in rules:
        kind = kind_of(rule)
        days = kind.bands_averaged_over_days(rule.parameters or {})
        for band in kind.bands(rule, unit=unit):
            drawn = Band(
                **{f.name: getattr(band, f.name) for f in fields(rule_bands.Band)},
                low_op=_op_at(rule, band.low, "low", band.series),
                high_op=_op_at(rule, band.high, "high", band.series),
                average_days=days,
                share=not days and not kind.bands_mark_readings,
            )
            key = (drawn.low, drawn.high, drawn.severity, drawn.series, days, drawn.share)
            bands.setdefault(key, drawn)
    return list(bands.values())


_SIDE_OPS = {"low": ("gt", "ge"), "high": ("lt", "le")}


def _op_at(rule, bound: float | None, side: str, series: str | None) -> str | None:
    """The operator of the rule's own condition at this bound of its band: a condition on
    the component (conditions) or a CGM band's bound (band.lower/upper.inclusive)."""
    if bound is None:
        return None
    parameters = rule.parameters or {}
    for condition in parameters.get("conditions") or []:
        component = rule_bands.SERIES_OF.get(condition.get("component", "value"))
        if (
            component == series
            and condition.get("value") == bound
            and condition.get("op") in _SIDE_OPS[side]
        ):
            return condition["op"]
    edge = (parameters.get("band") or {}).get("lower" if side == "low" else "upper")
    if isinstance(edge, dict) and edge.get("value") == bound:
        inclusive = edge.get("inclusive", False)
        return {"low": ("gt", "ge"), "high": ("lt", "le")}[side][1 if inclusive else 0]
    return None


# --- Limits: the lines a chart draws ----------------------------------------------------


@dataclass(frozen=True)
class LimitPart:
    """One rule's band ending at a limit: its severity, its operator there, its band."""

    severity: str
    op: str | None
    band: Band

    @property
    def text(self) -> str:
        word = SEVERITY_WORDS.get(self.severity, self.severity.title()).lower()
        if self.op is None or self.severity == "target":
            low, high = self.band.low, self.band.high
            if low is not None and high is not None:
                return f"{word} {format_number(low)}–{format_number(high)}"
            return f"{word} {format_number(low if high is None else high)}"
        # A share-of-time rule's line: "time < 54 warning" (the CGM summary's band).
        time = "time " if getattr(self.band, "share", False) else ""
        value = self.band.low if self.op in _SIDE_OPS["low"] else self.band.high
        return f"{time}{SYMBOLS[self.op]} {format_number(value)} {word}"


@dataclass(frozen=True)
class Limit:
    """A horizontal line at `value`: every band of the chart's rules that ends there, on
    the same basis (single readings, or the mean of `average_days` days)."""

    value: float
    average_days: float | None
    parts: tuple[LimitPart, ...]

    @property
    def severity(self) -> str:
        """The most severe of its rules': the line is drawn in its style."""
        return max((p.severity for p in self.parts), key=_rank)

    @property
    def label(self) -> str:
        """The text on the line: "> 180 critical", "< 54 critical · ≥ 54 warning",
        "7-day average ≥ 135 warning"."""
        texts = list(dict.fromkeys(p.text for p in self.parts))
        prefix = f"{average_words(self.average_days)} " if self.average_days else ""
        return prefix + " · ".join(texts)

    @property
    def rules_text(self) -> str:
        """The line's full description, naming every rule that shares it."""
        names = "; ".join(dict.fromkeys(band_text(p.band) for p in self.parts))
        return f"{self.label}: {names}"


def _rank(severity: str) -> int:
    order = ["target", "info", "warning", "critical"]
    return order.index(severity) if severity in order else -1


def limits_of(bands: Sequence[Band]) -> list[Limit]:
    """The lines the bands' bounds make, one per (value, basis), highest value first."""
    found: dict[tuple[float, float | None], list[LimitPart]] = {}
    for band in sorted(bands, key=band_order, reverse=True):
        days = getattr(band, "average_days", None)
        for bound, op in (
            (band.low, getattr(band, "low_op", None)),
            (band.high, getattr(band, "high_op", None)),
        ):
            if bound is None:
                continue
            part = LimitPart(band.severity, op, band)
            found.setdefault((float(bound), days), []).append(part)
    return [
        Limit(value, days, tuple(parts))
        for (value, days), parts in sorted(found.items(), key=lambda item: -item[0][0])
    ]
