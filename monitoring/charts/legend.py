"""The legend under a chart and its text description (the SVG's <desc>)."""

from __future__ import annotations

from dataclasses import dataclass

from django.template.defaultfilters import pluralize
from django.utils.html import escape

from monitoring.charts.bands import SEVERITY_COLOURS, band_order, band_text
from monitoring.charts.layout import (
    LEGEND_ROW,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARK_COLOUR,
    SERIES_STYLES,
    WIDTH,
    Frame,
    px,
    visible,
)
from monitoring.charts.time_axis import zone_caption
from monitoring.units import format_number


@dataclass(frozen=True)
class LegendItem:
    kind: str  # "series" | "band" | "mark"
    text: str
    colour: str
    dash: str = ""

    @property
    def width(self) -> float:
        return 22 + 6.2 * len(self.text) + 14


def legend_items(series, bands, frame: Frame, marks) -> list[LegendItem]:
    items = []
    if len(series) > 1:
        for index, (name, _points) in enumerate(series):
            colour, dash = SERIES_STYLES[index % len(SERIES_STYLES)]
            items.append(LegendItem("series", name, colour, dash))
    for band in sorted(bands, key=band_order, reverse=True):
        colour = SEVERITY_COLOURS.get(band.severity, "#57606a")
        text = band_text(band)
        if not visible(band, frame):
            text += " (beyond the range shown)"
        # A band of one series is drawn as a dashed threshold line, and so is its swatch.
        items.append(LegendItem("band", text, colour, "5 3" if band.series else ""))
    if marks:
        items.append(LegendItem("mark", "Triggering reading", MARK_COLOUR))
    return items


def legend_layout(items: list[LegendItem]) -> list[list[LegendItem]]:
    rows: list[list[LegendItem]] = []
    used = WIDTH
    for item in items:
        if used + item.width > WIDTH - MARGIN_RIGHT:
            rows.append([])
            used = MARGIN_LEFT
        rows[-1].append(item)
        used += item.width
    return rows


def legend_shapes(rows, top: float) -> list[str]:
    parts = []
    for row_index, row in enumerate(rows):
        y = top + row_index * LEGEND_ROW + 9
        x = float(MARGIN_LEFT)
        for item in row:
            if item.kind == "band" and not item.dash:
                swatch = (
                    f'<rect x="{px(x)}" y="{px(y - 6)}" width="16" height="10" '
                    f'fill="{item.colour}" fill-opacity="0.35" stroke="{item.colour}"/>'
                )
            elif item.kind == "mark":
                swatch = (
                    f'<circle cx="{px(x + 8)}" cy="{px(y - 1)}" r="5" fill="none" '
                    f'stroke="{item.colour}" stroke-width="2"/>'
                )
            else:  # a series, or a series' threshold line
                dash = f' stroke-dasharray="{item.dash}"' if item.dash else ""
                swatch = (
                    f'<line x1="{px(x)}" x2="{px(x + 16)}" y1="{px(y - 1)}" y2="{px(y - 1)}" '
                    f'stroke="{item.colour}" stroke-width="2"{dash}/>'
                )
            parts.append(
                f'<g class="legend legend-{item.kind}">{swatch}'
                f'<text x="{px(x + 22)}" y="{px(y)}" dy="0.1em" fill="#1f2328">'
                f"{escape(item.text)}</text></g>"
            )
            x += item.width
    return parts


def description(series, unit, zone, bands, marks, start, end) -> str:
    sentences = []
    for name, points in series:
        label = f"{name}: " if name else ""
        if not points:
            sentences.append(f"{label}no readings.")
            continue
        values = [value for _, value in points]
        last_at, last = points[-1]
        reading = f"{format_number(round(last, 2))} {unit}".strip()
        sentences.append(
            f"{label}{len(points)} reading{pluralize(len(points))}, "
            f"lowest {format_number(round(min(values), 2))}, "
            f"highest {format_number(round(max(values), 2))}, latest {reading} at "
            f"{last_at.astimezone(zone):%d %b %H:%M %Z}."
        )
    if bands:
        sentences.append("Bands: " + "; ".join(band_text(b) for b in bands) + ".")
    if marks:
        sentences.append(f"{len(marks)} triggering reading{pluralize(len(marks))} marked.")
    sentences.append(zone_caption(start, end, zone) + ".")
    return " ".join(sentences)
