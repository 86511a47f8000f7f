"""The chart's layout and scales: where a (time, value) lands in SVG units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from monitoring.rules.bands import Band

# (measured at, value) or (measured at, value, reading id): marks find readings by id.
Point = tuple[datetime, float] | tuple[datetime, float, int | None]

# Layout, in SVG user units (the SVG scales to its container's width).
WIDTH = 720
PLOT_HEIGHT = 200
# A chart of several series (blood pressure) draws one panel per series, each with its own
# limits, the x axis under the last.
PANEL_HEIGHT = 150
PANEL_GAP = 24  # the next panel's title
MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 34
AXIS_HEIGHT = 40  # tick labels and the time-zone caption under the plot
LEGEND_ROW = 18
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
SERIES_STYLES = [
    # (stroke colour, dash pattern): told apart by dash as well as colour.
    ("#263238", ""),
    ("#6a1b9a", "6 3"),
    ("#00695c", "2 3"),
]
MARK_COLOUR = "#111111"
AVERAGE_COLOUR = "#00838f"
# Limit labels: 10-unit text in a box. The width is an estimate (no font metrics on the
# server): generous, so a box covers its text in any sans-serif.
LABEL_FONT = 10
LABEL_HEIGHT = 13
LABEL_GAP = 1
LABEL_CHAR = 5.9
LABEL_PADDING = 3


def label_width(text: str) -> float:
    return LABEL_CHAR * len(text) + 2 * LABEL_PADDING


def labels_height(count: int) -> float:
    """The plot height that holds `count` limit labels one above the other."""
    return count * (LABEL_HEIGHT + LABEL_GAP) + 2 * LABEL_GAP


def place_labels(wanted: Sequence[float], top: float, bottom: float) -> list[float]:
    """Centres for label boxes LABEL_HEIGHT tall, each as near its wanted centre (its line)
    as the others allow, none overlapping another, all within [top, bottom] whenever
    labels_height(len(wanted)) <= bottom - top. In the order given."""
    step = LABEL_HEIGHT + LABEL_GAP
    half = LABEL_HEIGHT / 2
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    low, high = top + half + LABEL_GAP, bottom - half - LABEL_GAP
    centres = [min(max(wanted[i], low), high) for i in order]
    for i in range(1, len(centres)):  # push down past the one above
        centres[i] = max(centres[i], centres[i - 1] + step)
    if centres and centres[-1] > high:  # then back up from the bottom
        centres[-1] = high
        for i in range(len(centres) - 2, -1, -1):
            centres[i] = min(centres[i], centres[i + 1] - step)
    if centres and centres[0] < low - 1e-6:  # more than fit: stacked from the top
        centres[0] = low
        for i in range(1, len(centres)):
            centres[i] = max(centres[i], centres[i - 1] + step)
    placed = [0.0] * len(wanted)
    for rank, index in enumerate(order):
        placed[index] = centres[rank]
    return placed


class Frame:
    """The plot area and the scales from (time, value) to SVG coordinates."""

    def __init__(
        self,
        start: datetime,
        end: datetime,
        domain: tuple[float, float],
        *,
        top: float = MARGIN_TOP,
        height: float = PLOT_HEIGHT,
    ):
        self.start, self.end = start, end
        self.left = MARGIN_LEFT
        self.top = top
        self.height = height
        self.width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        self.bottom = top + height
        self.low, self.high, self.step = _nice_domain(*domain)

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return self.left + self.width * (at - self.start).total_seconds() / span

    def y(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        return self.bottom - self.height * (value - self.low) / (self.high - self.low)


def y_domain(values: Sequence[float], bands: Sequence[Band]) -> tuple[float, float]:
    """The data's range, widened to the nearest threshold on each side: the chart shows how
    close the readings come to the next band without squashing them under far-off ones."""
    bounds = sorted({b for band in bands for b in (band.low, band.high) if b is not None})
    if not values:
        return (bounds[0], bounds[-1]) if bounds else (0.0, 1.0)
    low, high = min(values), max(values)
    below = [b for b in bounds if b <= low]
    above = [b for b in bounds if b >= high]
    if below:
        low = below[-1]
    if above:
        high = above[0]
    return low, high


def _nice_domain(low: float, high: float) -> tuple[float, float, float]:
    if high - low < 1e-9:
        pad = max(abs(low) * 0.1, 1.0)
        low, high = low - pad, high + pad
    pad = (high - low) * 0.05
    step = _nice_step((high - low + 2 * pad) / 5)
    return (
        math.floor((low - pad) / step) * step,
        math.ceil((high + pad) / step) * step,
        step,
    )


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def px(value: float) -> str:
    """A coordinate: one decimal is finer than a screen pixel at any sensible size."""
    return f"{value:.1f}"


def visible(band: Band, frame: Frame) -> bool:
    low = frame.low if band.low is None else band.low
    high = frame.high if band.high is None else band.high
    return high > frame.low and low < frame.high
