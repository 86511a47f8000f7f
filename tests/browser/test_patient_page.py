"""The patient page in a real browser (issue 14.3, 14.5): a CGM patient's AGP and
time-in-ranges bar over 14 days of 5-minute data, a BP patient's summary and the switch to 90
days, at 1024 and 1440 px without scrolling sideways."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.teams import NewMember, create_care_team
from monitoring.enrolment import enrol_patient
from monitoring.ingest import record_readings
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing
from tests.factories import ReadingItemFactory, UserFactory


def record(patient, now, items: list[dict]) -> None:
    """As the uploaders post them, in batches the API accepts (not evaluated: the page reads
    readings, not alerts)."""
    for start in range(0, len(items), 500):
        batch = items[start : start + 500]
        result = record_readings(patient=patient, items=batch, received_at=now)
        assert result.created == len(batch), result.as_dict()


@pytest.fixture
def patients(live_server, _broker_queues_purged):
    now = timezone.now()
    physician = UserFactory(username="phil", first_name="Phil", last_name="Physician")
    team = create_care_team(name="Metabolic clinic", members=[NewMember(physician, "physician")])
    cgm = enrol_patient(
        external_id="BT-201",
        name="Greta Glucose",
        timezone="Europe/Berlin",
        care_team=team,
        protocols=["diabetes"],
    )
    # 14 days of a 5-minute sensor (a day's curve: lower at night, higher after meals)
    record(
        cgm,
        now,
        [
            ReadingItemFactory(
                type="glucose",
                value=round(130 + 50 * math.sin(i / 288 * 2 * math.pi) + (i * 37) % 41 - 20),
                unit="mg/dL",
                entry="device",
                measured_at=(now - timedelta(minutes=5 * i)).isoformat(),
            )
            for i in range(14 * 288)
        ],
    )
    bp = enrol_patient(
        external_id="BT-202",
        name="Bruno Pressure",
        timezone="America/New_York",
        care_team=team,
        protocols=["hypertension"],
    )
    # 90 days of twice-daily home blood pressure
    record(
        bp,
        now,
        [
            ReadingItemFactory(
                type="blood_pressure",
                systolic=126 + (day % 5) * 3 if hour == 8 else 122,
                diastolic=80,
                measured_at=(now - timedelta(days=day, hours=hour)).isoformat(),
            )
            for day in range(90)
            for hour in (8, 20)
        ],
    )
    return {"physician": physician, "cgm": cgm, "bp": bp}


def patient_url(patient) -> str:
    return f"/admin/monitoring/patient/{patient.pk}/change/"


@pytest.mark.parametrize("width", WIDTHS)
def test_a_physician_reads_the_agp_of_a_cgm_patient(patients, open_page, screenshot, width):
    page = open_page(width=width)
    login(page, "phil")

    # when
    page.goto(patient_url(patients["cgm"]))

    # then: the name as the title and last breadcrumb, the AGP and the bar, nothing to scroll
    expect(page).to_have_title("Greta Glucose | Vigil")
    expect(page.locator(".breadcrumbs")).to_contain_text("Greta Glucose")
    agp = page.locator("svg.vigil-agp")
    expect(agp).to_be_visible()
    expect(agp.locator("path.agp-median")).not_to_have_count(0)
    expect(agp.locator("rect.agp-target")).to_have_count(1)
    expect(page.locator("svg.vigil-tir rect.tir-segment")).to_have_count(5)
    expect(page.locator("#summary-cgm")).to_contain_text("Sensor active")
    expect(page.locator("#summary-inr")).to_have_count(0)
    expect(page.locator("#summary-bp")).to_have_count(0)
    assert agp.bounding_box()["width"] > 400
    assert overflow_of(page) == 0, overflowing(page)
    # the summary alone, at the size it is read
    full = screenshot(page, f"patient-agp-{width}")
    page.locator("#summary-cgm").screenshot(path=full.with_name(f"patient-agp-summary-{width}.png"))


@pytest.mark.parametrize("width", WIDTHS)
def test_a_physician_switches_a_bp_patient_to_90_days(patients, open_page, screenshot, width):
    page = open_page(width=width)
    login(page, "phil")
    page.goto(patient_url(patients["bp"]))
    expect(page.locator("#summary-bp [data-metric=bp-mean]")).to_contain_text("(28 readings)")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"patient-bp-14-days-{width}")

    # when
    page.locator("#period").get_by_role("link", name="90 days").click()

    # then: 90 days of readings in the summary and on the chart
    expect(page.locator("#period h2")).to_have_text("Summaries and charts: last 90 days")
    expect(page.locator("#summary-bp [data-metric=bp-mean]")).to_contain_text("(180 readings)")
    expect(page.locator("#summary-bp [data-metric=bp-morning]")).to_contain_text("04:00–11:59")
    chart = page.locator("figure[data-metric=blood_pressure]")
    expect(chart.locator("figcaption")).to_contain_text("180 readings")
    expect(chart.locator("svg title").first).to_have_text("Blood pressure, last 90 days")
    expect(page.locator("#summary-cgm")).to_have_count(0)
    assert overflow_of(page) == 0, overflowing(page)
    full = screenshot(page, f"patient-bp-90-days-{width}")
    page.locator("#period").screenshot(path=full.with_name(f"patient-bp-period-{width}.png"))
    page.locator("#summaries").screenshot(path=full.with_name(f"patient-bp-summary-{width}.png"))


@pytest.mark.parametrize("width", WIDTHS)
def test_a_custom_period_and_a_hostile_one(patients, open_page, screenshot, width):
    page = open_page(width=width)
    login(page, "phil")
    page.goto(patient_url(patients["bp"]) + "?days=%3Cscript%3E")

    expect(page.locator("#period .errornote")).to_contain_text(
        "The period can be 7, 14, 30, 90 days or custom dates"
    )
    expect(page.locator("#period h2")).to_have_text("Summaries and charts: last 14 days")

    # when: the custom dates of the last 30 days
    today = timezone.now().astimezone(patients["bp"].zone).date()
    form = page.locator("form.period-custom")
    form.locator("input[name=from]").fill((today - timedelta(days=29)).isoformat())
    form.locator("input[name=to]").fill(today.isoformat())
    form.get_by_role("button", name="Show these dates").click()

    # then
    expect(page.locator("#period .errornote")).to_have_count(0)
    expect(page.locator("#period h2")).to_contain_text(f"{today.day} {today:%b %Y}")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"patient-custom-period-{width}")
