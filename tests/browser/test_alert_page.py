"""The alert page in a real browser at the workspace's widths (issue 14): it fits without
scrolling sideways — also after a rule was tailored — opens with the patient's clinical
header, whose phone number is a link to tap, and its History shows the alert's own events.
The patient page opens with the same header."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import expect

from alerts.lifecycle import acknowledge_alert, resolve_alert
from monitoring.models import Patient
from monitoring.patient_rules import change_rule
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing


@pytest.fixture
def top(clinic):
    """The queue's top alert (Dmitri Bauer's level 2 hypoglycaemia), its patient with a
    birth date and a phone number."""
    alert = clinic.queue[0]
    Patient.objects.filter(pk=alert.patient_id).update(
        date_of_birth=date(1958, 6, 20), phone="+49 151 1234 5678", language="de"
    )
    return alert


def _open(page, url: str, username: str):
    login(page, username)
    page.goto(url)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_alert_page_fits_and_the_phone_is_one_tap_away(
    clinic, top, open_page, screenshot, width
):
    page = open_page(width=width, timezone_id="America/New_York")

    _open(page, f"/admin/alerts/alert/{top.pk}/change/", clinic.nurse.username)

    # then: the header, first on the page, with the number as a tel: link, visible as the
    # page opens (no collapsed section to open, no scrolling)
    header = page.locator("#clinical-header")
    expect(header).to_be_visible()
    expect(header.locator("h2")).to_have_text("Dmitri Bauer")
    expect(header).to_contain_text("MRN BT-002")
    expect(header).to_contain_text("Speaks German")
    expect(header).to_contain_text("Diabetes")
    expect(header.locator(".clinical-header-assignee")).to_have_text("Nobody")
    phone = page.get_by_role("link", name="Call +49 151 1234 5678")
    expect(phone).to_be_visible()
    expect(phone).to_have_attribute("href", "tel:+4915112345678")
    box = phone.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 900, box  # in the first screen
    # …the patient's name where "alert 2" was, and times on both clocks
    assert page.title() == "Dmitri Bauer: Glucose is below 54 mg/dL | Vigil"
    expect(page.locator(".breadcrumbs")).to_contain_text("Dmitri Bauer: Glucose is below 54 mg/dL")
    expect(page.locator(".vigil-facts")).to_contain_text("your time")  # Berlin vs New York
    expect(page.locator("body")).not_to_contain_text("View site", ignore_case=True)
    # It fits beside the navigation sidebar, open (config/admin.py).
    expect(page.locator("#nav-sidebar")).to_be_visible()
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"alert-page-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_alert_page_fits_after_a_rule_was_tailored(clinic, top, open_page, screenshot, width):
    # given: a physician tailored the patient's time-in-range rule (the longest description)
    rule = top.patient.rules.get(key="cgm_tir_70_180")
    change_rule(
        rule=rule,
        user=clinic.nurse,
        parameters={**rule.parameters, "target": {"op": "gt", "value": 60}},
        note="Older patient: a lower target.",
    )
    page = open_page(width=width)

    # when
    _open(page, f"/admin/alerts/alert/{top.pk}/change/", clinic.nurse.username)

    # then
    note = page.get_by_text("Tailored; the protocol default was")
    expect(note).to_be_visible()
    assert note.evaluate("element => getComputedStyle(element).whiteSpace") == "normal"
    expect(page.locator("#nav-sidebar")).to_be_visible()
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"alert-tailored-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_history_button_shows_the_alerts_events(clinic, top, open_page, screenshot, width):
    # given: acknowledged and resolved with a reason
    acknowledge_alert(alert=top, user=clinic.nurse, note="Calling her now.")
    resolve_alert(alert=top, user=clinic.nurse, note="Juice; 98 now.", reason="contacted_patient")
    page = open_page(width=width)
    _open(page, f"/admin/alerts/alert/{top.pk}/change/", clinic.nurse.username)

    # when
    page.get_by_role("link", name="History").click()

    # then
    events = page.locator(".vigil-timeline > li")
    expect(events).to_have_count(3)
    expect(events.nth(0)).to_contain_text("Raised")
    expect(events.nth(1)).to_contain_text("Acknowledged")
    expect(events.nth(1)).to_contain_text("Calling her now.")
    expect(events.nth(2)).to_contain_text("Resolved")
    expect(events.nth(2)).to_contain_text("Contacted the patient")
    expect(page.locator("#content")).not_to_contain_text("change history")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"alert-history-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_patient_page_opens_with_the_clinical_header(clinic, top, open_page, screenshot, width):
    page = open_page(width=width)

    _open(page, f"/admin/monitoring/patient/{top.patient_id}/change/", clinic.nurse.username)

    header = page.locator("#clinical-header")
    expect(header).to_be_visible()
    expect(header.locator("h2")).to_have_text("Dmitri Bauer")
    phone = page.get_by_role("link", name="Call +49 151 1234 5678")
    expect(phone).to_be_visible()
    expect(phone).to_have_attribute("href", "tel:+4915112345678")
    expect(header).to_contain_text("Care team")
    expect(header).to_contain_text("Nina Nurse")
    # The header itself fits (the rest of the page is the patient page's own: issue 14.3).
    box = header.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    screenshot(page, f"alert-patient-header-{width}")
