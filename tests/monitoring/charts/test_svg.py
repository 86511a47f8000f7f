"""monitoring.charts: the exact SVG a chart is made of.

The plot area is fixed: x from 56 to 704 (648 units wide), y from 34 (top) to 234 (bottom,
200 units high). The y domain is the data's range widened to the nearest threshold on each
side, padded by 5 % and rounded out to a "nice" step (1, 2, 2.5 or 5 × 10^k, about five
gridlines). The expected coordinates below are worked out by hand from that.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from monitoring.charts import Band, bands_from_rules, line_chart, multi_line_chart

SVG = "{http://www.w3.org/2000/svg}"
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2026, 3, 1, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def texts(root: ET.Element, name: str) -> list[str]:
    return [e.text for e in by_class(root, name)]


def label_texts(root: ET.Element) -> list[str]:
    """The words on the limit lines, top to bottom as drawn."""
    return [g.find(f"{SVG}text").text for g in by_class(root, "limit-label")]


def chart(**overrides) -> str:
    arguments = {
        "points": [],
        "unit": "mg/dL",
        "zone": NEW_YORK,
        "bands": [],
        "marks": [],
        "start": START,
        "end": START + timedelta(days=4),
        "title": "Blood glucose",
    }
    return line_chart(**(arguments | overrides))


LOW_GLUCOSE_BANDS = [
    Band(None, 54, "critical", "Level 2 hypoglycaemia: < 54 mg/dL", high_op="lt"),
    Band(54, 70, "warning", "Level 1 hypoglycaemia: 54–70 mg/dL", low_op="ge", high_op="lt"),
]


def test_bands_are_rectangles_at_the_y_of_their_thresholds():
    # given: readings of 60 and 100 mg/dL: the domain is 54 (the nearest threshold below
    # 60) to 100, padded to 51.7–102.3, rounded out to steps of 20: 40 to 120. So
    # y(v) = 234 - 200 * (v - 40) / 80: y(54) = 199, y(70) = 159, y(40) = 234.
    points = [(START + timedelta(days=1), 60.0), (START + timedelta(days=2), 100.0)]

    # when
    root = parse(chart(points=points, bands=LOW_GLUCOSE_BANDS))

    # then
    rectangles = [
        (r.get("class"), r.get("x"), r.get("y"), r.get("width"), r.get("height"), r.get("fill"))
        for r in by_class(root, "band")
    ]
    assert rectangles == [
        ("band band-warning", "56", "159.0", "648", "40.0", "#e08a00"),
        ("band band-critical", "56", "199.0", "648", "35.0", "#c62828"),
    ]
    # One line per value: 54 ends both bands and is drawn once, in the critical style.
    limits = [
        (e.get("class"), e.get("y1"), e.get("stroke-width"), e.get("stroke-dasharray"))
        for e in by_class(root, "limit")
    ]
    assert limits == [
        ("limit limit-warning", "159.0", "1.6", "6 3"),
        ("limit limit-critical", "199.0", "2.4", None),
    ]
    assert label_texts(root) == ["< 70 warning", "< 54 critical · ≥ 54 warning"]
    ticks = [(e.text, e.get("y")) for e in by_class(root, "tick-y")]
    assert ticks == [
        ("40", "234.0"),
        ("60", "184.0"),
        ("80", "134.0"),
        ("100", "84.0"),
        ("120", "34.0"),
    ]
    assert texts(root, "unit") == ["mg/dL"]


def test_a_band_beyond_the_range_shown_is_named_in_the_legend_but_not_drawn():
    # given: readings of 60–100 mg/dL; the nearest threshold above is 180, so the axis ends
    # at 200 and the band above 400 is off the chart
    points = [(START + timedelta(days=1), 60.0), (START + timedelta(days=2), 100.0)]
    bands = [
        *LOW_GLUCOSE_BANDS,
        Band(180, None, "warning", "High glucose: > 180 mg/dL"),
        Band(400, None, "critical", "Very high glucose: > 400 mg/dL"),
    ]

    # when
    root = parse(chart(points=points, bands=bands))

    # then
    assert texts(root, "tick-y")[-1] == "200"
    assert [r.get("class") for r in by_class(root, "band")] == [
        "band band-warning",
        "band band-warning",
        "band band-critical",
    ]
    legend = [" ".join(g.itertext()) for g in by_class(root, "legend-band")]
    assert legend == [
        "Critical: Level 2 hypoglycaemia: < 54 mg/dL",
        "Critical: Very high glucose: > 400 mg/dL (beyond the range shown)",
        "Warning: Level 1 hypoglycaemia: 54–70 mg/dL",
        "Warning: High glucose: > 180 mg/dL",
    ]


def test_triggering_readings_are_marked_at_their_time():
    # given: ten days; a reading 2.5 days in is a quarter of the way: x = 56 + 648 / 4
    end = START + timedelta(days=10)
    trigger = START + timedelta(days=2, hours=12)
    points = [
        (START + timedelta(days=1), 80.0, 1),
        (trigger, 50.0, 2),
        (START + timedelta(days=5), 90.0, 3),
    ]

    # when: a reading id that is not on the chart marks nothing
    root = parse(chart(points=points, end=end, marks=[2, 99]))

    # then: a line across the plot and a ring around the reading
    lines = [(m.get("x1"), m.get("x2"), m.get("y1"), m.get("y2")) for m in by_class(root, "mark")]
    assert lines == [("218.0", "218.0", "34.0", "234.0")]
    # The domain is 50–90, padded 48–92, steps of 10: 40 to 100; y(50) = 234 - 200 * 10/60.
    rings = [(r.get("cx"), r.get("cy")) for r in by_class(root, "mark-ring")]
    assert rings == [("218.0", "200.7")]
    assert [e.text for e in root.iter(f"{SVG}title") if "Triggering" in (e.text or "")] == [
        "Triggering reading: 50 mg/dL at 03 Mar 07:00 EST",
        "Triggering reading: 50 mg/dL at 03 Mar 07:00 EST",
    ]


def test_day_ticks_are_local_midnights_across_the_start_of_daylight_saving_time():
    # given: New York, from local midnight on Saturday 7 March (05:00 UTC) to local midnight
    # on Wednesday 11 March (04:00 UTC, EDT): 95 hours, Sunday 8 March being 23 hours long.
    start = datetime(2026, 3, 7, 5, tzinfo=UTC)
    end = datetime(2026, 3, 11, 4, tzinfo=UTC)

    # when
    root = parse(chart(start=start, end=end))

    # then: x = 56 + 648 * hours / 95 at 0, 24, 47, 71 and 95 hours
    ticks = [(t.text, t.get("x")) for t in by_class(root, "tick-x")]
    assert ticks == [
        ("7 Mar", "56.0"),
        ("8 Mar", "219.7"),
        ("9 Mar", "376.6"),
        ("10 Mar", "540.3"),
        ("11 Mar", "704.0"),
    ]
    assert texts(root, "zone") == [
        "Patient's local time, America/New_York (EST/EDT): 07 Mar 2026 00:00 – 11 Mar 2026 00:00"
    ]


def test_hour_ticks_skip_the_hour_that_daylight_saving_time_skips():
    # given: Sunday 8 March in New York, 23 hours long (02:00 EST jumps to 03:00 EDT)
    start = datetime(2026, 3, 8, 5, tzinfo=UTC)
    end = datetime(2026, 3, 9, 4, tzinfo=UTC)

    # when
    root = parse(chart(start=start, end=end))

    # then: every two local hours; there is no 02:00, and 04:00 EDT is 3 real hours in
    ticks = [(t.text, t.get("x")) for t in by_class(root, "tick-x")]
    assert [label for label, _ in ticks] == [
        "8 Mar", "04:00", "06:00", "08:00", "10:00", "12:00",
        "14:00", "16:00", "18:00", "20:00", "22:00", "9 Mar",
    ]  # fmt: skip
    assert [x for _, x in ticks[:3]] == ["56.0", "140.5", "196.9"]  # 56 + 648 * 3/23, * 5/23


def test_every_text_is_escaped():
    # given
    title = '<script>alert("x")</script> & co'
    band = Band(None, 54, "critical", '<b>low</b> & "very" low')

    # when
    svg = line_chart(
        points=[(START + timedelta(days=1), 60.0)],
        unit="<u>",
        zone=NEW_YORK,
        bands=[band],
        marks=[],
        start=START,
        end=START + timedelta(days=2),
        title=title,
    )

    # then: nothing became markup, and every text reads as given
    assert "<script" not in svg and "<b>" not in svg and "<u>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in svg
    root = parse(svg)
    assert root.find(f"{SVG}title").text == title
    assert texts(root, "chart-title") == [title]
    assert texts(root, "unit") == ["<u>"]
    assert [" ".join(g.itertext()) for g in by_class(root, "legend-band")] == [
        'Critical: <b>low</b> & "very" low'
    ]


def test_the_chart_is_accessible_and_has_no_javascript_and_no_external_resources():
    svg = chart(points=[(START + timedelta(days=1), 60.0)], bands=LOW_GLUCOSE_BANDS)

    root = parse(svg)
    chart_id = root.get("aria-labelledby").split()[0].removesuffix("-title")
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    assert root.find(f"{SVG}title").get("id") == f"{chart_id}-title"
    assert root.find(f"{SVG}desc").text == (
        "1 reading, lowest 60, highest 60, latest 60 mg/dL at 01 Mar 19:00 EST. "
        "Limits drawn: < 70 warning (70 mg/dL); < 54 critical · ≥ 54 warning (54 mg/dL). "
        "Rules: Critical: Level 2 hypoglycaemia: < 54 mg/dL; "
        "Warning: Level 1 hypoglycaemia: 54–70 mg/dL. "
        "Patient's local time, America/New_York (EST): 28 Feb 2026 19:00 – 04 Mar 2026 19:00."
    )
    attributes = {name for element in root.iter() for name in element.attrib}
    assert not {name for name in attributes if name.lower().startswith("on")}
    assert "script" not in svg.lower()
    assert "href" not in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_an_empty_period_says_so():
    root = parse(chart(bands=LOW_GLUCOSE_BANDS))

    assert texts(root, "empty") == ["No readings in this period"]
    assert by_class(root, "series") == []


def test_blood_pressure_draws_a_panel_per_series_with_its_own_limits():
    # given: systolic 120–140, diastolic 80–90; a systolic crisis threshold at 180 and a
    # diastolic one at 120
    days = [START + timedelta(days=n) for n in (1, 2, 3)]
    systolic = list(zip(days, [120.0, 140.0, 130.0], [1, 2, 3], strict=True))
    diastolic = list(zip(days, [80.0, 90.0, 85.0], [1, 2, 3], strict=True))
    bands = [
        Band(180, None, "critical", "Systolic > 180", series="Systolic", low_op="gt"),
        Band(120, None, "critical", "Diastolic > 120", series="Diastolic", low_op="gt"),
    ]

    # when
    root = parse(
        multi_line_chart(
            series=[("Systolic", systolic), ("Diastolic", diastolic)],
            unit="mmHg",
            zone=NEW_YORK,
            bands=bands,
            marks=[],
            start=START,
            end=START + timedelta(days=4),
            title="Blood pressure",
        )
    )

    # then: two panels 150 high, the first from y=44 (a line for its title below the
    # chart's), the second 24 below it (its title). Systolic: domain 120–180 (the nearest
    # threshold above 140), padded 117–183, steps of 20: 100 to 200, y(180) = 194 - 150 *
    # 80/100. Diastolic: 80–120, padded 78–122, steps of 10: 70 to 130, from y=218 to 368:
    # y(120) = 368 - 150 * 50/60.
    assert texts(root, "panel-title") == ["Systolic", "Diastolic"]
    borders = [(r.get("y"), r.get("height")) for r in by_class(root, "plot-border")]
    assert borders == [("44.0", "150.0"), ("218.0", "150.0")]
    assert texts(root, "tick-y") == [
        "100", "120", "140", "160", "180", "200",
        "70", "80", "90", "100", "110", "120", "130",
    ]  # fmt: skip
    # Each component's limit in its own panel only, as a line: no tinted region.
    assert by_class(root, "band") == []
    limits = [(e.get("class"), e.get("y1")) for e in by_class(root, "limit")]
    assert limits == [("limit limit-critical", "74.0"), ("limit limit-critical", "243.0")]
    assert label_texts(root) == ["> 180 critical", "> 120 critical"]
    # Each series in its own panel: systolic 120 at y = 194 - 150 * 20/100, diastolic 80
    # at y = 368 - 150 * 10/60.
    paths = {p.get("data-series"): p.get("d").split()[0] for p in by_class(root, "series")}
    assert paths == {"Systolic": "M218.0,164.0", "Diastolic": "M218.0,343.0"}
    assert [p.get("stroke-dasharray") for p in by_class(root, "series")] == [None, "6 3"]
    # One time axis, under the last panel.
    assert {t.get("y") for t in by_class(root, "tick-x")} == {"382.0"}
    legend = [" ".join(g.itertext()) for g in by_class(root, "legend")]
    assert legend == [
        "Systolic",
        "Diastolic",
        "Critical: Systolic > 180",
        "Critical: Diastolic > 120",
    ]
    swatches = [
        (g.find(f"{SVG}line").get("stroke-width"), g.find(f"{SVG}line").get("stroke-dasharray"))
        for g in by_class(root, "legend-band")
    ]
    assert swatches == [("2.4", None), ("2.4", None)]


def test_a_long_gap_breaks_the_line():
    # given: daily readings, then five days without
    points = [(START + timedelta(days=n), 80.0 + n) for n in (0, 1, 2, 3, 8, 9)]

    root = parse(chart(points=points, end=START + timedelta(days=10)))

    (path,) = by_class(root, "series")
    assert [command[0] for command in path.get("d").split()] == ["M", "L", "L", "L", "M", "L"]


def test_a_month_of_cgm_draws_at_most_two_points_per_column_and_keeps_the_lowest():
    # given: every 5 minutes for 30 days at 120-160 mg/dL, one of them 40 mg/dL
    points = [(START + timedelta(minutes=5 * n), 120.0 + n % 41) for n in range(8640)]
    points[5000] = (points[5000][0], 40.0)

    # when
    root = parse(chart(points=points, end=START + timedelta(days=30)))

    # then: no dot per reading, a thinned line, and the low still on it
    assert by_class(root, "point") == []
    commands = by_class(root, "series")[0].get("d").split()
    assert len(commands) <= 2 * 648
    assert [c[0] for c in commands].count("M") == 1  # thinning is not a gap in the data
    # domain 40–160, padded 34–166, steps of 50: 0 to 200; y(40) = 234 - 200 * 40/200
    assert any(command.endswith(",194.0") for command in commands)


def test_the_chart_needs_an_end_after_its_start():
    with pytest.raises(ValueError, match="end after start"):
        chart(end=START)


def test_bands_from_rules():
    # given: a patient's rules as the rule kinds store their parameters
    def rule(kind, metric, severity, title, parameters):
        return SimpleNamespace(
            kind=kind, metric=metric, severity=severity, title=title, parameters=parameters
        )

    rules = [
        rule("threshold", "glucose", "warning", "Level 1 hypoglycaemia", {
            "conditions": [{"component": "value", "op": "ge", "value": 54},
                           {"component": "value", "op": "lt", "value": 70}], "match": "all"}),
        rule("threshold", "inr", "warning", "INR outside target range", {
            "conditions": [{"component": "value", "op": "lt", "value": 2.0},
                           {"component": "value", "op": "gt", "value": 3.0}], "match": "any"}),
        rule("threshold", "blood_pressure", "critical", "Hypertensive crisis", {
            "conditions": [{"component": "systolic", "op": "gt", "value": 180},
                           {"component": "diastolic", "op": "gt", "value": 120}], "match": "any"}),
        rule("count_in_window", "inr", "critical", "Repeated high INR", {
            "conditions": [{"component": "value", "op": "ge", "value": 5.0}], "match": "any",
            "count": 2, "within_days": 183}),
        rule("inr_ttr", "inr", "warning", "INR time in range", {
            "target_low": 2.0, "target_high": 3.0, "window_days": 183}),
        rule("cgm_summary", "glucose", "warning", "CGM time below 70", {
            "measure": "percent_in_band", "band": {"upper": {"value": 70, "inclusive": False}}}),
        rule("average", "blood_pressure", "warning", "Home BP average above goal", {
            "conditions": [{"component": "systolic", "op": "ge", "value": 135},
                           {"component": "diastolic", "op": "ge", "value": 85}], "match": "any",
            "window_days": 7, "min_readings": 4}),
        rule("rate_of_change", "weight", "warning", "Weight gain", {
            "window_days": 1, "delta": 0.9, "direction": "gain", "op": "gt"}),
        rule("missing_data", "weight", "warning", "No weight", {"silent_hours": 36}),
    ]  # fmt: skip

    # when: each metric's chart draws its own rules, in its own unit
    def bands(metric: str, unit: str) -> list[Band]:
        return bands_from_rules([r for r in rules if r.metric == metric], unit=unit)

    # then: each band with its rule's operator at each bound, a CGM summary's band as a
    # share of time, an average rule's as limits on the 7-day average
    level_1 = "Level 1 hypoglycaemia (≥ 54 mg/dL and < 70 mg/dL)"
    assert bands("glucose", "mg/dL") == [
        Band(54, 70, "warning", level_1, low_op="ge", high_op="lt"),
        Band(None, 70, "warning", "CGM time below 70 (< 70 mg/dL)", high_op="lt", share=True),
    ]
    assert bands("inr", "") == [
        Band(None, 2.0, "warning", "INR outside target range (< 2)", high_op="lt"),
        Band(3.0, None, "warning", "INR outside target range (> 3)", low_op="gt"),
        Band(5.0, None, "critical", "Repeated high INR (≥ 5)", low_op="ge"),
        Band(2.0, 3.0, "target", "Target range 2–3"),
    ]
    crisis, goal = "Hypertensive crisis", "Home BP average above goal"
    assert bands("blood_pressure", "mmHg") == [
        Band(180, None, "critical", f"{crisis} (Systolic > 180 mmHg)", "Systolic", low_op="gt"),
        Band(120, None, "critical", f"{crisis} (Diastolic > 120 mmHg)", "Diastolic", low_op="gt"),
        Band(
            135, None, "warning", f"{goal} (Systolic ≥ 135 mmHg)", "Systolic",
            low_op="ge", average_days=7,
        ),
        Band(
            85, None, "warning", f"{goal} (Diastolic ≥ 85 mmHg)", "Diastolic",
            low_op="ge", average_days=7,
        ),
    ]  # fmt: skip
    assert bands("weight", "kg") == []


def test_bands_from_rules_draws_one_region_once():
    rule = SimpleNamespace(
        kind="threshold",
        metric="inr",
        severity="critical",
        title="Critical INR",
        parameters={"conditions": [{"component": "value", "op": "ge", "value": 5.0}]},
    )
    repeated = SimpleNamespace(**{**vars(rule), "kind": "sustained", "title": "Sustained"})

    assert bands_from_rules([rule, repeated], unit="") == [
        Band(5.0, None, "critical", "Critical INR (≥ 5)", low_op="ge")
    ]
