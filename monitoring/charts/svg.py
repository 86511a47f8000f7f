"""The SVG itself: panels, axes, bands, limits, series and marks, composed by line_chart
and multi_line_chart. Every text goes through escape().

A chart of one series is one panel. A chart of several (blood pressure) draws one panel per
series, each with its own y axis and only its own component's limits: a systolic limit says
nothing about diastolic values, and nine lines on one axis cannot be read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from statistics import median
from zoneinfo import ZoneInfo

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from monitoring.charts.bands import (
    SEVERITY_COLOURS,
    SEVERITY_STROKES,
    Band,
    Limit,
    band_order,
    band_text,
    limits_of,
    tinted,
)
from monitoring.charts.layout import (
    AVERAGE_COLOUR,
    AXIS_HEIGHT,
    FONT,
    LABEL_FONT,
    LABEL_HEIGHT,
    LABEL_PADDING,
    LEGEND_ROW,
    MARGIN_LEFT,
    MARGIN_TOP,
    MARK_COLOUR,
    PANEL_GAP,
    PANEL_HEIGHT,
    PLOT_HEIGHT,
    SERIES_STYLES,
    WIDTH,
    Frame,
    Point,
    label_width,
    labels_height,
    place_labels,
    px,
    visible,
    y_domain,
)
from monitoring.charts.legend import (
    description,
    legend_items,
    legend_layout,
    legend_shapes,
    reading_text,
    ring_text,
)
from monitoring.charts.time_axis import x_ticks, zone_caption
from monitoring.units import format_number

# Individual dots (and their tooltips) only while they stay readable.
MAX_DOTS = 400

# (measured at, value, reading id)
Reading = tuple[datetime, float, int | None]


def line_chart(
    *,
    points: Sequence[Point],
    unit: str,
    zone: ZoneInfo,
    bands: Sequence[Band],
    marks: Collection[int],
    start: datetime,
    end: datetime,
    title: str,
    average_marks: Collection[int] = (),
) -> SafeString:
    """One series over [start, end] as an inline SVG string. `points` are (measured at,
    value, reading id); `marks` the ids of the readings that fired the alert;
    `average_marks` the ids of the readings at which an average that fired it was taken
    (the average's point is ringed, not the reading)."""
    return multi_line_chart(
        series=[("", points)],
        unit=unit,
        zone=zone,
        bands=bands,
        marks=marks,
        average_marks=average_marks,
        start=start,
        end=end,
        title=title,
    )


@dataclass
class Panel:
    """One series' plot: its readings, its bands, the limit lines it draws and, where a
    limit applies to an N-day average, that average."""

    name: str
    style: int
    readings: list[Reading]  # inside [start, end]
    bands: list[Band]
    averages: list[tuple[float, list[Reading]]]
    limits: list[Limit] = field(default_factory=list)
    frame: Frame | None = None
    # What is ringed: (reading, None) for a triggering reading, (mean, days) for the
    # triggering N-day average at a reading.
    rings: list[tuple[Reading, float | None]] = field(default_factory=list)


def multi_line_chart(
    *,
    series: Sequence[tuple[str, Sequence[Point]]],
    unit: str,
    zone: ZoneInfo,
    bands: Sequence[Band],
    marks: Collection[int],
    start: datetime,
    end: datetime,
    title: str,
    average_marks: Collection[int] = (),
) -> SafeString:
    """Several series (blood pressure: systolic and diastolic) as inline SVG, one panel
    each. A band with a `series` is drawn in that series' panel only."""
    if end <= start:
        raise ValueError("a chart needs end after start")
    panels = _panels(series, bands, start, end)
    for panel in panels:
        panel.rings = _rings(panel, frozenset(marks), frozenset(average_marks))
    legend = legend_items(panels, bands)
    legend_rows = legend_layout(legend)
    bottom = panels[-1].frame.bottom
    height = bottom + AXIS_HEIGHT + LEGEND_ROW * len(legend_rows) + 6
    chart_id = "chart-" + hashlib.sha1(f"{title}|{start}|{end}".encode()).hexdigest()[:10]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="vigil-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {px(height)}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{escape(FONT)}" font-size="11">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">'
        f"{escape(description(panels, unit, zone, bands, start, end))}</desc>",
        f'<rect class="background" x="0" y="0" width="{WIDTH}" height="{px(height)}" '
        'fill="#ffffff" stroke="#d0d7de" rx="4"/>',
        f'<text class="chart-title" x="{MARGIN_LEFT}" y="18" font-size="13" '
        f'font-weight="600" fill="#1f2328">{escape(title)}</text>',
    ]
    for panel in panels:
        parts += _panel_shapes(panel, unit, zone, titled=len(panels) > 1)
    parts += _x_labels(panels[-1].frame, zone)
    parts += legend_shapes(legend_rows, bottom + AXIS_HEIGHT)
    parts.append("</svg>")
    # Every text above went through escape().
    return mark_safe("".join(parts))


def _readings(points: Sequence[Point]) -> list[Reading]:
    readings = [
        (point[0], float(point[1]), point[2] if len(point) > 2 else None)
        for point in points
        if point[1] is not None
    ]
    return sorted(readings, key=lambda r: (r[0], r[2] or 0))


def _panels(series, bands, start: datetime, end: datetime) -> list[Panel]:
    panels = []
    top = float(MARGIN_TOP) + (10 if len(series) > 1 else 0)
    for index, (name, points) in enumerate(series):
        supplied = _readings(points)
        mine = [b for b in bands if len(series) == 1 or b.series in (None, name)]
        days = sorted({b.average_days for b in mine if getattr(b, "average_days", None)})
        panel = Panel(
            name=name,
            style=index,
            readings=[r for r in supplied if start <= r[0] <= end],
            bands=mine,
            averages=[(d, _trailing_means(supplied, d, start, end)) for d in days],
        )
        values = [r[1] for r in panel.readings] + [
            r[1] for _, means in panel.averages for r in means
        ]
        base = PLOT_HEIGHT if len(series) == 1 else PANEL_HEIGHT
        domain = y_domain(values, mine)
        probe = Frame(start, end, domain, top=top, height=base)
        panel.limits = [lim for lim in limits_of(mine) if probe.low < lim.value < probe.high]
        # A crowded panel grows until every limit's label fits beside the others.
        height = max(base, labels_height(len(panel.limits)))
        panel.frame = Frame(start, end, domain, top=top, height=height)
        panels.append(panel)
        top += height + PANEL_GAP
    return panels


def _trailing_means(
    readings: list[Reading], days: float, start: datetime, end: datetime
) -> list[Reading]:
    """The mean of the `days` days up to each reading, as an average rule computes it
    (monitoring/rules/average.py: readings in (t - days, t]), carrying the reading's id.
    Only where the whole window lies within the readings supplied: a mean over part of a
    window is not the mean the rule compared with its limit."""
    if not readings:
        return []
    window = timedelta(days=days)
    earliest = readings[0][0]
    means: list[Reading] = []
    first = upto = 0  # the window is readings[first:upto]
    total = 0.0
    for at, _value, pk in readings:
        while upto < len(readings) and readings[upto][0] <= at:  # ties: all of the instant
            total += readings[upto][1]
            upto += 1
        while readings[first][0] <= at - window:
            total -= readings[first][1]
            first += 1
        if at - window >= earliest and start <= at <= end:
            means.append((at, total / (upto - first), pk))
    return means


# --- One panel ----------------------------------------------------------------------------


def _panel_shapes(panel: Panel, unit: str, zone: ZoneInfo, *, titled: bool) -> list[str]:
    frame = panel.frame
    parts = []
    if titled:
        parts.append(
            f'<text class="panel-title" x="{frame.left}" y="{px(frame.top - 7)}" '
            f'font-weight="600" fill="#1f2328">{escape(panel.name)}</text>'
        )
    if unit:
        parts.append(
            f'<text class="unit" x="{frame.left - 8}" y="{px(frame.top - 6)}" '
            f'text-anchor="end" fill="#57606a">{escape(unit)}</text>'
        )
    parts += _band_shapes(panel.bands, frame)
    parts += _y_axis(frame)
    parts += _x_grid(frame, zone)
    parts += _limit_lines(panel.limits, frame)
    parts += _series_shapes(panel, unit, zone)
    parts += _mark_shapes(panel, unit, zone)
    parts += _limit_labels(panel.limits, frame)
    if not panel.readings:
        parts.append(
            f'<text class="empty" x="{frame.left + frame.width / 2:.1f}" '
            f'y="{frame.top + frame.height / 2:.1f}" text-anchor="middle" fill="#57606a">'
            "No readings in this period</text>"
        )
    return parts


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
        f'<rect class="plot-border" x="{frame.left}" y="{px(frame.top)}" width="{frame.width}" '
        f'height="{px(frame.height)}" fill="none" stroke="#8c959f" stroke-width="1"/>'
    )
    return parts


def _x_grid(frame: Frame, zone: ZoneInfo) -> list[str]:
    return [
        f'<line class="grid-x" x1="{px(frame.x(at))}" x2="{px(frame.x(at))}" '
        f'y1="{px(frame.top)}" y2="{px(frame.bottom)}" stroke="#eaeef2" stroke-width="1"/>'
        for at, _label in x_ticks(frame.start, frame.end, zone)
    ]


def _x_labels(frame: Frame, zone: ZoneInfo) -> list[str]:
    parts = [
        f'<text class="tick-x" x="{px(frame.x(at))}" y="{px(frame.bottom + 14)}" '
        f'text-anchor="middle" fill="#57606a">{escape(label)}</text>'
        for at, label in x_ticks(frame.start, frame.end, zone)
    ]
    parts.append(
        f'<text class="zone" x="{frame.left + frame.width}" y="{px(frame.bottom + 30)}" '
        f'text-anchor="end" fill="#57606a">'
        f"{escape(zone_caption(frame.start, frame.end, zone))}</text>"
    )
    return parts


# --- Bands and limits ---------------------------------------------------------------------


def _band_shapes(bands: Sequence[Band], frame: Frame) -> list[str]:
    """Regions of single readings on a one-series chart, tinted by severity (the limit
    lines at their edges carry the dash pattern and the words). A band of one series of
    several, of an average or of a share of time (a target aside) is a line only: a tint
    would say single readings in it alerted."""
    parts = []
    for band in sorted(bands, key=band_order):
        if not tinted(band) or not visible(band, frame):
            continue  # the legend and the description still name it
        colour = SEVERITY_COLOURS.get(band.severity, "#57606a")
        top = frame.y(frame.high if band.high is None else band.high)
        bottom = frame.y(frame.low if band.low is None else band.low)
        parts.append(
            f'<rect class="band band-{escape(band.severity)}" x="{frame.left}" y="{px(top)}" '
            f'width="{frame.width}" height="{px(bottom - top)}" fill="{colour}" '
            f'fill-opacity="0.16"><title>{escape(band_text(band))}</title></rect>'
        )
    return parts


def limit_classes(limit: Limit, base: str) -> str:
    classes = f"{base} {base}-{limit.severity}"
    return classes + (f" {base}-average" if limit.average_days else "")


def _limit_lines(limits: Sequence[Limit], frame: Frame) -> list[str]:
    parts = []
    for limit in limits:
        colour = SEVERITY_COLOURS.get(limit.severity, "#57606a")
        dash, width = SEVERITY_STROKES.get(limit.severity, ("", "1.4"))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        y = px(frame.y(limit.value))
        parts.append(
            f'<line class="{limit_classes(limit, "limit")}" data-value="'
            f'{escape(format_number(limit.value))}" x1="{frame.left}" '
            f'x2="{frame.left + frame.width}" y1="{y}" y2="{y}" stroke="{colour}" '
            f'stroke-width="{width}"{dash_attr}><title>{escape(limit.rules_text)}</title></line>'
        )
    return parts


def _limit_labels(limits: Sequence[Limit], frame: Frame) -> list[str]:
    """Each line's words in a box at the plot's left (the right holds the latest readings),
    moved up or down just enough that no two boxes overlap, with a leader to its line when
    moved."""
    centres = place_labels([frame.y(limit.value) for limit in limits], frame.top, frame.bottom)
    parts = []
    for limit, centre in zip(limits, centres, strict=True):
        colour = SEVERITY_COLOURS.get(limit.severity, "#57606a")
        x = frame.left + 4
        width = label_width(limit.label)
        line_y = frame.y(limit.value)
        leader = ""
        if abs(centre - line_y) > LABEL_HEIGHT / 2:
            edge = centre - LABEL_HEIGHT / 2 if line_y < centre else centre + LABEL_HEIGHT / 2
            leader = (
                f'<line class="limit-leader" x1="{px(x + 10)}" x2="{px(x + 10)}" '
                f'y1="{px(edge)}" y2="{px(line_y)}" stroke="{colour}" stroke-width="1"/>'
            )
        italic = ' font-style="italic"' if limit.average_days else ""
        parts.append(
            f'<g class="{limit_classes(limit, "limit-label")}">{leader}'
            f'<rect class="limit-label-box" x="{px(x)}" y="{px(centre - LABEL_HEIGHT / 2)}" '
            f'width="{px(width)}" height="{LABEL_HEIGHT}" rx="2" fill="#ffffff" '
            f'fill-opacity="0.75" stroke="{colour}" stroke-width="1"/>'
            f'<text x="{px(x + LABEL_PADDING)}" y="{px(centre)}" dy="0.35em" '
            f'font-size="{LABEL_FONT}" fill="#1f2328"{italic}>{escape(limit.label)}</text>'
            f"<title>{escape(limit.rules_text)}</title></g>"
        )
    return parts


# --- Series and marks ---------------------------------------------------------------------


def _path(readings: Sequence[Reading], frame: Frame) -> str:
    drawn = _thin(readings, int(frame.width))
    # A thinned line has a point or two per pixel column: gaps shorter than a few
    # columns are the thinning's, not the data's.
    column = (frame.end - frame.start).total_seconds() / frame.width
    limit = max(_gap_limit(readings), 3 * column)
    return " ".join(
        f"{'M' if i == 0 or (r[0] - drawn[i - 1][0]).total_seconds() > limit else 'L'}"
        f"{px(frame.x(r[0]))},{px(frame.y(r[1]))}"
        for i, r in enumerate(drawn)
    )


def _series_shapes(panel: Panel, unit: str, zone: ZoneInfo) -> list[str]:
    frame = panel.frame
    parts = []
    name = escape(panel.name)
    for days, means in panel.averages:
        if means:
            parts.append(
                f'<path class="average-series" data-series="{name}" '
                f'data-days="{escape(format_number(days))}" d="{_path(means, frame)}" '
                f'fill="none" stroke="{AVERAGE_COLOUR}" stroke-width="2.8" '
                f'stroke-opacity="0.85" stroke-linejoin="round"/>'
            )
    if not panel.readings:
        return parts
    colour, dash = SERIES_STYLES[panel.style % len(SERIES_STYLES)]
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    parts.append(
        f'<path class="series" data-series="{name}" d="{_path(panel.readings, frame)}" '
        f'fill="none" stroke="{colour}" stroke-width="1.6" stroke-linejoin="round"{dash_attr}/>'
    )
    if len(panel.readings) <= MAX_DOTS:
        parts += [
            f'<circle class="point" cx="{px(frame.x(at))}" cy="{px(frame.y(value))}" '
            f'r="2.6" fill="{colour}"><title>'
            f"{escape(reading_text(panel.name, at, value, unit, zone))}</title></circle>"
            for at, value, _pk in panel.readings
        ]
    return parts


def _gap_limit(points: Sequence[Reading]) -> float:
    """Seconds between readings past which the line breaks: a gap far longer than the usual
    spacing (a sensor change, days without a weighing) is not a trend to draw across."""
    if len(points) < 3:
        return math.inf
    spacings = [(b[0] - a[0]).total_seconds() for a, b in pairwise(points)]
    return max(3 * median(spacings), 3600)


def _thin(points: Sequence[Reading], columns: int) -> list[Reading]:
    """At most two points (the lowest and highest) per pixel column: a month of CGM
    readings (8,640) draws as ~1,300 without losing a single low or high."""
    if len(points) <= 2 * columns:
        return list(points)
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds() or 1
    buckets: dict[int, list[Reading]] = {}
    for point in points:
        column = min(int((point[0] - first).total_seconds() / span * columns), columns - 1)
        buckets.setdefault(column, []).append(point)
    thinned: list[Reading] = []
    for column in sorted(buckets):
        bucket = buckets[column]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        thinned += [low] if low is high else sorted((low, high), key=lambda p: p[0])
    return thinned


def _rings(panel: Panel, marks: frozenset, average_marks: frozenset) -> list:
    """What fired the alert, found by reading id: the reading itself, or, for an average
    that fired, the average drawn at that reading (the reading where none is drawn). Another
    reading at the same instant (a sensor value beside a fingerstick) is not ringed."""
    rings: list[tuple[Reading, float | None]] = []
    averaged: set[int] = set()
    for days, means in panel.averages:
        for mean in means:
            if mean[2] is not None and mean[2] in average_marks:
                rings.append((mean, days))
                averaged.add(mean[2])
    for reading in panel.readings:
        pk = reading[2]
        if pk is not None and (pk in marks or (pk in average_marks and pk not in averaged)):
            rings.append((reading, None))
    return sorted(rings, key=lambda ring: (ring[0][0], ring[1] or 0))


def _mark_shapes(panel: Panel, unit: str, zone: ZoneInfo) -> list[str]:
    """A ring round what fired the alert, and a guide at its time."""
    frame = panel.frame
    parts = []
    guides: set[str] = set()
    for ring in panel.rings:
        (at, value, pk), days = ring
        x = px(frame.x(at))
        label = escape(ring_text(panel, ring, unit, zone))
        if x not in guides:
            guides.add(x)
            parts.append(
                f'<line class="mark" x1="{x}" x2="{x}" y1="{px(frame.top)}" '
                f'y2="{px(frame.bottom)}" stroke="{MARK_COLOUR}" stroke-width="1" '
                f'stroke-dasharray="2 2"><title>{label}</title></line>'
            )
        kind = ' class="mark-ring mark-ring-average"' if days else ' class="mark-ring"'
        parts.append(
            f'<circle{kind} data-reading="{pk}" cx="{x}" cy="{px(frame.y(value))}" '
            f'r="6" fill="none" stroke="{MARK_COLOUR}" stroke-width="2">'
            f"<title>{label}</title></circle>"
        )
    return parts
