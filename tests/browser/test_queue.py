"""The triage queue in a real browser at the widths the workspace must fit (issue 14, items
1 and 6): no sideways scrolling, the priority columns on screen and the rest on demand, the
order a nurse needs (severity, then open before acknowledged, then the longest waiting), the
values labelled, a trend per row, and a reload that keeps the filters."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alerts.lifecycle import acknowledge_alert
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing

PRIORITY_HEADERS = ["Severity", "Patient", "Problem", "Value", "Trend", "Since", "Status"]
MORE_HEADERS = ["Metric", "Occurrences", "Cleared", "Assignee", "Escalation level", "Latest from"]


def box_overflow(page) -> int:
    """How many pixels the queue's table is wider than its own box (the box scrolls)."""
    return page.evaluate(
        "(() => { const box = document.querySelector('#changelist-form .results');"
        " return box.scrollWidth - box.clientWidth; })()"
    )


def headers(page) -> list[str]:
    cells = page.locator("#result_list thead th:not(.action-checkbox-column)")
    return [text.strip() for text in cells.all_text_contents()]


def assert_on_screen(page, locator) -> None:
    """Visible, and inside the window's width (not clipped at the right)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    width = page.evaluate("window.innerWidth")
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (box, width)


# The widest screen too, for this one.
@pytest.mark.parametrize("width", [*WIDTHS, 1920])
def test_the_queue_fits_shows_the_priority_columns_and_orders_severity_first(
    clinic, open_page, screenshot, width
):
    # given: a critical acknowledged — still there, still above every warning and info
    hypertensive = clinic.queue[1]
    acknowledge_alert(alert=hypertensive, user=clinic.nurse)
    page = open_page(width=width)
    login(page, clinic.nurse.username)

    # when
    page.goto("/admin/alerts/alert/")

    # then: nothing scrolls sideways, not the page and not the table in its box
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(clinic.queue))
    assert overflow_of(page) == 0, overflowing(page)
    assert box_overflow(page) == 0
    assert headers(page) == PRIORITY_HEADERS
    for header in PRIORITY_HEADERS:
        assert_on_screen(page, page.locator("#result_list thead th", has_text=header).first)
    for cell in ("field-severity_badge", "field-status_column", "field-trend_column"):
        assert_on_screen(page, rows.first.locator(f"td.{cell}"))

    # and: as seen on screen, critical first (open before acknowledged), then warnings
    # (the longest waiting first), the info alert last
    assert rows.locator(".field-summary").all_inner_texts() == [
        "Glucose is below 54 mg/dL",
        "Systolic is above 180 mmHg or diastolic is above 120 mmHg",
        "SpO2 is at or below 87 %",
        "INR is below 2 or above 3",
        "Glucose is above 180 mg/dL and at or below 250 mg/dL",
    ]
    assert rows.locator("td.field-status_column").all_inner_texts() == [
        "Open",
        "Acknowledged",
        "Open",
        "Open",
        "Open",
    ]
    # the values labelled, and a trend with its words on every row
    hypo = rows.first
    expect(hypo.locator(".field-value_column")).to_contain_text("Triggered")
    expect(hypo.locator(".field-value_column")).to_contain_text("48 mg/dL")
    expect(hypo.locator(".field-value_column")).to_contain_text("Latest")
    expect(rows.locator("svg.vigil-spark")).to_have_count(len(clinic.queue))
    expect(hypo.locator("svg.vigil-spark")).to_have_attribute(
        "aria-label",
        "Blood glucose, last 7 readings (oldest first): 131, 118, 131, 118, 131, 214, 48 mg/dL",
    )
    screenshot(page, f"queue-order-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_more_columns_come_on_demand_and_keep_the_filters(clinic, open_page, screenshot, width):
    page = open_page(width=width)
    login(page, clinic.nurse.username)
    page.goto("/admin/alerts/alert/?severity__exact=warning")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)

    # when
    page.locator("#queue-columns").click()

    # then: the same two warnings, with every column
    expect(page).to_have_url(re.compile(r"columns=all"))
    expect(page).to_have_url(re.compile(r"severity__exact=warning"))
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    assert headers(page) == PRIORITY_HEADERS + MORE_HEADERS
    screenshot(page, f"queue-more-columns-{width}")
    assert overflow_of(page) == 0, overflowing(page)
    if width >= 1440:
        assert box_overflow(page) == 0  # at 1024 the table scrolls in its own box

    # when: a filter chosen now keeps the columns
    page.locator("#changelist-filter a", has_text="Critical").click()

    # then
    expect(page).to_have_url(re.compile(r"columns=all"))
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    assert headers(page) == PRIORITY_HEADERS + MORE_HEADERS

    # when: fewer columns again
    page.locator("#queue-columns").click()

    # then
    expect(page).to_have_url(re.compile(r"severity__exact=critical"))
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    assert headers(page) == PRIORITY_HEADERS


@pytest.mark.parametrize("width", WIDTHS)
def test_the_queue_reloads_itself_with_its_filters_waits_for_a_selection_and_pauses(
    clinic, open_page, screenshot, settings, width
):
    settings.VIGIL_QUEUE_REFRESH_SECONDS = 1
    page = open_page(width=width)
    login(page, clinic.nurse.username)
    url = "/admin/alerts/alert/?q=Bauer&severity__exact=critical"
    page.goto(url)
    expect(page.locator("#queue-refresh")).to_contain_text("Updated at")
    expect(page.locator("#queue-refresh")).to_contain_text("refreshes every 1 seconds")

    # when: a mark on the page, then the page reloads itself
    page.evaluate("window.vigilMark = true")
    page.wait_for_event("load", timeout=5_000)
    assert page.evaluate("window.vigilMark") is None

    # then: the same address, the same one alert
    assert page.url.endswith(url)
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list .field-summary")).to_have_text("Glucose is below 54 mg/dL")

    # when: she selects the row, the reload waits
    page.locator("#result_list input.action-select").first.check()
    page.evaluate("window.vigilMark = true")
    page.wait_for_timeout(2_500)

    # then
    assert page.evaluate("window.vigilMark") is True
    page.locator("#result_list input.action-select").first.uncheck()
    page.wait_for_event("load", timeout=5_000)
    assert page.evaluate("window.vigilMark") is None

    # when: she pauses it
    page.locator("#queue-refresh-pause").click()
    expect(page).to_have_url(re.compile(r"refresh=off"))
    page.evaluate("window.vigilMark = true")
    page.wait_for_timeout(2_500)

    # then: no reload, the filters kept, and a way back
    assert page.evaluate("window.vigilMark") is True
    expect(page).to_have_url(re.compile(r"severity__exact=critical"))
    expect(page).to_have_url(re.compile(r"q=Bauer"))
    expect(page.locator("#queue-refresh")).to_contain_text("automatic refresh paused")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"queue-paused-{width}")
    page.locator("#queue-refresh-resume").click()
    expect(page.locator("#queue-refresh-pause")).to_be_visible()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_reloads_stop_when_nobody_has_used_the_page_for_the_sessions_idle_time(
    clinic, open_page, settings, width
):
    # given: reloads every second, an idle timeout of four
    settings.VIGIL_QUEUE_REFRESH_SECONDS = 1
    page = open_page(width=width)
    login(page, clinic.nurse.username)
    settings.SESSION_COOKIE_AGE = 4
    page.goto("/admin/alerts/alert/")

    # when: nobody touches it
    state = page.locator("#queue-refresh-state")
    expect(state).to_contain_text("automatic refresh stopped", timeout=10_000)

    # then: it reloads no more
    page.evaluate("window.vigilMark = true")
    page.wait_for_timeout(2_500)
    assert page.evaluate("window.vigilMark") is True
    expect(state).to_have_text(
        "automatic refresh stopped: nobody used this page for 4 seconds (reload to resume)"
    )
    assert overflow_of(page) == 0, overflowing(page)
