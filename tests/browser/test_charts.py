"""The alert page's charts in a real browser, at the widths the workspace must fit (issue 14,
item 7): a blood-pressure chart draws each component's limits in its own panel, a limit on
the 7-day average over the average it applies to, and labels that do not overlap in the
browser's own font; a CGM low is ringed on the fingerstick that fired it, not on the sensor
value of the same minute."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import Alert, CareTeam
from alerts.teams import NewMember, create_care_team
from monitoring.enrolment import enrol_patient
from monitoring.models import Reading
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing, post_readings
from tests.factories import UserFactory

SVG = "{http://www.w3.org/2000/svg}"
SYSTOLIC_LIMITS = {"180", "145", "135", "90", "80"}  # the hypertension protocol's
DIASTOLIC_LIMITS = {"120", "90", "85", "60"}

# Each label's box and its text as the browser lays them out (real font metrics).
LABEL_BOXES = """
svg => [...svg.querySelectorAll("g.limit-label")].map(g => {
  const box = g.querySelector("rect").getBBox();
  const text = g.querySelector("text").getBBox();
  return {top: box.y, bottom: box.y + box.height, left: box.x, right: box.x + box.width,
          textLeft: text.x, textRight: text.x + text.width,
          textTop: text.y, textBottom: text.y + text.height};
})
"""


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


@pytest.fixture
def team(live_server, _broker_queues_purged) -> CareTeam:
    nurse = UserFactory(username="nina", first_name="Nina", last_name="Nurse")
    return create_care_team(name="Cardiometabolic clinic", members=[NewMember(nurse, "nurse")])


def bp_alerts(team) -> dict[str, Alert]:
    """Two weeks of home BP twice a day at 142/88 (the 7-day average above the 135/85
    goal), then a hypertensive crisis an hour ago: it also lifts the 7-day average to
    145.3/90, the stage-2 level, and the one home-average alert with it."""
    now = timezone.now()
    patient = enrol_patient(
        external_id="CH-001",
        name="Hanna Brandt",
        timezone="Europe/Berlin",
        care_team=team,
        protocols=["hypertension"],
    )
    post_readings(
        patient,
        now,
        [
            *[
                (timedelta(days=14) - timedelta(hours=12 * n), "blood_pressure",
                 {"systolic": 142, "diastolic": 88})
                for n in range(28)
            ],
            (timedelta(hours=1), "blood_pressure", {"systolic": 192, "diastolic": 118}),
        ],
    )  # fmt: skip
    alerts = {alert.rule.key: alert for alert in Alert.objects.filter(patient=patient)}
    assert sorted(alerts) == ["bp_crisis", "bp_home_avg_stage2_like"]
    return alerts


def cgm_low(team) -> Alert:
    """Twelve hours of CGM every 5 minutes at 120–160 mg/dL; three hours ago a fingerstick
    of 48 mg/dL at the very minute the sensor read 139."""
    now = timezone.now().replace(second=0, microsecond=0)
    patient = enrol_patient(
        external_id="CH-002",
        name="Dmitri Bauer",
        timezone="Europe/Berlin",
        care_team=team,
        protocols=["diabetes"],
    )
    at = timedelta(hours=3)
    sensor = [
        (timedelta(minutes=5 * n), "glucose", {"value": 120 + (n * 7) % 41, "device": "CGM-1"})
        for n in range(1, 145)
        if timedelta(minutes=5 * n) != at
    ]
    post_readings(
        patient,
        now,
        [
            *sensor,
            (at, "glucose", {"value": 139, "device": "CGM-1"}),
            (at, "glucose", {"value": 48, "entry": "manual"}),
        ],
    )
    (alert,) = Alert.objects.filter(patient=patient)
    return alert


def open_alert(open_page, width: int, alert: Alert):
    page = open_page(width=width)
    login(page, "nina")
    page.goto(f"/admin/alerts/alert/{alert.pk}/change/")
    chart = page.locator("svg.vigil-chart").first
    expect(chart).to_be_visible()
    return page, chart


def assert_no_sideways_scrolling(page, chart, width: int) -> None:
    """The chart fits the window, and so does the whole alert page."""
    box = chart.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert overflow_of(page) == 0, overflowing(page)


def assert_labels_apart_and_readable(chart) -> None:
    boxes = chart.evaluate(LABEL_BOXES)
    assert boxes
    for box in boxes:  # the estimate of the text's width holds in the browser's font
        assert box["left"] <= box["textLeft"] and box["textRight"] <= box["right"], box
    for above, below in pairwise(sorted(boxes, key=lambda b: b["top"])):
        assert above["bottom"] <= below["top"] + 0.01, (above, below)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_bp_alerts_chart_draws_each_components_limits_in_its_own_panel(
    team, open_page, screenshot, width
):
    alerts = bp_alerts(team)
    crisis = alerts["bp_crisis"]
    page, chart = open_alert(open_page, width, crisis)

    root = ET.fromstring(chart.evaluate("svg => svg.outerHTML"))
    assert [t.text for t in by_class(root, "panel-title")] == ["Systolic", "Diastolic"]
    borders = [float(r.get("y")) for r in by_class(root, "plot-border")]
    heights = [float(r.get("height")) for r in by_class(root, "plot-border")]
    for (top, height), component in zip(
        zip(borders, heights, strict=True), (SYSTOLIC_LIMITS, DIASTOLIC_LIMITS), strict=True
    ):
        drawn = {
            e.get("data-value")
            for e in by_class(root, "limit")
            if top <= float(e.get("y1")) <= top + height
        }
        assert drawn and drawn <= component, (drawn, component)
    # The crisis reading, in both panels (one reading, two values) and nowhere else.
    rings = [r.get("data-reading") for r in by_class(root, "mark-ring")]
    assert rings == [str(crisis.reading_ids[0])] * 2
    assert_labels_apart_and_readable(chart)
    screenshot(page, f"chart-bp-crisis-{width}")
    crisis_page = (page, chart)

    # The average's own alert: its limits are on the 7-day average, drawn over that average.
    page, chart = open_alert(open_page, width, alerts["bp_home_avg_stage2_like"])
    root = ET.fromstring(chart.evaluate("svg => svg.outerHTML"))
    averaged = [g.find(f"{SVG}text").text for g in by_class(root, "limit-label-average")]
    assert averaged == ["7-day average ≥ 145 warning", "7-day average ≥ 90 warning"]
    assert [p.get("data-series") for p in by_class(root, "average-series")] == [
        "Systolic",
        "Diastolic",
    ]
    expect(chart.locator("path.average-series").first).to_be_visible()
    # What fired it: the average at the crisis reading, ringed in each panel; no reading.
    rings = [(r.get("class"), r.get("data-reading")) for r in by_class(root, "mark-ring")]
    average = (
        "mark-ring mark-ring-average",
        str(alerts["bp_home_avg_stage2_like"].reading_ids[-1]),
    )
    assert rings == [average, average]
    assert_labels_apart_and_readable(chart)
    screenshot(page, f"chart-bp-average-{width}")
    assert_no_sideways_scrolling(*crisis_page, width)
    assert_no_sideways_scrolling(page, chart, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_cgm_low_rings_the_fingerstick_not_the_sensor_value_of_the_same_minute(
    team, open_page, screenshot, width
):
    alert = cgm_low(team)
    (fingerstick,) = alert.reading_ids
    assert Reading.objects.get(pk=fingerstick).value == 48

    page, chart = open_alert(open_page, width, alert)

    rings = chart.locator("circle.mark-ring")
    expect(rings).to_have_count(1)
    expect(rings).to_have_attribute("data-reading", str(fingerstick))
    expect(rings.locator("title")).to_have_text(re.compile(r"^Triggering reading: 48 mg/dL at "))
    # Critical and warning told apart without colour: solid and heavy, dashed.
    expect(chart.locator("line.limit-critical").first).to_have_attribute("stroke-width", "2.4")
    expect(chart.locator("line.limit-warning").first).to_have_attribute("stroke-dasharray", "6 3")
    assert_labels_apart_and_readable(chart)
    screenshot(page, f"chart-cgm-low-{width}")
    assert_no_sideways_scrolling(page, chart, width)
