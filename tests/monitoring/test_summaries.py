import re
from datetime import date, datetime, timedelta

import pytest

from monitoring.summaries import (
    TimeInRange,
    cgm_sufficiency,
    coefficient_of_variation,
    gmi_percent,
    in_band,
    percent_in_band,
    rosendaal_ttr,
)
from tests.monitoring.rules.conftest import NOW, reference

GMI = reference("blood_glucose.computed_metrics.gmi")
SUFFICIENCY = reference("blood_glucose.cgm_targets.data_sufficiency")
RANGES = reference("blood_glucose.cgm_targets.ranges_mg_dL")
TTR = reference("inr.computed_metrics.ttr_rosendaal")
MAX_GAP = TTR["parameters"]["max_gap_days"]  # 56 days (AHRQ-listed measure)
TARGET = reference("inr.target_ranges.0")  # 2.0–3.0
DAY_0 = date(2026, 1, 1)


def day(n: int) -> date:
    return DAY_0 + timedelta(days=n)


def ttr(points, since: int | None = None) -> TimeInRange:
    return rosendaal_ttr(
        [(day(n), value) for n, value in points],
        low=TARGET["low"],
        high=TARGET["high"],
        max_gap_days=MAX_GAP,
        since=None if since is None else day(since),
    )


# --- GMI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "expected"),
    [(float(key.split()[0]), value) for key, value in GMI["check_values"].items()],
    ids=list(GMI["check_values"]),
)
def test_gmi_matches_the_references_check_values(mean, expected):
    assert round(gmi_percent(mean), 1) == expected


# --- CV and time in ranges ----------------------------------------------------------------


def test_cv_uses_the_population_standard_deviation():
    # blood_glucose.computed_metrics.coefficient_of_variation.sd_convention: divide by n.
    # 90 and 110: population SD 10, mean 100 -> 10 %; the sample SD would give 14.1 %.
    assert coefficient_of_variation([90, 110]) == 10.0


def test_cv_of_a_steady_sensor_is_zero():
    assert coefficient_of_variation([120, 120, 120]) == 0.0


@pytest.mark.parametrize(
    ("band", "inside", "outside"),
    [
        ("very_low", [53], [54]),
        ("low", [54, 69], [53, 70]),
        ("in_range", [70, 180], [69, 181]),
        ("high", [181, 250], [180, 251]),
        ("very_high", [251], [250]),
    ],
)
def test_each_cgm_range_has_the_references_inclusive_and_exclusive_bounds(band, inside, outside):
    # blood_glucose.cgm_targets.ranges_mg_dL (TBR 54-69, TIR 70-180, TAR 181-250 mg/dL).
    assert [in_band(v, RANGES[band]) for v in inside + outside] == [True] * len(inside) + [
        False
    ] * len(outside)


def test_percent_in_band_is_the_share_of_readings_in_the_band():
    values = [60, 65, 100, 120, 150, 200, 260, 300]

    assert percent_in_band(values, RANGES["in_range"]) == 37.5
    assert percent_in_band(values, RANGES["low"]) == 25.0


# --- CGM data sufficiency -------------------------------------------------------------------

MIN_DAYS = timedelta(days=SUFFICIENCY["min_days"])
FIVE_MINUTES = timedelta(minutes=5)


def sensor_times(count: int, span: timedelta = MIN_DAYS):
    step = span / count
    return [NOW - span + step * (i + 1) for i in range(count)]


def every(interval: timedelta, first: datetime, last: datetime) -> list[datetime]:
    """A reading every `interval` from `first` to `last`, both included."""
    return [first + interval * i for i in range((last - first) // interval + 1)]


def sufficiency(times, interval_minutes: int = 5):
    return cgm_sufficiency(
        times,
        window_days=SUFFICIENCY["min_days"],
        min_days=SUFFICIENCY["min_days"],
        min_percent_active=SUFFICIENCY["min_percent_active"],
        sensor_interval_minutes=interval_minutes,
    )


def sufficient(times, interval_minutes: int = 5) -> bool:
    return sufficiency(times, interval_minutes).sufficient


@pytest.mark.parametrize(
    ("interval_minutes", "needed"),
    [
        (int(m[1]), int(m[2]))
        for m in re.finditer(r"(\d+)-min sensor: .*? need >=(\d+)", SUFFICIENCY["example"])
    ],
    ids=["5-min sensor", "15-min sensor"],
)
def test_cgm_data_are_sufficient_from_70_percent_of_the_possible_readings(interval_minutes, needed):
    # "5-min sensor: ... 4032 possible -> need >=2823; 15-min sensor: ... -> need >=941".
    # One reading fewer is 69.9 % of the possible readings.
    assert sufficient(sensor_times(needed - 1), interval_minutes) is False
    assert sufficient(sensor_times(needed), interval_minutes) is True


def test_a_full_sensor_over_the_14_days_spans_exactly_14_days():
    # 4,032 readings five minutes apart (the reference's "288 readings/day x 14 d"): the
    # first one interval into the 14 days, the last at their end.
    times = every(FIVE_MINUTES, NOW - MIN_DAYS + FIVE_MINUTES, NOW)

    result = sufficiency(times)

    assert (len(times), result.span, result.percent_active, result.sufficient) == (
        4032,
        MIN_DAYS + FIVE_MINUTES,
        100.0,
        True,
    )


@pytest.mark.parametrize(
    ("first_after_start", "expected"),
    [(FIVE_MINUTES, True), (FIVE_MINUTES + timedelta(seconds=1), False)],
    ids=["exactly 14 days", "14 days less a second"],
)
def test_cgm_data_must_span_14_full_days(first_after_start, expected):
    # The longest wear the readings allow is first-to-last plus a sensor interval at each
    # end: the first reading 5 minutes into the 14 days, then one every five minutes to 5
    # minutes before their end (4,031 readings, 99.98 % active), span exactly 14 days.
    steady = every(FIVE_MINUTES, NOW - MIN_DAYS + 2 * FIVE_MINUTES, NOW - FIVE_MINUTES)
    times = [NOW - MIN_DAYS + first_after_start, *steady]

    result = sufficiency(times)

    assert (result.span == MIN_DAYS, result.sufficient) == (expected, expected)
    assert result.percent_active >= SUFFICIENCY["min_percent_active"]


def test_a_full_sensor_over_13_days_is_not_sufficient():
    # The regression: 13 days of readings (3,745, 92.9 % of the possible) were accepted.
    times = every(FIVE_MINUTES, NOW - MIN_DAYS + timedelta(days=1), NOW)

    result = sufficiency(times)

    assert (len(times), round(result.percent_active, 1), result.span, result.sufficient) == (
        3745,
        92.9,
        timedelta(days=13, minutes=10),
        False,
    )


def test_cgm_data_over_fewer_than_14_days_are_not_sufficient():
    assert sufficient(sensor_times(4032, span=timedelta(days=12))) is False


def test_no_cgm_data_are_not_sufficient():
    result = sufficiency([])

    assert (result.readings, result.span, result.percent_active, result.sufficient) == (
        0,
        timedelta(0),
        0.0,
        False,
    )


# --- INR time in therapeutic range (Rosendaal) --------------------------------------------


def test_rosendaal_interpolates_each_day_between_two_inrs():
    # 1.5 on day 0 to 3.5 on day 10 rises 0.2 a day: 1.5 1.7 1.9 | 2.1 … 2.9 | 3.1 3.3
    assert ttr([(0, 1.5), (10, 3.5)]) == TimeInRange(
        days_in_range=5, days_below=3, days_above=2, days_total=10, results=2
    )
    assert ttr([(0, 1.5), (10, 3.5)]).percent == 50.0


def test_rosendaal_counts_the_range_bounds_as_in_range():
    # ttr_rosendaal.parameters.bounds_inclusive: days at exactly 2.0 and 3.0 are in range.
    result = ttr([(0, TARGET["low"]), (2, TARGET["high"]), (3, TARGET["high"])])

    assert result == TimeInRange(
        days_in_range=3, days_below=0, days_above=0, days_total=3, results=3
    )


def test_the_day_of_the_last_inr_starts_no_interval():
    # Day t_j counts as k = 0 of the next interval; after the last INR there is none.
    assert ttr([(0, 2.5), (1, 2.5)]).days_total == 1


@pytest.mark.parametrize(
    ("gap", "days_total"),
    [(MAX_GAP, MAX_GAP), (MAX_GAP + 1, 0)],
    ids=["a gap of exactly 56 days is interpolated", "a gap of 57 days is not"],
)
def test_a_gap_longer_than_the_limit_is_not_interpolated(gap, days_total):
    assert ttr([(0, 2.5), (gap, 2.5)]).days_total == days_total


def test_a_long_gap_drops_out_of_numerator_and_denominator_alike():
    # 10 days in range, a 70-day gap, then 10 days below: 50 %, not the 38 % that
    # interpolating across the gap would give.
    points = [(0, 2.5), (10, 2.5), (80, 1.0), (90, 1.0)]

    assert ttr(points) == TimeInRange(
        days_in_range=10, days_below=10, days_above=0, days_total=20, results=4
    )
    assert ttr(points).percent == 50.0


def test_of_several_inrs_on_one_day_the_last_counts():
    assert ttr([(0, 1.0), (0, 2.5), (4, 2.5)]).percent == 100.0


def test_no_interval_gives_no_percentage():
    assert ttr([(0, 2.5)]).percent is None
    assert ttr([]).percent is None


# --- Rosendaal over a window ----------------------------------------------------------------


def test_the_interval_from_the_last_inr_before_the_window_contributes_its_days_inside_it():
    # 1.5 on day 0 to 3.5 on day 10 rises 0.2 a day; the window starts on day 4:
    # 2.3 2.5 2.7 2.9 | 3.1 3.3 (days 4..9), days 0..3 (below range) are outside.
    assert ttr([(0, 1.5), (10, 3.5)], since=4) == TimeInRange(
        days_in_range=4, days_below=0, days_above=2, days_total=6, results=2
    )


def test_only_the_last_inr_before_the_window_is_used():
    # Day -20 (1.0) would start an interval that ends before the window: it adds nothing.
    points = [(-20, 1.0), (0, 1.5), (10, 3.5)]

    assert ttr(points, since=4) == ttr([(0, 1.5), (10, 3.5)], since=4)
    assert ttr(points, since=4).results == 2


def test_an_inr_on_the_windows_first_day_starts_it():
    # Day 0 is not used: the window is interpolated from its first day without it.
    assert ttr([(0, 1.0), (4, 2.5), (10, 2.5)], since=4) == TimeInRange(
        days_in_range=6, days_below=0, days_above=0, days_total=6, results=2
    )


def test_a_gap_longer_than_the_limit_from_before_the_window_is_not_interpolated():
    assert ttr([(0, 2.5), (MAX_GAP + 1, 2.5)], since=MAX_GAP).percent is None
    assert ttr([(0, 2.5), (MAX_GAP, 2.5)], since=MAX_GAP - 1).days_total == 1


def test_an_inr_before_the_window_alone_gives_no_percentage():
    assert ttr([(0, 2.5)], since=4) == TimeInRange(0, 0, 0, 0, results=1)
