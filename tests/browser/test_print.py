"""Printing (issue 14.8) in a real browser: the admin's print stylesheet leaves the sidebar,
header tools, forms, credentials and timer off paper, and the summary for the referring
physician prints on one A4 page. Print is Chromium's own: emulate_media("print") for what is
shown, page.pdf(format="A4") for the pages it makes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from monitoring.admin.patient_print import PRINT_ALERTS, PRINT_CONTACTS
from monitoring.enrolment import enrol_patient
from monitoring.models import AuditEvent, ProtocolCode
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing
from tests.factories import (
    AlertFactory,
    MedicationPlanFactory,
    MembershipFactory,
    ReadingFactory,
    UserFactory,
)

# What the print stylesheet takes off paper (admin/print_styles.html).
OFF_PAPER = ["#header", "#nav-sidebar", "#toggle-nav-sidebar", ".breadcrumbs"]


def pdf_pages(page) -> int:
    """The pages Chromium prints the page on, on A4."""
    document = page.pdf(format="A4", print_background=False)
    return len(re.findall(rb"/Type\s*/Page(?!s)", document))


@pytest.fixture
def harriet(clinic):
    """The heart-failure patient of the clinic, with two medication plans."""
    patient = next(a.patient for a in clinic.queue if a.patient.name == "Harriet Ford")
    MedicationPlanFactory(patient=patient, name="Warfarin 5 mg", days_of_week=[0, 3])
    MedicationPlanFactory(patient=patient, medication="furosemide-40", name="Furosemide 40 mg")
    return patient


@pytest.mark.parametrize("width", WIDTHS)
def test_the_summary_for_the_referring_physician_prints_on_one_a4_page(
    clinic, harriet, open_page, screenshot, width
):
    page = open_page(width=width, timezone_id="Europe/London")
    login(page, clinic.nurse.username)

    # when: the nurse follows the patient page's link
    page.goto(reverse("admin:monitoring_patient_change", args=[harriet.pk]))
    page.get_by_role("link", name="Printable summary for the referring physician").click()

    # then, on screen: the admin around the summary, a Print button, nothing to scroll sideways
    expect(page).to_have_url(re.compile(rf"/admin/monitoring/patient/{harriet.pk}/summary/print/$"))
    summary = page.locator(".print-summary")
    expect(summary.locator("h2.print-name")).to_have_text("Harriet Ford")
    expect(summary).to_contain_text("BT-001")
    expect(summary.locator("#print-medications")).to_contain_text("Warfarin 5 mg")
    expect(summary.locator('#print-figures tr[data-metric="blood_pressure"]')).to_contain_text(
        "192/118 mmHg"
    )
    expect(summary.locator("#print-alerts")).to_contain_text(
        "Systolic is above 180 mmHg or diastolic is above 120 mmHg"
    )
    expect(summary.locator("#print-team")).to_contain_text("Nina Nurse")
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    expect(page.locator("#nav-sidebar")).to_be_visible()
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"print-summary-{width}")

    # when: printed
    page.emulate_media(media="print")

    # then: the summary alone, black on white, on one A4 page
    for selector in [*OFF_PAPER, "#print-summary-button", "#user-tools"]:
        expect(page.locator(selector)).to_be_hidden()
    expect(summary.locator("h2.print-name")).to_be_visible()
    expect(summary.locator("#print-footer")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    assert page.evaluate("getComputedStyle(document.body).color") == "rgb(0, 0, 0)"
    screenshot(page, f"print-summary-paper-{width}")
    assert pdf_pages(page) == 1
    # every visit was a view of the patient, audited
    assert AuditEvent.objects.filter(
        patient=harriet, action="view", path__endswith="/summary/print/"
    ).exists()


@pytest.fixture
def busy_patient(clinic):
    """As much as the printed page holds: every protocol (every metric watched), a month of
    readings of each, six medication plans, more open alerts and team members than the page
    lists, every member with a phone and an email address."""
    now = timezone.now()
    patient = enrol_patient(
        external_id="BT-900",
        name="Bartholomew Featherstonehaugh-Montgomery",
        timezone="Europe/Berlin",
        care_team=clinic.team,
        protocols=[code for code, _ in ProtocolCode.choices],
    )
    for metric, fields in READING_OF.items():
        for day in range(1, 31, 3):
            ReadingFactory(
                patient=patient, metric=metric, measured_at=now - timedelta(days=day), **fields
            )
    for number in range(6):
        MedicationPlanFactory(
            patient=patient,
            medication=f"medication-{number}",
            name=f"Medication number {number} 100 mg",
            dose_times=["08:00", "14:00", "20:00"],
            days_of_week=[0, 2, 4],
        )
    rules = list(patient.rules.filter(active=True))
    for number in range(PRINT_ALERTS + 2):
        AlertFactory(
            patient=patient,
            rule=rules[number % len(rules)],
            dedupe_key=f"print-{number}",
            first_triggered_at=now - timedelta(hours=number + 1),
        )
    for number in range(PRINT_CONTACTS + 2):
        MembershipFactory(
            team=clinic.team,
            user=UserFactory(
                username=f"member{number}",
                first_name="Maximiliane",
                last_name=f"Oberhausen-Schwarz {number}",
                email=f"m.oberhausen{number}@cardiology.example.org",
            ),
            role="physician" if number % 2 else "nurse",
            phone=f"+49301234567{number}",
        )
    return patient


READING_OF = {
    "glucose": {"value": 142.0, "unit": "mg/dL"},
    "blood_pressure": {"value": None, "systolic": 151, "diastolic": 93, "unit": "mm[Hg]"},
    "weight": {"value": 101.3, "unit": "kg"},
    "inr": {"value": 2.6, "unit": "{INR}"},
    "heart_rate": {"value": 88.0, "unit": "/min"},
    "spo2": {"value": 93.0, "unit": "%"},
    "temperature": {"value": 37.4, "unit": "Cel"},
}


@pytest.mark.parametrize("width", WIDTHS)
def test_a_busy_patients_summary_still_prints_on_one_a4_page(
    clinic, busy_patient, open_page, screenshot, width
):
    page = open_page(width=width)
    login(page, clinic.nurse.username)

    page.goto(reverse("admin:monitoring_patient_print_summary", args=[busy_patient.pk]))

    figures = page.locator("#print-figures tbody tr")
    expect(figures).to_have_count(len(READING_OF))
    expect(page.locator("#print-alerts tbody tr")).to_have_count(PRINT_ALERTS)
    expect(page.locator("#print-alerts")).to_contain_text("And 2 more")
    expect(page.locator("#print-team li")).to_have_count(PRINT_CONTACTS)
    assert overflow_of(page) == 0, overflowing(page)
    page.emulate_media(media="print")
    screenshot(page, f"print-summary-busy-{width}")
    assert pdf_pages(page) == 1


@pytest.mark.parametrize("width", WIDTHS)
def test_the_patient_page_prints_without_sidebar_forms_credentials_or_timer(
    clinic, harriet, open_page, screenshot, width
):
    page = open_page(width=width)
    login(page, clinic.nurse.username)
    page.goto(reverse("admin:monitoring_patient_change", args=[harriet.pk]))
    # on screen, the nurse has them all
    expect(page.locator("#nav-sidebar")).to_be_visible()
    expect(page.locator("#notes form")).to_be_visible()
    screenshot(page, f"print-patient-screen-{width}")

    # when
    page.emulate_media(media="print")

    # then: what the page says, not how it is worked
    for selector in [*OFF_PAPER, "#credentials", "#reviews form", "#notes form", ".submit-row"]:
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator("#print-summary-link")).to_be_hidden()
    expect(page.locator("#summaries")).to_be_visible()
    expect(page.locator("#patient_form")).to_be_visible()
    for timer in page.locator(".care-time-timer").all():
        expect(timer).to_be_hidden()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    screenshot(page, f"print-patient-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_queue_prints_its_list_without_filters_or_actions(clinic, open_page, screenshot, width):
    page = open_page(width=width)
    login(page, clinic.nurse.username)
    page.goto("/admin/alerts/alert/")

    page.emulate_media(media="print")

    expect(page.locator("#result_list")).to_be_visible()
    for selector in [*OFF_PAPER, "#changelist-filter", ".actions", "#changelist-search"]:
        expect(page.locator(selector)).to_be_hidden()
    screenshot(page, f"print-queue-{width}")


def test_a_nurse_of_another_team_gets_404_for_the_printable_summary(clinic, harriet, open_page):
    page = open_page()
    login(page, clinic.other_nurse.username)

    response = page.goto(reverse("admin:monitoring_patient_print_summary", args=[harriet.pk]))

    assert response.status == 404
    expect(page.locator("body")).not_to_contain_text("Harriet Ford")
