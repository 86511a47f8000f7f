"""monitoring.charts: the limits a chart draws — one line per value, severity told apart
without colour, averages drawn as averages, labels that never overlap — and the triggering
reading marked by its id.

Coordinates are worked out by hand as in test_svg.py: a one-series plot is x 56–704 and
y 34–234; a blood-pressure chart has two panels 150 high, at y 44–194 and 218–368.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.charts import Band, bands_from_rules, line_chart, multi_line_chart
from monitoring.charts.layout import LABEL_HEIGHT, labels_height, place_labels

SVG = "{http://www.w3.org/2000/svg}"
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 1, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def labels(root: ET.Element) -> list[str]:
    return [g.find(f"{SVG}text").text for g in by_class(root, "limit-label")]


def rule(kind, metric, severity, title, parameters):
    return SimpleNamespace(
        kind=kind, metric=metric, severity=severity, title=title, parameters=parameters
    )


def glucose_chart(points, bands, marks=(), days=4):
    return parse(
        line_chart(
            points=points,
            unit="mg/dL",
            zone=BERLIN,
            bands=bands,
            marks=marks,
            start=START,
            end=START + timedelta(days=days),
            title="Blood glucose",
        )
    )


# --- Severity without colour ----------------------------------------------------------------


def test_each_severity_has_its_own_dash_pattern_weight_and_words():
    # given: one limit of each severity, and readings spanning them all
    bands = [
        Band(250, None, "critical", "Very high", low_op="gt"),
        Band(180, None, "warning", "High", low_op="gt"),
        Band(None, 70, "info", "Lowish", high_op="lt"),
        Band(90, 140, "target", "Target range 90–140"),
    ]
    points = [(START + timedelta(days=1), 60.0, 1), (START + timedelta(days=2), 260.0, 2)]

    # when
    root = glucose_chart(points, bands)

    # then: domain 60–260 padded 50–270, steps of 50: 50 to 300; y(v) = 234 - 200 (v-50)/250
    lines = [
        (
            e.get("class"),
            e.get("data-value"),
            e.get("y1"),
            e.get("stroke-width"),
            e.get("stroke-dasharray"),
        )
        for e in by_class(root, "limit")
    ]
    assert lines == [
        ("limit limit-critical", "250", "74.0", "2.4", None),
        ("limit limit-warning", "180", "130.0", "1.6", "6 3"),
        ("limit limit-target", "140", "162.0", "1.4", "9 3 2 3"),
        ("limit limit-target", "90", "202.0", "1.4", "9 3 2 3"),
        ("limit limit-info", "70", "218.0", "1.6", "1.5 3"),
    ]
    # The words on each line, so print in greyscale still reads.
    assert labels(root) == [
        "> 250 critical",
        "> 180 warning",
        "target 90–140",
        "target 90–140",
        "< 70 info",
    ]
    assert [g.get("class") for g in by_class(root, "limit-label")] == [
        "limit-label limit-label-critical",
        "limit-label limit-label-warning",
        "limit-label limit-label-target",
        "limit-label limit-label-target",
        "limit-label limit-label-info",
    ]
    # The legend's swatches are the lines as drawn, and name the severity in words.
    legend = [
        (
            g.get("class"),
            g.find(f"{SVG}line").get("stroke-dasharray"),
            g.find(f"{SVG}line").get("stroke-width"),
            g.find(f"{SVG}text").text,
        )
        for g in by_class(root, "legend-band")
    ]
    assert legend == [
        ("legend legend-band legend-critical", None, "2.4", "Critical: Very high"),
        ("legend legend-band legend-warning", "6 3", "1.6", "Warning: High"),
        ("legend legend-band legend-info", "1.5 3", "1.6", "Info: Lowish"),
        ("legend legend-band legend-target", "9 3 2 3", "1.4", "Target: Target range 90–140"),
    ]


def test_the_text_alternative_lists_the_limits_with_their_severity():
    bands = [Band(None, 54, "critical", "Level 2 hypoglycaemia (< 54 mg/dL)", high_op="lt")]
    points = [(START + timedelta(days=1), 60.0, 1)]

    root = glucose_chart(points, bands)

    chart_id = root.get("aria-labelledby").split()[1]
    desc = root.find(f"{SVG}desc")
    assert desc.get("id") == chart_id
    assert desc.text == (
        "1 reading, lowest 60, highest 60, latest 60 mg/dL at 02 Mar 01:00 CET. "
        "Limits drawn: < 54 critical (54 mg/dL). "
        "Rules: Critical: Level 2 hypoglycaemia (< 54 mg/dL). "
        "Patient's local time, Europe/Berlin (CET): 01 Mar 2026 01:00 – 05 Mar 2026 01:00."
    )
    (title,) = by_class(root, "limit")[0].iter(f"{SVG}title")
    assert title.text == "< 54 critical: Critical: Level 2 hypoglycaemia (< 54 mg/dL)"


# --- Duplicates -------------------------------------------------------------------------------


def test_one_value_from_several_rules_is_one_line_naming_them_all():
    # given: the diabetes protocol's low rules, a second copy of the level 2 threshold from
    # another protocol, and a CGM summary of time below 54
    level_2 = {"conditions": [{"component": "value", "op": "lt", "value": 54}]}
    rules = [
        rule("threshold", "glucose", "critical", "Level 2 hypoglycaemia", level_2),
        rule("sustained", "glucose", "critical", "Level 2 hypoglycaemia", level_2),
        rule("threshold", "glucose", "warning", "Level 1 hypoglycaemia", {
            "conditions": [{"component": "value", "op": "ge", "value": 54},
                           {"component": "value", "op": "lt", "value": 70}], "match": "all"}),
        rule("cgm_summary", "glucose", "warning", "CGM time below 54", {
            "measure": "percent_in_band", "band": {"upper": {"value": 54, "inclusive": False}}}),
    ]  # fmt: skip
    points = [(START + timedelta(days=1), 60.0, 1), (START + timedelta(days=2), 100.0, 2)]

    # when
    root = glucose_chart(points, bands_from_rules(rules, unit="mg/dL"))

    # then: two lines, 70 and 54; the one at 54 drawn once, in its most severe rule's
    # style, its words naming each rule's side of it
    lines = [(e.get("data-value"), e.get("class")) for e in by_class(root, "limit")]
    assert lines == [("70", "limit limit-warning"), ("54", "limit limit-critical")]
    assert labels(root) == ["< 70 warning", "< 54 critical · ≥ 54 warning · time < 54 warning"]
    (title,) = by_class(root, "limit")[1].iter(f"{SVG}title")
    assert title.text == (
        "< 54 critical · ≥ 54 warning · time < 54 warning: "
        "Critical: Level 2 hypoglycaemia (< 54 mg/dL); "
        "Warning: Level 1 hypoglycaemia (≥ 54 mg/dL and < 70 mg/dL); "
        "Warning: CGM time below 54 (< 54 mg/dL), on the share of time"
    )
    # A share of time is no region of alerting readings: no tint for it.
    assert [r.get("class") for r in by_class(root, "band")] == [
        "band band-warning",
        "band band-critical",
    ]


# --- Blood pressure: each component's limits, averages as averages ----------------------------

HYPERTENSION = [
    rule("threshold", "blood_pressure", "critical", "Hypertensive crisis", {
        "conditions": [{"component": "systolic", "op": "gt", "value": 180},
                       {"component": "diastolic", "op": "gt", "value": 120}], "match": "any"}),
    rule("average", "blood_pressure", "warning", "Home BP average at stage-2 level", {
        "conditions": [{"component": "systolic", "op": "ge", "value": 145},
                       {"component": "diastolic", "op": "ge", "value": 90}], "match": "any",
        "window_days": 7, "min_readings": 4}),
    rule("average", "blood_pressure", "info", "Home BP average above goal", {
        "conditions": [{"component": "systolic", "op": "ge", "value": 135},
                       {"component": "diastolic", "op": "ge", "value": 85}], "match": "any",
        "window_days": 7, "min_readings": 4}),
    rule("threshold", "blood_pressure", "warning", "Low blood pressure", {
        "conditions": [{"component": "systolic", "op": "lt", "value": 90},
                       {"component": "diastolic", "op": "lt", "value": 60}], "match": "any"}),
    rule("threshold", "blood_pressure", "critical", "Severe low blood pressure", {
        "conditions": [{"component": "systolic", "op": "lt", "value": 80}], "match": "any"}),
]  # fmt: skip


def bp_chart(readings, marks=(), days=7, average_marks=()):
    end = START + timedelta(days=14)
    return parse(
        multi_line_chart(
            series=[
                ("Systolic", [(at, s, pk) for pk, at, s, _ in readings]),
                ("Diastolic", [(at, d, pk) for pk, at, _, d in readings]),
            ],
            unit="mmHg",
            zone=BERLIN,
            bands=bands_from_rules(HYPERTENSION, unit="mmHg"),
            marks=marks,
            average_marks=average_marks,
            start=end - timedelta(days=days),
            end=end,
            title="Blood pressure",
        )
    )


def test_a_bp_chart_draws_each_components_nearest_limits_and_its_averages_as_averages():
    # given: 14 days of a reading at noon, 140/88 every day; the chart shows the last 7
    readings = [(n, START + timedelta(days=n, hours=12), 140.0, 88.0) for n in range(14)]

    # when: the hypertension protocol's nine limits (five systolic, four diastolic)
    root = bp_chart(readings)

    # then: each panel draws the limits nearest its readings, the others are named in the
    # legend as beyond the range shown. Systolic: 135–145 padded 134.5–145.5, steps of 2.5:
    # 132.5 to 147.5 (y = 194 - 150 (v - 132.5)/15); diastolic: 85–90 padded 84.75–90.25,
    # steps of 2: 84 to 92 (y = 368 - 150 (v - 84)/8).
    lines = [(e.get("data-value"), e.get("class"), e.get("y1")) for e in by_class(root, "limit")]
    assert lines == [
        ("145", "limit limit-warning limit-average", "69.0"),
        ("135", "limit limit-info limit-average", "169.0"),
        ("90", "limit limit-warning limit-average", "255.5"),
        ("85", "limit limit-info limit-average", "349.2"),
    ]
    # Limits on the 7-day mean say so on the line, in italics.
    assert labels(root) == [
        "7-day average ≥ 145 warning",
        "7-day average ≥ 135 info",
        "7-day average ≥ 90 warning",
        "7-day average ≥ 85 info",
    ]
    assert {g.find(f"{SVG}text").get("font-style") for g in by_class(root, "limit-label")} == {
        "italic"
    }
    # …and the 7-day mean they apply to is drawn in each panel: 140 and 88 throughout,
    # one point per day of the 7 shown (days 7 to 13, their windows full).
    averages = [
        (p.get("data-series"), p.get("data-days"), p.get("d").split())
        for p in by_class(root, "average-series")
    ]
    assert [(name, days, len(d)) for name, days, d in averages] == [
        ("Systolic", "7", 7),
        ("Diastolic", "7", 7),
    ]
    assert {c.split(",")[1] for c in averages[0][2]} == {"119.0"}  # 194 - 150 * 7.5/15
    assert {c.split(",")[1] for c in averages[1][2]} == {"293.0"}  # 368 - 150 * 4/8
    legend = [g.find(f"{SVG}text").text for g in by_class(root, "legend")]
    assert legend == [
        "Systolic",
        "Diastolic",
        "Systolic, 7-day average",
        "Diastolic, 7-day average",
        "Critical: Hypertensive crisis (Systolic > 180 mmHg) (beyond the range shown)",
        "Critical: Hypertensive crisis (Diastolic > 120 mmHg) (beyond the range shown)",
        "Critical: Severe low blood pressure (Systolic < 80 mmHg) (beyond the range shown)",
        "Warning: Home BP average at stage-2 level (Systolic ≥ 145 mmHg), on the 7-day average",
        "Warning: Home BP average at stage-2 level (Diastolic ≥ 90 mmHg), on the 7-day average",
        "Warning: Low blood pressure (Systolic < 90 mmHg) (beyond the range shown)",
        "Warning: Low blood pressure (Diastolic < 60 mmHg) (beyond the range shown)",
        "Info: Home BP average above goal (Systolic ≥ 135 mmHg), on the 7-day average",
        "Info: Home BP average above goal (Diastolic ≥ 85 mmHg), on the 7-day average",
    ]
    # No limit is tinted as a region of single readings.
    assert by_class(root, "band") == []


def test_a_systolic_limit_is_never_drawn_in_the_diastolic_panel():
    # given: readings that span every limit: 70/50 up to 190/125
    readings = [
        (n, START + timedelta(days=7 + n), 70.0 + 20 * n, 50.0 + 12.5 * n) for n in range(7)
    ]

    root = bp_chart(readings)

    # then: the systolic panel (y 44–194) holds 180, 145, 135, 90, 80; the diastolic one
    # (y 218–368) 120, 90, 85, 60
    borders = [float(r.get("y")) for r in by_class(root, "plot-border")]
    assert borders == [44.0, 218.0]
    lines = [(e.get("data-value"), float(e.get("y1"))) for e in by_class(root, "limit")]
    panels = [[value for value, y in lines if top <= y <= top + 150] for top in borders]
    assert panels == [["180", "145", "135", "90", "80"], ["120", "90", "85", "60"]]


def test_the_average_is_drawn_only_where_its_whole_window_was_supplied():
    # given: one reading a day for 10 days, 100 to 109 mg/dL, and a 3-day average limit;
    # the chart shows all 10 days
    band = Band(105, None, "warning", "Mean above 105", low_op="ge", average_days=3)
    points = [(START + timedelta(days=n, hours=1), 100.0 + n, n) for n in range(10)]

    root = glucose_chart(points, [band], days=10)

    # then: from the fourth reading on (its 3 days reach back to the first), the mean of
    # the readings in (t - 3 days, t] as the rule computes it: 102 (101, 102, 103) up to
    # 108 (107, 108, 109)
    (path,) = by_class(root, "average-series")
    assert len(path.get("d").split()) == 7
    assert "3-day average drawn, latest 108 mg/dL." in root.find(f"{SVG}desc").text
    assert labels(root) == ["3-day average ≥ 105 warning"]


def test_the_average_at_a_reading_counts_every_reading_of_that_instant():
    # given: 100 mg/dL on days 0 and 1, then two readings at one instant on day 3, 90 and
    # 130; a 3-day average limit
    band = Band(105, None, "warning", "Mean at least 105", low_op="ge", average_days=3)
    at = START + timedelta(days=3)
    points = [(START, 100.0, 1), (START + timedelta(days=1), 100.0, 2)]
    points += [(at, 90.0, 3), (at, 130.0, 4)]

    root = glucose_chart(points, [band])

    # then: the mean at either reading of day 3 is the rule's, over (day 0, day 3]:
    # (100 + 90 + 130) / 3, not 95 at the first of the two
    (path,) = by_class(root, "average-series")
    assert len({command.split(",")[1] for command in path.get("d").split()}) == 1
    assert len(path.get("d").split()) == 2
    assert "3-day average drawn, latest 106.7 mg/dL." in root.find(f"{SVG}desc").text


# --- The triggering reading, by id ----------------------------------------------------------


def test_only_the_triggering_reading_is_ringed_not_another_at_the_same_minute():
    # given: a sensor value of 139 mg/dL and a fingerstick of 48 at the same minute; the
    # alert fired on the fingerstick (id 2)
    at = START + timedelta(days=2)
    points = [(START + timedelta(days=1), 120.0, 1), (at, 139.0, 3), (at, 48.0, 2)]

    # when
    root = glucose_chart(points, [], marks=[2])

    # then: one ring, round the 48: domain 48–139 padded 43.45–143.55, steps of 25: 25 to
    # 150; y(48) = 234 - 200 * 23/125
    rings = [(r.get("data-reading"), r.get("cx"), r.get("cy")) for r in by_class(root, "mark-ring")]
    assert rings == [("2", "380.0", "197.2")]
    assert len(by_class(root, "mark")) == 1
    assert "Triggering reading: 48 mg/dL at 03 Mar 01:00 CET (ringed)." in (
        root.find(f"{SVG}desc").text
    )
    assert [g.find(f"{SVG}text").text for g in by_class(root, "legend-mark")] == [
        "Triggering reading (ringed)"
    ]


def test_a_blood_pressure_reading_is_ringed_in_both_panels_and_no_other():
    readings = [(n, START + timedelta(days=7 + n), 130.0 + n, 80.0 + n) for n in range(7)]

    root = bp_chart(readings, marks=[4])

    rings = [r.get("data-reading") for r in by_class(root, "mark-ring")]
    assert rings == ["4", "4"]


def test_an_average_that_fired_is_ringed_on_the_average_not_on_the_reading():
    # given: 14 days of 140/88 a day; the 7-day average alert fired at reading 11
    readings = [(n, START + timedelta(days=n, hours=12), 140.0, 88.0) for n in range(14)]

    # when
    root = bp_chart(readings, average_marks=[11])

    # then: the average at reading 11 is ringed in each panel, at its own value (140 →
    # y 119 in the systolic panel, 88 → 293 in the diastolic one, as in the test above),
    # and no single reading
    rings = [
        (r.get("class"), r.get("data-reading"), r.get("cy")) for r in by_class(root, "mark-ring")
    ]
    assert rings == [
        ("mark-ring mark-ring-average", "11", "119.0"),
        ("mark-ring mark-ring-average", "11", "293.0"),
    ]
    titles = [r.find(f"{SVG}title").text for r in by_class(root, "mark-ring")]
    assert titles == [
        "Triggering 7-day average: Systolic 140 mmHg at 12 Mar 13:00 CET",
        "Triggering 7-day average: Diastolic 88 mmHg at 12 Mar 13:00 CET",
    ]
    legend = [g.find(f"{SVG}text").text for g in by_class(root, "legend-mark")]
    assert legend == ["Triggering 7-day average (ringed)"]


def test_an_average_mark_without_its_average_drawn_rings_the_reading():
    # given: the average's window reaches back past the readings supplied
    readings = [(n, START + timedelta(days=10 + n), 140.0, 88.0) for n in range(4)]

    root = bp_chart(readings, average_marks=[2])

    rings = [(r.get("class"), r.get("data-reading")) for r in by_class(root, "mark-ring")]
    assert rings == [("mark-ring", "2"), ("mark-ring", "2")]


# --- Labels never overlap -------------------------------------------------------------------


def boxes(root: ET.Element) -> list[tuple[float, float]]:
    return [
        (float(r.get("y")), float(r.get("y")) + float(r.get("height")))
        for r in by_class(root, "limit-label-box")
    ]


def assert_apart(spans: list[tuple[float, float]]) -> None:
    ordered = sorted(spans)
    for (_, bottom), (top, _) in pairwise(ordered):
        assert bottom <= top + 1e-6, ordered


def test_crowded_limits_get_labels_apart_with_a_leader_to_their_line():
    # given: six limits within 10 mg/dL of each other
    bands = [Band(None, 50 + 2 * i, "warning", f"Rule {i}", high_op="lt") for i in range(6)]
    points = [(START + timedelta(days=1), 40.0, 1), (START + timedelta(days=2), 200.0, 2)]

    root = glucose_chart(points, bands)

    spans = boxes(root)
    assert len(spans) == 6
    assert_apart(spans)
    assert all(top >= 34 and bottom <= 234 for top, bottom in spans)
    assert by_class(root, "limit-leader")  # the moved ones point at their line


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=40, max_value=300, allow_nan=False).map(lambda v: round(v, 1)),
            st.sampled_from(["critical", "warning", "info"]),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_any_set_of_limits_gets_label_boxes_that_do_not_overlap_and_stay_in_the_plot(limits):
    bands = [
        Band(value, None, severity, f"Rule {value}", low_op="gt", average_days=7 if avg else None)
        for value, severity, avg in limits
    ]
    points = [(START + timedelta(days=1), 40.0, 1), (START + timedelta(days=2), 300.0, 2)]

    root = glucose_chart(points, bands)

    (border,) = by_class(root, "plot-border")
    top, height = float(border.get("y")), float(border.get("height"))
    spans = boxes(root)
    assert len(spans) == len(by_class(root, "limit"))
    assert_apart(spans)
    assert all(top <= a and b <= top + height for a, b in spans)


@given(
    st.lists(st.floats(min_value=-50, max_value=400, allow_nan=False), max_size=40),
    st.floats(min_value=0, max_value=100),
)
def test_place_labels_never_overlaps_and_fits_whenever_the_height_allows(wanted, top):
    bottom = top + max(labels_height(len(wanted)), 120)

    centres = place_labels(wanted, top, bottom)

    assert len(centres) == len(wanted)
    assert_apart([(c - LABEL_HEIGHT / 2, c + LABEL_HEIGHT / 2) for c in centres])
    assert all(top <= c - LABEL_HEIGHT / 2 and c + LABEL_HEIGHT / 2 <= bottom for c in centres)
    # A label that can stay at its line does: with one label, exactly there (clamped).
    if len(wanted) == 1:
        half = LABEL_HEIGHT / 2 + 1
        assert centres == [min(max(wanted[0], top + half), bottom - half)]
