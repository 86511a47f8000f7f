"""Summary metrics computed from a patient's readings: CGM data sufficiency, time in ranges,
CV and GMI, the ambulatory glucose profile's percentiles by time of day, INR time in
therapeutic range (Rosendaal) and home blood-pressure figures (means, share at goal, morning
and evening). Pure functions; the formulas and their numbers come from the clinical reference
(blood_glucose.cgm_targets.data_sufficiency, blood_glucose.computed_metrics,
inr.computed_metrics, blood_pressure.computed_metrics); which glucose readings are a CGM
sensor's is sensor_glucose() below.

The only copy of each formula: the rules (monitoring/rules/cgm_summary.py, inr_ttr.py) and
the patient page (monitoring/patient_summary.py) both call these, through the rule modules'
window functions, so the page shows what the rules alert on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import cache
from itertools import pairwise
from statistics import fmean, pstdev

from django.db.models import Q

from monitoring.models import DeviceKind, Entry
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


# --- Ambulatory glucose profile (issue 14.3) -------------------------------------------------
# The international consensus report (Battelino 2019, the AGP report): CGM values folded over
# the days onto one local day, and per time of day the median, the 25th–75th and the
# 5th–95th percentiles.

AGP_PERCENTILES = (5, 25, 50, 75, 95)


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted values, linear between the closest ranks (Hyndman & Fan
    type 7: numpy's default, statistics.quantiles(method="inclusive")): rank p/100·(n−1)."""
    if not ordered:
        raise ValueError("a percentile of no values")
    rank = (len(ordered) - 1) * p / 100
    below = math.floor(rank)
    above = math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


@dataclass(frozen=True)
class ProfileBin:
    """One time-of-day bin of the profile: [start_minute, start_minute + bin minutes) of the
    local day; `percentiles` maps each of AGP_PERCENTILES to its value, empty when the bin
    holds fewer readings than the profile needs."""

    start_minute: int
    readings: int
    percentiles: dict[int, float]

    @property
    def drawn(self) -> bool:
        return bool(self.percentiles)


def glucose_profile(
    points: Sequence[tuple[datetime, float]],
    *,
    zone: tzinfo,
    bin_minutes: int,
    min_readings_per_bin: int,
) -> list[ProfileBin]:
    """The AGP's bins over one local day (the patient's clock: 07:00 is breakfast whatever
    the season), each with the percentiles of the values measured in it on any day."""
    if (24 * 60) % bin_minutes:
        raise ValueError("bins must tile the day")
    values: dict[int, list[float]] = {}
    for at, value in points:
        local = at.astimezone(zone)
        values.setdefault((local.hour * 60 + local.minute) // bin_minutes, []).append(value)
    bins = []
    for index in range(24 * 60 // bin_minutes):
        ordered = sorted(values.get(index, ()))
        enough = len(ordered) >= max(min_readings_per_bin, 1)
        bins.append(
            ProfileBin(
                start_minute=index * bin_minutes,
                readings=len(ordered),
                percentiles=(
                    {p: percentile(ordered, p) for p in AGP_PERCENTILES} if enough else {}
                ),
            )
        )
    return bins


# --- Home blood pressure (issue 14.3) ---------------------------------------------------------


@dataclass(frozen=True)
class BloodPressureStats:
    """Means of systolic and diastolic, the readings at goal, and the means of the morning
    and evening readings (None where there is no reading to average)."""

    readings: int
    mean_systolic: float | None
    mean_diastolic: float | None
    at_goal: int
    morning: tuple[int, float | None, float | None]  # (readings, mean systolic, diastolic)
    evening: tuple[int, float | None, float | None]

    @property
    def percent_at_goal(self) -> float | None:
        return 100 * self.at_goal / self.readings if self.readings else None


def _means(readings: Sequence[tuple[datetime, float, float]]):
    if not readings:
        return (0, None, None)
    return (
        len(readings),
        fmean(r[1] for r in readings),
        fmean(r[2] for r in readings),
    )


def blood_pressure_stats(
    readings: Sequence[tuple[datetime, float, float]],
    *,
    above_goal: Callable[[float, float], bool],
    zone: tzinfo,
    morning_hours: tuple[int, int],
    evening_hours: tuple[int, int],
) -> BloodPressureStats:
    """readings: (measured_at, systolic, diastolic). A reading is at goal when
    `above_goal(systolic, diastolic)` is false; morning and evening are [from, to) hours of
    the patient's local clock."""

    def within(at: datetime, hours: tuple[int, int]) -> bool:
        return hours[0] <= at.astimezone(zone).hour < hours[1]

    count, systolic, diastolic = _means(readings)
    return BloodPressureStats(
        readings=count,
        mean_systolic=systolic,
        mean_diastolic=diastolic,
        at_goal=sum(1 for _, s, d in readings if not above_goal(s, d)),
        morning=_means([r for r in readings if within(r[0], morning_hours)]),
        evening=_means([r for r in readings if within(r[0], evening_hours)]),
    )


# --- CGM sensor readings, not fingersticks (issue 14.3) ---------------------------------------
# The consensus metrics (wear, time in ranges, the AGP) are a CGM sensor's. A glucose reading is
# a sensor reading when a device measured it (entry "device": a CGM through its uploader or
# the app's sensor link, Nightscout's `sgv`), it carries no meal context (a context is
# what a fingerstick is taken for: fasting, before a meal …; a sensor reads every few minutes
# whatever the patient does) and it did not come from a registered glucose meter. Typed-in
# values (entry "manual": the app's logged fingersticks, Nightscout's `mbg` and BG checks)
# and meter readings are fingersticks: shown in the charts and readings, never counted as wear.


def sensor_glucose() -> Q:
    """The readings (of the glucose metric) a CGM sensor measured, as a filter."""
    return Q(entry=Entry.DEVICE, context="") & ~Q(device__kind=DeviceKind.GLUCOSE_METER)
