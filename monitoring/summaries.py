"""Summary metrics computed from a patient's readings: CGM time in ranges, CV and GMI, and
INR time in therapeutic range (Rosendaal). Pure functions; the formulas and their numbers
come from the clinical reference (blood_glucose.computed_metrics, inr.computed_metrics).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from itertools import pairwise
from statistics import fmean, pstdev

from monitoring.units import load_reference


def in_band(value: float, band: dict) -> bool:
    """band: {"lower": {"value", "inclusive"}, "upper": {...}}, either bound optional."""
    lower, upper = band.get("lower"), band.get("upper")
    above_lower = (
        lower is None or value > lower["value"] or (value == lower["value"] and lower["inclusive"])
    )
    below_upper = (
        upper is None or value < upper["value"] or (value == upper["value"] and upper["inclusive"])
    )
    return above_lower and below_upper


def percent_in_band(values: Sequence[float], band: dict) -> float:
    """reference: pct_range = 100 * (readings in range) / (valid readings in window)."""
    return 100 * sum(1 for v in values if in_band(v, band)) / len(values)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """CV(%) = 100 * SD / mean, population SD (the reference's documented convention)."""
    return 100 * pstdev(values) / fmean(values)


@cache
def gmi_coefficients() -> tuple[float, float]:
    formula = load_reference()["blood_glucose"]["computed_metrics"]["gmi"]["formula_percent"]
    match = re.fullmatch(r"GMI\(%\) = ([\d.]+) \+ ([\d.]+) \* mean_glucose_mg_dL", formula)
    if match is None:
        raise ValueError(f"unrecognised GMI formula in the clinical reference: {formula}")
    return float(match[1]), float(match[2])


def gmi_percent(mean_mg_dl: float) -> float:
    intercept, slope = gmi_coefficients()
    return intercept + slope * mean_mg_dl


def cgm_data_sufficient(
    times: Sequence[datetime],
    *,
    now: datetime,
    window_days: float,
    min_days: float,
    min_percent_active: float,
    sensor_interval_minutes: float,
) -> bool:
    """Reference rule: ≥ min_days of data and ≥ min_percent_active of the possible readings."""
    if not times:
        return False
    possible = window_days * 24 * 60 / sensor_interval_minutes
    span = max(times) - min(times)
    # A 14-day window with data on each day spans 13 days and a bit from first to last.
    return 100 * len(times) / possible >= min_percent_active and span >= timedelta(
        days=min_days - 1
    )


@dataclass(frozen=True)
class TimeInRange:
    days_in_range: float
    days_below: float
    days_above: float
    days_total: int

    @property
    def percent(self) -> float | None:
        return 100 * self.days_in_range / self.days_total if self.days_total else None


def rosendaal_ttr(
    points: Sequence[tuple[date, float]], *, low: float, high: float, max_gap_days: int
) -> TimeInRange:
    """Rosendaal 1993 linear interpolation, as in inr.computed_metrics.ttr_rosendaal:
    one value per day (the last), each day of an interval interpolated, gaps longer than
    max_gap_days not interpolated, bounds inclusive."""
    daily: dict[date, float] = {}
    for day, value in sorted(points, key=lambda point: point[0]):
        daily[day] = value  # the last of a day wins
    days = sorted(daily)
    inside = below = above = total = 0
    for start, end in pairwise(days):
        gap = (end - start).days
        if gap > max_gap_days:
            continue
        first, last = daily[start], daily[end]
        for k in range(gap):
            value = first + (last - first) * k / gap
            total += 1
            if value < low:
                below += 1
            elif value > high:
                above += 1
            else:
                inside += 1
    return TimeInRange(inside, below, above, total)
