"""The legend under a chart and its text description (the SVG's <desc>): the text
alternative names every series, every limit with its severity and rules, and every
triggering reading."""

from __future__ import annotations

from dataclasses import dataclass

from django.template.defaultfilters import pluralize
from django.utils.html import escape

from monitoring.charts.bands import (
    SEVERITY_COLOURS,
    SEVERITY_STROKES,
    average_words,
    band_order,
    band_text,
    tinted,
)
from monitoring.charts.layout import (
    AVERAGE_COLOUR,
    LEGEND_ROW,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARK_COLOUR,
    SERIES_STYLES,
    WIDTH,
    px,
    visible,
)
from monitoring.charts.time_axis import zone_caption
from monitoring.units import format_number


@dataclass(frozen=True)
class LegendItem:
    kind: str  # "series" | "average-series" | "band" | "mark"
    text: str
    colour: str
    dash: str = ""
    width: str = "2"
    filled: bool = False  # a band drawn as a tinted region as well as its edges
    severity: str = ""

    @property
    def size(self) -> float:
        return 22 + 6.2 * len(self.text) + 14


def _band_panels(band, panels):
    return [p for p in panels if band in p.bands]


def legend_items(panels, bands) -> list[LegendItem]:
    items = []
    if len(panels) > 1:
        for panel in panels:
            colour, dash = SERIES_STYLES[panel.style % len(SERIES_STYLES)]
            items.append(LegendItem("series", panel.name, colour, dash))
    for panel in panels:
        for days, _means in panel.averages:
            name = f"{panel.name}, " if panel.name else ""
            items.append(
                LegendItem(
                    "average-series", f"{name}{average_words(days)}", AVERAGE_COLOUR, "", "3"
                )
            )
    for band in sorted(bands, key=band_order, reverse=True):
        colour = SEVERITY_COLOURS.get(band.severity, "#57606a")
        dash, width = SEVERITY_STROKES.get(band.severity, ("", "1.4"))
        text = band_text(band)
        if not any(visible(band, p.frame) for p in _band_panels(band, panels)):
            text += " (beyond the range shown)"
        items.append(LegendItem("band", text, colour, dash, width, tinted(band), band.severity))
    ringed = {days for panel in panels for _, days in panel.rings}
    if None in ringed:
        items.append(LegendItem("mark", "Triggering reading (ringed)", MARK_COLOUR))
    for days in sorted(d for d in ringed if d):
        items.append(LegendItem("mark", f"Triggering {average_words(days)} (ringed)", MARK_COLOUR))
    return items


def legend_layout(items: list[LegendItem]) -> list[list[LegendItem]]:
    rows: list[list[LegendItem]] = []
    used = WIDTH
    for item in items:
        if used + item.size > WIDTH - MARGIN_RIGHT:
            rows.append([])
            used = MARGIN_LEFT
        rows[-1].append(item)
        used += item.size
    return rows


def legend_shapes(rows, top: float) -> list[str]:
    parts = []
    for row_index, row in enumerate(rows):
        y = top + row_index * LEGEND_ROW + 9
        x = float(MARGIN_LEFT)
        for item in row:
            dash = f' stroke-dasharray="{item.dash}"' if item.dash else ""
            if item.kind == "mark":
                swatch = (
                    f'<circle cx="{px(x + 8)}" cy="{px(y - 1)}" r="5" fill="none" '
                    f'stroke="{item.colour}" stroke-width="2"/>'
                )
            else:  # a series, an average, a limit: its line as drawn
                swatch = (
                    f'<line class="legend-swatch" x1="{px(x)}" x2="{px(x + 16)}" '
                    f'y1="{px(y - 1)}" y2="{px(y - 1)}" stroke="{item.colour}" '
                    f'stroke-width="{item.width}"{dash}/>'
                )
                if item.filled:
                    swatch = (
                        f'<rect x="{px(x)}" y="{px(y - 6)}" width="16" height="10" '
                        f'fill="{item.colour}" fill-opacity="0.25"/>' + swatch
                    )
            severity = f" legend-{escape(item.severity)}" if item.severity else ""
            parts.append(
                f'<g class="legend legend-{item.kind}{severity}">{swatch}'
                f'<text x="{px(x + 22)}" y="{px(y)}" dy="0.1em" fill="#1f2328">'
                f"{escape(item.text)}</text></g>"
            )
            x += item.size
    return parts


def reading_text(name: str, at, value: float, unit: str, zone) -> str:
    reading = f"{format_number(round(value, 2))} {unit}".strip()
    prefix = f"{name} " if name else ""
    return f"{prefix}{reading} at {at.astimezone(zone):%d %b %H:%M %Z}"


def ring_text(panel, ring, unit: str, zone) -> str:
    (at, value, _pk), days = ring
    what = f"{average_words(days)}" if days else "reading"
    return f"Triggering {what}: {reading_text(panel.name, at, value, unit, zone)}"


def description(panels, unit, zone, bands, start, end) -> str:
    sentences = []
    for panel in panels:
        label = f"{panel.name}: " if panel.name else ""
        points = panel.readings
        if not points:
            sentences.append(f"{label}no readings.")
            continue
        values = [value for _, value, _ in points]
        last_at, last, _ = points[-1]
        reading = f"{format_number(round(last, 2))} {unit}".strip()
        sentences.append(
            f"{label}{len(points)} reading{pluralize(len(points))}, "
            f"lowest {format_number(round(min(values), 2))}, "
            f"highest {format_number(round(max(values), 2))}, latest {reading} at "
            f"{last_at.astimezone(zone):%d %b %H:%M %Z}."
        )
        for days, means in panel.averages:
            if means:
                sentences.append(
                    f"{label}{average_words(days)} drawn, latest "
                    f"{format_number(round(means[-1][1], 1))} {unit}.".replace(" .", ".")
                )
        if panel.limits:
            lines = "; ".join(
                f"{limit.label} ({format_number(limit.value)} {unit})".replace(" )", ")")
                for limit in panel.limits
            )
            sentences.append(f"{label}Limits drawn: {lines}.")
    if bands:
        sentences.append("Rules: " + "; ".join(band_text(b) for b in bands) + ".")
    rings = [(panel, ring) for panel in panels for ring in panel.rings]
    if rings:
        what = "; ".join(ring_text(panel, ring, unit, zone) for panel, ring in rings)
        sentences.append(f"{what} (ringed).")
    sentences.append(zone_caption(start, end, zone) + ".")
    return " ".join(sentences)
