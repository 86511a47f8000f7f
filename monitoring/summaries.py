"""Summary metrics computed from a patient's readings: CGM data sufficiency, time in ranges,
CV and GMI, and INR time in therapeutic range (Rosendaal). Pure functions; the formulas and
their numbers come from the clinical reference (blood_glucose.cgm_targets.data_sufficiency,
blood_glucose.computed_metrics, inr.computed_metrics).

The only copy of each formula: the rules (monitoring/rules/cgm_summary.py, inr_ttr.py) and
the patient page (monitoring/patient_summary.py) both call these, through the rule modules'
window functions, so the page shows what the rules alert on.
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


@dataclass(frozen=True)
class CgmSufficiency:
    """How much CGM data a window holds, against blood_glucose.cgm_targets.data_sufficiency:
    ">=14 days of data AND sensor active >=70% of the possible readings in the window"."""

    readings: int
    possible_readings: float
    # The longest wear the readings allow: a sensor worn from T to T + 14 days reads first
    # within one sensor interval after T and last within one interval before T + 14 days,
    # so its data span is first-to-last plus an interval at each end (zero without data).
    span: timedelta
    min_days: float
    min_percent_active: float

    @property
    def days(self) -> float:
        return self.span / timedelta(days=1)

    @property
    def percent_active(self) -> float:
        return 100 * self.readings / self.possible_readings

    @property
    def sufficient(self) -> bool:
        return (
            self.span >= timedelta(days=self.min_days)
            and self.percent_active >= self.min_percent_active
        )


def cgm_sufficiency(
    times: Sequence[datetime],
    *,
    window_days: float,
    min_days: float,
    min_percent_active: float,
    sensor_interval_minutes: float,
) -> CgmSufficiency:
    """The data sufficiency of the CGM readings taken at `times` (those of one window)."""
    interval = timedelta(minutes=sensor_interval_minutes)
    span = max(times) - min(times) + 2 * interval if times else timedelta(0)
    return CgmSufficiency(
        readings=len(times),
        possible_readings=window_days * 24 * 60 / sensor_interval_minutes,
        span=span,
        min_days=min_days,
        min_percent_active=min_percent_active,
    )


@dataclass(frozen=True)
class TimeInRange:
    days_in_range: int
    days_below: int
    days_above: int
    days_total: int
    results: int  # the INR values (one per day) the figure rests on

    @property
    def percent(self) -> float | None:
        return 100 * self.days_in_range / self.days_total if self.days_total else None


def rosendaal_ttr(
    points: Sequence[tuple[date, float]],
    *,
    low: float,
    high: float,
    max_gap_days: int,
    since: date | None = None,
) -> TimeInRange:
    """Rosendaal 1993 linear interpolation, as in inr.computed_metrics.ttr_rosendaal:
    one value per day (the last), each day of an interval interpolated, gaps longer than
    max_gap_days not interpolated, bounds inclusive.

    With `since` (the window's first day) only the days from it on count, and of the values
    before it only the latest: the interval from it into the window contributes its days
    inside the window, so the interpolation covers the window from its start."""
    daily: dict[date, float] = {}
    for day, value in sorted(points, key=lambda point: point[0]):
        daily[day] = value  # the last of a day wins
    days = sorted(daily)
    if since is not None:
        before = [day for day in days if day < since]
        in_window = [day for day in days if day >= since]
        # The latest INR before the window starts the interval into it, unless one on the
        # window's first day does.
        starts_inside = bool(in_window) and in_window[0] == since
        days = ([] if starts_inside else before[-1:]) + in_window
    inside = below = above = total = 0
    for start, end in pairwise(days):
        gap = (end - start).days
        if gap > max_gap_days:
            continue
        first, last = daily[start], daily[end]
        for k in range(gap):
            if since is not None and start + timedelta(days=k) < since:
                continue
            value = first + (last - first) * k / gap
            total += 1
            if value < low:
                below += 1
            elif value > high:
                above += 1
            else:
                inside += 1
    return TimeInRange(inside, below, above, total, results=len(days))
