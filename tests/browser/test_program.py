"""The RPM program's morning in Chromium (issue 13): the panel beside the queue, its flags and
filters, and care time logged with the timer on the patient page, then seen on the panel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import Patient
from program.models import TimeEntry
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing
from tests.program.factories import EpisodeFactory


def episodes_for(clinic) -> dict[str, object]:
    """An open episode, started 20 days ago, for each of the team's patients."""
    start = timezone.localdate() - timedelta(days=20)
    return {
        patient.external_id: EpisodeFactory(patient=patient, start=start)
        for patient in Patient.objects.filter(care_team=clinic.team).order_by("external_id")
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_shows_the_teams_patients_with_their_flags(clinic, open_page, screenshot, width):
    episodes_for(clinic)
    page = open_page(width=width)
    login(page, "nina")

    page.get_by_role("link", name="Panel").first.click()
    page.wait_for_load_state()

    table = page.locator("table#panel")
    rows = table.locator("tbody tr")
    names = rows.locator("th[scope=row] a").all_inner_texts()
    assert sorted(names) == ["Carla Ortiz", "Dmitri Bauer", "Harriet Ford", "Wen Li"]
    assert "Olaf Berg" not in page.content()  # another team's patient
    # Five daily readings in 20 days of the period: whatever their pace, each row says where
    # it stands in words, not by colour.
    assert table.locator("caption").inner_text() == "4 patients"
    assert rows.filter(has_text="At risk").count() == 4
    # Each has an unresolved alert raised by its own rules: each needs review.
    assert rows.filter(has_text="Needs review").count() == 4
    screenshot(page, f"program-panel-{width}")
    assert overflow_of(page) == 0, overflowing(page)


def test_a_filter_keeps_to_its_patients_and_says_so_in_the_url(clinic, open_page):
    episodes = episodes_for(clinic)
    # Harriet was reviewed after her data came in: she does not need review.
    harriet = episodes["BT-001"].patient
    harriet.reviews.create(reviewer=clinic.nurse, at=timezone.now(), note="")
    harriet.alerts.update(status="resolved", resolved_at=timezone.now())
    page = open_page()
    login(page, "nina")
    page.goto("/admin/panel/")

    page.locator("#panel-filters").get_by_role("link", name=re.compile("Needs review")).click()
    page.wait_for_load_state()

    assert "needs_review" in page.url
    names = page.locator("table#panel tbody th[scope=row] a").all_inner_texts()
    assert sorted(names) == ["Carla Ortiz", "Dmitri Bauer", "Wen Li"]


def test_time_logged_with_the_timer_shows_on_the_panel(clinic, open_page):
    episodes = episodes_for(clinic)
    wen = episodes["BT-004"].patient
    page = open_page()
    login(page, "nina")
    page.goto(f"/admin/monitoring/patient/{wen.pk}/change/")

    page.get_by_role("button", name="Start timer").click()
    page.wait_for_load_state()
    page.locator("#timer-activity").select_option("phone_call")
    page.get_by_label("Interactive (a real-time call with the patient or caregiver)").check()
    page.get_by_role("button", name="Stop and log").click()
    page.wait_for_load_state()

    entry = TimeEntry.objects.get(patient=wen)
    assert (entry.user, entry.source, entry.minutes, entry.activity, entry.interactive) == (
        clinic.nurse,
        "timer",
        1,
        "phone_call",
        True,
    )
    page.goto("/admin/panel/")
    row = page.locator(f"#panel-patient-{wen.pk}")
    assert re.search(r"\b1 min", row.inner_text())
