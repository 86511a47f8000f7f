"""The chart's layout and scales: where a (time, value) lands in SVG units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from monitoring.charts.bands import Band

Point = tuple[datetime, float]

# Layout, in SVG user units (the SVG scales to its container's width).
WIDTH = 720
PLOT_HEIGHT = 200
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


class Frame:
    """The plot area and the scales from (time, value) to SVG coordinates."""

    def __init__(self, start: datetime, end: datetime, domain: tuple[float, float]):
        self.start, self.end = start, end
        self.left = MARGIN_LEFT
        self.top = MARGIN_TOP
        self.width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        self.bottom = MARGIN_TOP + PLOT_HEIGHT
        self.low, self.high, self.step = _nice_domain(*domain)

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return self.left + self.width * (at - self.start).total_seconds() / span

    def y(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        return self.bottom - PLOT_HEIGHT * (value - self.low) / (self.high - self.low)


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
