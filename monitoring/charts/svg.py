"""The SVG itself: axes, bands, series and marks, composed by line_chart and
multi_line_chart. Every text goes through escape()."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from statistics import median
from zoneinfo import ZoneInfo

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from monitoring.charts.bands import SEVERITY_COLOURS, Band, band_order, band_text
from monitoring.charts.layout import (
    AXIS_HEIGHT,
    FONT,
    LEGEND_ROW,
    MARGIN_LEFT,
    MARGIN_TOP,
    MARK_COLOUR,
    PLOT_HEIGHT,
    SERIES_STYLES,
    WIDTH,
    Frame,
    Point,
    px,
    visible,
    y_domain,
)
from monitoring.charts.legend import description, legend_items, legend_layout, legend_shapes
from monitoring.charts.time_axis import x_ticks, zone_caption
from monitoring.units import format_number

# Individual dots (and their tooltips) only while they stay readable.
MAX_DOTS = 400


def line_chart(
    *,
    points: list[Point],
    unit: str,
    zone: ZoneInfo,
    bands: list[Band],
    marks: list[datetime],
    start: datetime,
    end: datetime,
    title: str,
) -> SafeString:
    """One series over [start, end] as an inline SVG string."""
    return multi_line_chart(
        series=[("", points)],
        unit=unit,
        zone=zone,
        bands=bands,
        marks=marks,
        start=start,
        end=end,
        title=title,
    )


def multi_line_chart(
    *,
    series: list[tuple[str, list[Point]]],
    unit: str,
    zone: ZoneInfo,
    bands: list[Band],
    marks: list[datetime],
    start: datetime,
    end: datetime,
    title: str,
) -> SafeString:
    """Several series on one axis (blood pressure: systolic and diastolic) as inline SVG."""
    if end <= start:
        raise ValueError("a chart needs end after start")
    series = [(name, sorted(p for p in points if start <= p[0] <= end)) for name, points in series]
    values = [value for _, points in series for _, value in points]
    frame = Frame(start, end, y_domain(values, bands))
    marks = sorted(m for m in marks if start <= m <= end)
    legend = legend_items(series, bands, frame, marks)
    legend_rows = legend_layout(legend)
    height = MARGIN_TOP + PLOT_HEIGHT + AXIS_HEIGHT + LEGEND_ROW * len(legend_rows) + 6
    chart_id = "chart-" + hashlib.sha1(f"{title}|{start}|{end}".encode()).hexdigest()[:10]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="vigil-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{escape(FONT)}" font-size="11">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">'
        f"{escape(description(series, unit, zone, bands, marks, start, end))}</desc>",
        f'<rect class="background" x="0" y="0" width="{WIDTH}" height="{height}" '
        'fill="#ffffff" stroke="#d0d7de" rx="4"/>',
        f'<text class="chart-title" x="{MARGIN_LEFT}" y="18" font-size="13" '
        f'font-weight="600" fill="#1f2328">{escape(title)}</text>',
    ]
    if unit:
        parts.append(
            f'<text class="unit" x="{MARGIN_LEFT - 8}" y="{MARGIN_TOP - 6}" '
            f'text-anchor="end" fill="#57606a">{escape(unit)}</text>'
        )
    parts += _band_shapes(bands, frame)
    parts += _y_axis(frame)
    parts += _x_axis(frame, zone)
    parts += _series_shapes(series, frame, unit, zone)
    parts += _mark_shapes(marks, series, frame, unit, zone)
    if not values:
        parts.append(
            f'<text class="empty" x="{frame.left + frame.width / 2:.1f}" '
            f'y="{frame.top + PLOT_HEIGHT / 2:.1f}" text-anchor="middle" fill="#57606a">'
            "No readings in this period</text>"
        )
    parts += legend_shapes(legend_rows, MARGIN_TOP + PLOT_HEIGHT + AXIS_HEIGHT)
    parts.append("</svg>")
    # Every text above went through escape().
    return mark_safe("".join(parts))


# --- Axes ---------------------------------------------------------------------------------


def _y_axis(frame: Frame) -> list[str]:
    parts = []
    count = round((frame.high - frame.low) / frame.step)
    for i in range(count + 1):
        value = round(frame.low + i * frame.step, 10)
        y = px(frame.y(value))
        parts.append(
            f'<line class="grid-y" x1="{frame.left}" x2="{frame.left + frame.width}" '
            f'y1="{y}" y2="{y}" stroke="#d8dee4" stroke-width="1"/>'
            f'<text class="tick-y" x="{frame.left - 6}" y="{y}" dy="0.32em" text-anchor="end" '
            f'fill="#57606a">{escape(format_number(value))}</text>'
        )
    parts.append(
        f'<rect class="plot-border" x="{frame.left}" y="{frame.top}" width="{frame.width}" '
        f'height="{PLOT_HEIGHT}" fill="none" stroke="#8c959f" stroke-width="1"/>'
    )
    return parts


def _x_axis(frame: Frame, zone: ZoneInfo) -> list[str]:
    parts = []
    for at, label in x_ticks(frame.start, frame.end, zone):
        x = px(frame.x(at))
        parts.append(
            f'<line class="grid-x" x1="{x}" x2="{x}" y1="{frame.top}" y2="{frame.bottom}" '
            f'stroke="#eaeef2" stroke-width="1"/>'
            f'<text class="tick-x" x="{x}" y="{frame.bottom + 14}" text-anchor="middle" '
            f'fill="#57606a">{escape(label)}</text>'
        )
    parts.append(
        f'<text class="zone" x="{frame.left + frame.width}" y="{frame.bottom + 30}" '
        f'text-anchor="end" fill="#57606a">'
        f"{escape(zone_caption(frame.start, frame.end, zone))}</text>"
    )
    return parts


# --- Bands, series and marks ---------------------------------------------------------------


def _band_shapes(bands: Sequence[Band], frame: Frame) -> list[str]:
    parts = []
    for band in sorted(bands, key=band_order):
        colour = SEVERITY_COLOURS.get(band.severity, "#57606a")
        if not visible(band, frame):
            continue  # the legend and the description still name it
        tooltip = f"<title>{escape(band_text(band))}</title>"
        severity = escape(band.severity)
        if band.series is None:
            top = frame.y(frame.high if band.high is None else band.high)
            bottom = frame.y(frame.low if band.low is None else band.low)
            parts.append(
                f'<rect class="band band-{severity}" x="{frame.left}" y="{px(top)}" '
                f'width="{frame.width}" height="{px(bottom - top)}" fill="{colour}" '
                f'fill-opacity="0.16">{tooltip}</rect>'
            )
        dash = ' stroke-dasharray="5 3"' if band.series is not None else ""
        for bound in (band.low, band.high):
            if bound is None or not frame.low < bound < frame.high:
                continue
            y = px(frame.y(bound))
            parts.append(
                f'<line class="band-edge band-edge-{severity}" x1="{frame.left}" '
                f'x2="{frame.left + frame.width}" y1="{y}" y2="{y}" stroke="{colour}" '
                f'stroke-width="1.2"{dash}>{tooltip}</line>'
            )
            if band.series is not None:
                # Which series the line belongs to, on the line itself (no legend lookup),
                # at the left: the right end holds the latest readings.
                parts.append(
                    f'<text class="band-edge-label" x="{frame.left + 4}" '
                    f'y="{px(frame.y(bound) - 3)}" font-size="10" '
                    f'fill="{colour}">{escape(f"{band.series} {format_number(bound)}")}</text>'
                )
    return parts


def _series_shapes(series, frame: Frame, unit: str, zone: ZoneInfo) -> list[str]:
    parts = []
    for index, (name, points) in enumerate(series):
        if not points:
            continue
        colour, dash = SERIES_STYLES[index % len(SERIES_STYLES)]
        drawn = _thin(points, int(frame.width))
        # A thinned line has a point or two per pixel column: gaps shorter than a few
        # columns are the thinning's, not the data's.
        column = (frame.end - frame.start).total_seconds() / frame.width
        limit = max(_gap_limit(points), 3 * column)
        path = " ".join(
            f"{'M' if i == 0 or (at - drawn[i - 1][0]).total_seconds() > limit else 'L'}"
            f"{px(frame.x(at))},{px(frame.y(value))}"
            for i, (at, value) in enumerate(drawn)
        )
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<path class="series" data-series="{escape(name)}" d="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="1.6" stroke-linejoin="round"{dash_attr}/>'
        )
        if len(points) <= MAX_DOTS:
            parts += [
                f'<circle class="point" cx="{px(frame.x(at))}" cy="{px(frame.y(value))}" '
                f'r="2.6" fill="{colour}"><title>'
                f"{escape(_point_text(name, at, value, unit, zone))}</title></circle>"
                for at, value in points
            ]
    return parts


def _point_text(name: str, at: datetime, value: float, unit: str, zone: ZoneInfo) -> str:
    reading = f"{format_number(round(value, 2))} {unit}".strip()
    prefix = f"{name} " if name else ""
    return f"{prefix}{reading} at {at.astimezone(zone):%d %b %H:%M %Z}"


def _gap_limit(points: Sequence[Point]) -> float:
    """Seconds between readings past which the line breaks: a gap far longer than the usual
    spacing (a sensor change, days without a weighing) is not a trend to draw across."""
    if len(points) < 3:
        return math.inf
    spacings = [(b[0] - a[0]).total_seconds() for a, b in pairwise(points)]
    return max(3 * median(spacings), 3600)


def _thin(points: Sequence[Point], columns: int) -> list[Point]:
    """At most two points (the lowest and highest) per pixel column: a month of CGM
    readings (8,640) draws as ~1,300 without losing a single low or high."""
    if len(points) <= 2 * columns:
        return list(points)
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds() or 1
    buckets: dict[int, list[Point]] = {}
    for point in points:
        column = min(int((point[0] - first).total_seconds() / span * columns), columns - 1)
        buckets.setdefault(column, []).append(point)
    thinned: list[Point] = []
    for column in sorted(buckets):
        bucket = buckets[column]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        thinned += sorted({low, high})
    return thinned


def _mark_shapes(marks, series, frame: Frame, unit: str, zone: ZoneInfo) -> list[str]:
    parts = []
    for at in marks:
        x = px(frame.x(at))
        label = escape(f"Triggering reading at {at.astimezone(zone):%d %b %H:%M %Z}")
        parts.append(
            f'<line class="mark" x1="{x}" x2="{x}" y1="{frame.top}" y2="{frame.bottom}" '
            f'stroke="{MARK_COLOUR}" stroke-width="1" stroke-dasharray="2 2">'
            f"<title>{label}</title></line>"
        )
        for _name, points in series:
            for point_at, value in points:
                if point_at == at:
                    parts.append(
                        f'<circle class="mark-ring" cx="{x}" cy="{px(frame.y(value))}" r="6" '
                        f'fill="none" stroke="{MARK_COLOUR}" stroke-width="2">'
                        f"<title>{label}</title></circle>"
                    )
    return parts
