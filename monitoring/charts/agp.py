"""The ambulatory glucose profile (AGP) and the stacked time-in-ranges bar, as inline SVG.

The international consensus report's format (Battelino 2019; the AGP report of the
International Diabetes Center): a CGM's readings folded over the days onto one local day, drawn
as the median and the 25–75 % and 5–95 % percentile bands by time of day, the target range
shaded; beside it one bar stacking the shares of time very low, low, in range, high and very
high, each labelled with its range and percentage.

Pure functions: the bins (monitoring.summaries.glucose_profile) and the shares in, an SVG
string out. No script, no external asset, no inline style attribute (the page's CSP); every
text is escaped.

    agp_chart(profile=bins, bin_minutes=30, target=(70, 180), unit="mg/dL",
              title="Ambulatory glucose profile, last 14 days")
    time_in_ranges_bar(shares=[RangeBar("very_high", "Very high", "> 250 mg/dL", 2.1), …],
                       title="Time in ranges, last 14 days")
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from monitoring.charts.layout import FONT, px
from monitoring.summaries import ProfileBin
from monitoring.units import format_number

# Layout, in SVG user units (the SVG scales to its container's width).
WIDTH = 720
MARGIN_LEFT = 52
MARGIN_RIGHT = 16
MARGIN_TOP = 34
PLOT_HEIGHT = 240
AXIS_HEIGHT = 34
LEGEND_HEIGHT = 22
# The consensus AGP's glucose axis: 0 to 350 mg/dL, raised in steps of 50 when the 95th
# percentile goes higher (up to the sensors' usual 400 and one step more).
Y_TOP = 350
Y_STEP = 50
Y_MAX = 450
HOUR_TICKS = range(0, 25, 3)

# Blues of increasing depth (the AGP report's convention): the outer band lightest.
OUTER_BAND = "#b7d3ee"
INNER_BAND = "#5b9bd5"
MEDIAN = "#0b3c74"
TARGET = "#2e7d32"  # the charts' "target" green (monitoring.charts.bands)

# The time-in-ranges bar: very low to very high, the consensus report's colours.
RANGE_COLOURS = {
    "very_low": "#8b1a1a",
    "low": "#e53935",
    "in_range": "#43a047",
    "high": "#fbc02d",
    "very_high": "#ef6c00",
}


def _chart_id(prefix: str, title: str) -> str:
    return f"{prefix}-" + hashlib.sha1(title.encode()).hexdigest()[:10]


def _clock(minute: float) -> str:
    minute = round(minute) % (24 * 60)
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --- The profile ------------------------------------------------------------------------------


class _Frame:
    def __init__(self, top_value: float):
        self.left, self.top = MARGIN_LEFT, MARGIN_TOP
        self.width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        self.bottom = MARGIN_TOP + PLOT_HEIGHT
        self.high = top_value

    def x(self, minute: float) -> float:
        return self.left + self.width * minute / (24 * 60)

    def y(self, value: float) -> float:
        value = min(max(value, 0.0), self.high)
        return self.bottom - PLOT_HEIGHT * value / self.high


def _y_top(profile: Sequence[ProfileBin]) -> float:
    highest = max((b.percentiles[95] for b in profile if b.drawn), default=0.0)
    top = Y_TOP
    while top < highest and top < Y_MAX:
        top += Y_STEP
    return top


def _runs(profile: Sequence[ProfileBin]) -> list[list[ProfileBin]]:
    """Consecutive drawn bins: a bin without enough readings breaks the curves (no line is
    drawn through a time of day the data do not cover)."""
    runs: list[list[ProfileBin]] = [[]]
    for bin_ in profile:
        if bin_.drawn:
            runs[-1].append(bin_)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _band_path(run, low: int, high: int, frame: _Frame, half: float) -> str:
    upper = [(frame.x(b.start_minute + half), frame.y(b.percentiles[high])) for b in run]
    lower = [(frame.x(b.start_minute + half), frame.y(b.percentiles[low])) for b in run]
    if len(run) == 1:  # one bin: a bar its own width, not an invisible line
        x, side = upper[0][0], half * frame.width / (24 * 60)
        upper = [(x - side, upper[0][1]), (x + side, upper[0][1])]
        lower = [(x - side, lower[0][1]), (x + side, lower[0][1])]
    points = upper + list(reversed(lower))
    return "M" + " L".join(f"{px(x)},{px(y)}" for x, y in points) + " Z"


def _line_path(run, p: int, frame: _Frame, half: float) -> str:
    return "M" + " L".join(
        f"{px(frame.x(b.start_minute + half))},{px(frame.y(b.percentiles[p]))}" for b in run
    )


def agp_chart(
    *,
    profile: Sequence[ProfileBin],
    bin_minutes: int,
    target: tuple[float, float],
    unit: str,
    title: str,
    zone_name: str = "",
) -> SafeString:
    """The profile's percentile bands and median over the local day, the target range
    shaded, as an inline SVG string. Times of day are the patient's clock (`zone_name`)."""
    frame = _Frame(_y_top(profile))
    half = bin_minutes / 2
    chart_id = _chart_id("agp", title)
    height = MARGIN_TOP + PLOT_HEIGHT + AXIS_HEIGHT + LEGEND_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="vigil-chart vigil-agp" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{escape(FONT)}" font-size="11">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(_describe(profile, target, unit, half))}</desc>',
        f'<rect class="background" x="0" y="0" width="{WIDTH}" height="{height}" '
        'fill="#ffffff" stroke="#d0d7de" rx="4"/>',
        f'<text class="chart-title" x="{MARGIN_LEFT}" y="18" font-size="13" '
        f'font-weight="600" fill="#1f2328">{escape(title)}</text>',
        f'<text class="unit" x="{MARGIN_LEFT - 8}" y="{MARGIN_TOP - 6}" text-anchor="end" '
        f'fill="#57606a">{escape(unit)}</text>',
    ]
    low, high = target
    parts.append(
        f'<rect class="agp-target" x="{frame.left}" y="{px(frame.y(high))}" '
        f'width="{frame.width}" height="{px(frame.y(low) - frame.y(high))}" fill="{TARGET}" '
        f'fill-opacity="0.12"><title>{escape(_target_text(target, unit))}</title></rect>'
    )
    parts += _y_axis(frame, target)
    parts += _x_axis(frame, zone_name)
    for run in _runs(profile):
        parts.append(
            f'<path class="agp-band agp-band-5-95" d="{_band_path(run, 5, 95, frame, half)}" '
            f'fill="{OUTER_BAND}" fill-opacity="0.75" stroke="none"/>'
        )
        parts.append(
            f'<path class="agp-band agp-band-25-75" d="{_band_path(run, 25, 75, frame, half)}" '
            f'fill="{INNER_BAND}" fill-opacity="0.8" stroke="none"/>'
        )
        parts.append(
            f'<path class="agp-median" d="{_line_path(run, 50, frame, half)}" fill="none" '
            f'stroke="{MEDIAN}" stroke-width="2.4" stroke-linejoin="round"/>'
        )
    for value in target:
        y = px(frame.y(value))
        parts.append(
            f'<line class="agp-target-edge" x1="{frame.left}" x2="{frame.left + frame.width}" '
            f'y1="{y}" y2="{y}" stroke="{TARGET}" stroke-width="1.2"/>'
        )
    if not any(b.drawn for b in profile):
        parts.append(
            f'<text class="empty" x="{px(frame.left + frame.width / 2)}" '
            f'y="{px(frame.top + PLOT_HEIGHT / 2)}" text-anchor="middle" fill="#57606a">'
            "No sensor readings to profile</text>"
        )
    parts += _legend(frame.bottom + AXIS_HEIGHT + 10, target, unit)
    parts.append("</svg>")
    # Every text above went through escape().
    return mark_safe("".join(parts))


def _target_text(target: tuple[float, float], unit: str) -> str:
    return f"Target range {format_number(target[0])}–{format_number(target[1])} {unit}"


def _y_axis(frame: _Frame, target: tuple[float, float]) -> list[str]:
    parts = []
    value = 0
    while value <= frame.high:
        y = px(frame.y(value))
        parts.append(
            f'<line class="grid-y" x1="{frame.left}" x2="{frame.left + frame.width}" '
            f'y1="{y}" y2="{y}" stroke="#eaeef2" stroke-width="1"/>'
            f'<text class="tick-y" x="{frame.left - 6}" y="{y}" dy="0.32em" text-anchor="end" '
            f'fill="#57606a">{value}</text>'
        )
        value += Y_STEP
    for bound in target:  # the target's own numbers on the axis, in its colour
        parts.append(
            f'<text class="tick-target" x="{frame.left + frame.width - 4}" '
            f'y="{px(frame.y(bound) - 3)}" text-anchor="end" font-size="10" '
            f'fill="{TARGET}">{escape(format_number(bound))}</text>'
        )
    parts.append(
        f'<rect class="plot-border" x="{frame.left}" y="{frame.top}" width="{frame.width}" '
        f'height="{PLOT_HEIGHT}" fill="none" stroke="#8c959f" stroke-width="1"/>'
    )
    return parts


def _x_axis(frame: _Frame, zone_name: str) -> list[str]:
    parts = []
    for hour in HOUR_TICKS:
        x = px(frame.x(hour * 60))
        parts.append(
            f'<line class="grid-x" x1="{x}" x2="{x}" y1="{frame.top}" y2="{frame.bottom}" '
            f'stroke="#eaeef2" stroke-width="1"/>'
            f'<text class="tick-x" x="{x}" y="{frame.bottom + 14}" text-anchor="middle" '
            f'fill="#57606a">{_clock(hour * 60) if hour < 24 else "24:00"}</text>'
        )
    caption = "Time of day, the patient's clock" + (f" ({zone_name})" if zone_name else "")
    parts.append(
        f'<text class="zone" x="{frame.left + frame.width}" y="{frame.bottom + 28}" '
        f'text-anchor="end" fill="#57606a">{escape(caption)}</text>'
    )
    return parts


def _legend(y: float, target: tuple[float, float], unit: str) -> list[str]:
    items = [
        ("rect", OUTER_BAND, "5–95 %"),
        ("rect", INNER_BAND, "25–75 %"),
        ("line", MEDIAN, "Median"),
        ("target", TARGET, _target_text(target, unit)),
    ]
    parts, x = [], float(MARGIN_LEFT)
    for shape, colour, text in items:
        if shape == "line":
            swatch = (
                f'<line x1="{px(x)}" x2="{px(x + 16)}" y1="{px(y - 4)}" y2="{px(y - 4)}" '
                f'stroke="{colour}" stroke-width="2.4"/>'
            )
        else:
            opacity = "0.25" if shape == "target" else "0.85"
            swatch = (
                f'<rect x="{px(x)}" y="{px(y - 9)}" width="16" height="10" fill="{colour}" '
                f'fill-opacity="{opacity}" stroke="{colour}"/>'
            )
        parts.append(
            f'<g class="legend">{swatch}<text x="{px(x + 22)}" y="{px(y)}" fill="#1f2328">'
            f"{escape(text)}</text></g>"
        )
        x += 22 + 6.2 * len(text) + 18
    return parts


def _describe(profile, target, unit: str, half: float) -> str:
    drawn = [b for b in profile if b.drawn]
    if not drawn:
        return "No sensor readings to profile."
    lowest = min(drawn, key=lambda b: b.percentiles[50])
    highest = max(drawn, key=lambda b: b.percentiles[50])

    def at(bin_: ProfileBin) -> str:
        median = format_number(round(bin_.percentiles[50]))
        return f"{median} {unit} at {_clock(bin_.start_minute + half)}"

    return (
        f"Median glucose by time of day from {sum(b.readings for b in profile)} sensor "
        f"readings: lowest {at(lowest)}, highest {at(highest)}; "
        f"5th percentile as low as {format_number(round(min(b.percentiles[5] for b in drawn)))}, "
        f"95th as high as {format_number(round(max(b.percentiles[95] for b in drawn)))} {unit}. "
        f"{_target_text(target, unit)} shaded."
    )


# --- The time-in-ranges bar ---------------------------------------------------------------------

BAR_WIDTH = 270
BAR_HEIGHT = 240
BAR_TOP = 34
BAR_X = 12
BAR_THICKNESS = 36
LABEL_X = BAR_X + BAR_THICKNESS + 20


@dataclass(frozen=True)
class RangeBar:
    """One range of the bar: its key (RANGE_COLOURS), name, bounds as text and share."""

    key: str
    name: str
    bounds: str
    percent: float


def time_in_ranges_bar(
    *, shares: Sequence[RangeBar], title: str, heading: str | None = None
) -> SafeString:
    """The shares stacked bottom (very low) to top (very high), each labelled on its own row
    beside the bar (a thin share's label never overlaps its neighbour's), a leader line from
    the row to its segment. `heading`: the visible title when `title` (the accessible one)
    is too long for the bar's width."""
    chart_id = _chart_id("tir", title)
    ordered = list(reversed(shares))  # drawn top to bottom: very high first
    height = BAR_TOP + BAR_HEIGHT + 14
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="vigil-chart vigil-tir" role="img" '
        f'viewBox="0 0 {BAR_WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{escape(FONT)}" font-size="12">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">'
        + escape("; ".join(f"{s.name} ({s.bounds}): {s.percent:.1f} %" for s in shares) + ".")
        + "</desc>",
        f'<rect class="background" x="0" y="0" width="{BAR_WIDTH}" height="{height}" '
        'fill="#ffffff" stroke="#d0d7de" rx="4"/>',
        f'<text class="chart-title" x="{BAR_X}" y="18" font-size="13" font-weight="600" '
        f'fill="#1f2328">{escape(heading or title)}</text>',
    ]
    total = sum(s.percent for s in shares) or 1.0
    y = float(BAR_TOP)
    row_height = BAR_HEIGHT / max(len(ordered), 1)
    for index, share in enumerate(ordered):
        colour = RANGE_COLOURS.get(share.key, "#57606a")
        segment = BAR_HEIGHT * share.percent / total
        text = f"{share.name} {share.bounds}: {share.percent:.1f} %"
        parts.append(
            f'<rect class="tir-segment" data-range="{escape(share.key)}" x="{BAR_X}" '
            f'y="{px(y)}" width="{BAR_THICKNESS}" height="{px(segment)}" fill="{colour}">'
            f"<title>{escape(text)}</title></rect>"
        )
        row_y = BAR_TOP + row_height * (index + 0.5)
        parts.append(
            f'<line class="tir-leader" x1="{BAR_X + BAR_THICKNESS}" y1="{px(y + segment / 2)}" '
            f'x2="{LABEL_X - 6}" y2="{px(row_y)}" stroke="#8c959f" stroke-width="1"/>'
            f'<text class="tir-label" data-range="{escape(share.key)}" x="{LABEL_X}" '
            f'y="{px(row_y)}" dy="0.32em" fill="#1f2328"><tspan font-weight="600">'
            f"{escape(f'{share.percent:.1f} %')}</tspan> {escape(share.name)} "
            f'<tspan fill="#57606a">{escape(share.bounds)}</tspan></text>'
        )
        y += segment
    parts.append("</svg>")
    # Every text above went through escape().
    return mark_safe("".join(parts))
