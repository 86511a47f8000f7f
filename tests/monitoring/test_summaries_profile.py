"""The AGP's percentiles by time of day and the home blood-pressure figures
(monitoring/summaries.py, issue 14.3): exact values on series built for them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitoring.summaries import (
    AGP_PERCENTILES,
    blood_pressure_stats,
    glucose_profile,
    percentile,
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_percentiles_interpolate_between_the_closest_ranks():
    values = [10, 20, 30, 40, 50]

    assert [percentile(values, p) for p in (0, 5, 25, 50, 75, 95, 100)] == [
        10,
        12,
        20,
        30,
        40,
        48,
        50,
    ]
    assert percentile([7], 95) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def fourteen_days_of_sensor_data() -> list[tuple[datetime, float]]:
    """14 local days of a 5-minute sensor in Berlin: on day d, every reading of the 30-minute
    bin b reads 100 + b + 10·d mg/dL. Each bin then holds 84 values, six of each day's."""
    first = datetime(2026, 2, 14, tzinfo=BERLIN)  # no DST change in the 14 days
    points = []
    for day in range(14):
        midnight = datetime.combine(first.date() + timedelta(days=day), time(0), tzinfo=BERLIN)
        for step in range(288):
            at = (midnight + timedelta(minutes=5 * step)).astimezone(UTC)
            points.append((at, 100 + step // 6 + 10 * day))
    return points


def test_the_agp_folds_fourteen_days_onto_one_local_day_with_exact_percentiles():
    # when
    bins = glucose_profile(
        fourteen_days_of_sensor_data(), zone=BERLIN, bin_minutes=30, min_readings_per_bin=5
    )

    # then: 48 bins of 84 values; in bin b the sorted values are six copies each of
    # 100 + b + 0, 10, …, 130. Rank p/100·83: p5 4.15 → day 0; p25 20.75 → day 3; the
    # median 41.5, halfway between days 6 and 7; p75 62.25 → day 10; p95 78.85 → day 13.
    assert len(bins) == 48
    assert {b.readings for b in bins} == {84}
    for index, b in enumerate(bins):
        assert b.start_minute == 30 * index
        assert b.percentiles == {
            5: 100 + index,
            25: 130 + index,
            50: 165 + index,
            75: 200 + index,
            95: 230 + index,
        }
    assert AGP_PERCENTILES == (5, 25, 50, 75, 95)


def test_a_bin_with_too_few_readings_is_not_drawn():
    at = datetime(2026, 2, 20, 7, 10, tzinfo=BERLIN)
    points = [(at + timedelta(days=day), 120.0) for day in range(4)]  # four 07:10 readings

    bins = glucose_profile(points, zone=BERLIN, bin_minutes=30, min_readings_per_bin=5)

    breakfast = bins[14]  # 07:00–07:29
    assert (breakfast.start_minute, breakfast.readings, breakfast.drawn) == (420, 4, False)
    assert not any(b.drawn for b in bins)


def test_the_agp_uses_the_patients_clock_across_a_dst_change():
    # 07:00 local on both sides of Berlin's spring change (29 Mar 2026): 06:00 and 05:00 UTC
    before = datetime(2026, 3, 28, 6, 0, tzinfo=UTC)
    after = datetime(2026, 3, 30, 5, 0, tzinfo=UTC)

    bins = glucose_profile(
        [(before, 100.0), (after, 200.0)], zone=BERLIN, bin_minutes=60, min_readings_per_bin=1
    )

    assert bins[7].readings == 2
    assert bins[7].percentiles[50] == 150


def above_135_85(systolic: float, diastolic: float) -> bool:
    return systolic >= 135 or diastolic >= 85


def test_blood_pressure_means_share_at_goal_and_morning_and_evening():
    # given: two days of 07:30 and 20:00 readings in Berlin, and one at 14:00
    day = datetime(2026, 2, 20, tzinfo=BERLIN)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return (day + timedelta(days=days, hours=hour, minutes=minute)).astimezone(UTC)

    readings = [
        (at(0, 7, 30), 140, 90),  # above goal
        (at(0, 20), 120, 80),
        (at(1, 7, 30), 150, 86),  # above goal
        (at(1, 20), 126, 84),
        (at(1, 14), 134, 70),  # neither morning nor evening; at goal
    ]

    # when
    stats = blood_pressure_stats(
        readings,
        above_goal=above_135_85,
        zone=BERLIN,
        morning_hours=(4, 12),
        evening_hours=(18, 24),
    )

    # then
    assert (stats.readings, stats.mean_systolic, stats.mean_diastolic) == (5, 134, 82)
    assert (stats.at_goal, stats.percent_at_goal) == (3, 60.0)
    assert stats.morning == (2, 145, 88)
    assert stats.evening == (2, 123, 82)


def test_blood_pressure_without_readings_has_no_figures():
    stats = blood_pressure_stats(
        [], above_goal=above_135_85, zone=BERLIN, morning_hours=(4, 12), evening_hours=(18, 24)
    )

    assert (stats.readings, stats.mean_systolic, stats.percent_at_goal) == (0, None, None)
    assert stats.morning == stats.evening == (0, None, None)
