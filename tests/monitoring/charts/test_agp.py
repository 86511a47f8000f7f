"""The AGP and the time-in-ranges bar as SVG (monitoring/charts/agp.py): what is drawn where,
gaps where a time of day has too few readings, every text escaped."""

from __future__ import annotations

import re

from monitoring.charts.agp import RangeBar, agp_chart, time_in_ranges_bar
from monitoring.summaries import ProfileBin


def profile(drawn_bins, bins: int = 48) -> list[ProfileBin]:
    return [
        ProfileBin(
            start_minute=30 * index,
            readings=84 if index in drawn_bins else 2,
            percentiles=(
                {5: 60.0, 25: 90.0, 50: 120.0, 75: 160.0, 95: 220.0} if index in drawn_bins else {}
            ),
        )
        for index in range(bins)
    ]


def test_the_agp_draws_both_bands_and_the_median_per_run_of_drawn_bins():
    # two runs: 00:00–05:59 and 12:00–23:59 (bins 12–23 hold too few readings)
    svg = agp_chart(
        profile=profile({*range(0, 12), *range(24, 48)}),
        bin_minutes=30,
        target=(70, 180),
        unit="mg/dL",
        title="Ambulatory glucose profile, last 14 days",
        zone_name="Europe/Berlin",
    )

    assert svg.count('class="agp-band agp-band-5-95"') == 2
    assert svg.count('class="agp-band agp-band-25-75"') == 2
    assert svg.count('class="agp-median"') == 2
    assert svg.count('class="agp-target-edge"') == 2
    assert "Target range 70–180 mg/dL" in svg
    assert "Time of day, the patient&#x27;s clock (Europe/Berlin)" in svg
    # the axis: 0 to 350 mg/dL, 00:00 to 24:00 every three hours
    assert re.findall(r'class="tick-y"[^>]*>(\d+)<', svg) == [
        "0",
        "50",
        "100",
        "150",
        "200",
        "250",
        "300",
        "350",
    ]
    assert re.findall(r'class="tick-x"[^>]*>([\d:]+)<', svg) == [
        "00:00",
        "03:00",
        "06:00",
        "09:00",
        "12:00",
        "15:00",
        "18:00",
        "21:00",
        "24:00",
    ]
    assert "style=" not in svg and "<script" not in svg


def test_the_agp_axis_rises_above_350_when_the_95th_percentile_does():
    bins = profile(range(48))
    bins[10] = ProfileBin(300, 84, {5: 100.0, 25: 150.0, 50: 200.0, 75: 300.0, 95: 380.0})

    svg = agp_chart(profile=bins, bin_minutes=30, target=(70, 180), unit="mg/dL", title="AGP")

    assert re.findall(r'class="tick-y"[^>]*>(\d+)<', svg)[-1] == "400"


def test_an_agp_without_drawn_bins_says_so():
    svg = agp_chart(
        profile=profile(range(0)), bin_minutes=30, target=(70, 180), unit="mg/dL", title="AGP"
    )

    assert "agp-median" not in svg
    assert "No sensor readings to profile" in svg


def test_the_time_in_ranges_bar_stacks_the_shares_and_labels_each_on_its_own_row():
    shares = [
        RangeBar("very_low", "Very low", "< 54 mg/dL", 0.4),
        RangeBar("low", "Low", "54–69 mg/dL", 2.6),
        RangeBar("in_range", "In range", "70–180 mg/dL", 71.0),
        RangeBar("high", "High", "181–250 mg/dL", 20.0),
        RangeBar("very_high", "Very high", "> 250 mg/dL", 6.0),
    ]

    svg = time_in_ranges_bar(shares=shares, title="Time in ranges <14 days>")

    heights = dict(
        re.findall(r'data-range="(\w+)" x="\d+" y="[\d.]+" width="\d+" height="([\d.]+)"', svg)
    )
    assert heights == {
        "very_high": "14.4",
        "high": "48.0",
        "in_range": "170.4",
        "low": "6.2",
        "very_low": "1.0",
    }
    rows = [
        float(y)
        for y in re.findall(r'class="tir-label" data-range="\w+" x="\d+" y="([\d.]+)"', svg)
    ]
    assert rows == [58.0, 106.0, 154.0, 202.0, 250.0]  # evenly spaced: thin shares never overlap
    assert "Time in ranges &lt;14 days&gt;" in svg
    assert "0.4 %" in svg and "< 54 mg/dL" not in svg and "&lt; 54 mg/dL" in svg
