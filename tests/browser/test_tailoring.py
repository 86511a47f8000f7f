"""A physician tailors a threshold in words in a real browser: the rule page fits the window,
the form asks in words and units, the preview says what the change would have done over the
last 30 days, the new version is saved and its history says so."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import Alert
from alerts.teams import NewMember, create_care_team
from monitoring.enrolment import enrol_patient
from tests.browser.conftest import WIDTHS, login, overflow_of, overflowing, post_readings
from tests.factories import UserFactory


@pytest.fixture
def tailoring_clinic(live_server, _broker_queues_purged):
    """A physician's diabetes patient whose glucose went below 54 mg/dL three times in the
    last 30 days, a normal reading after each (recorded in one upload: one alert)."""
    now = timezone.now()
    physician = UserFactory(username="petra", first_name="Petra", last_name="Physician")
    team = create_care_team(name="Diabetes clinic", members=[NewMember(physician, "physician")])
    patient = enrol_patient(
        external_id="BT-301",
        name="Dmitri Bauer",
        timezone="Europe/Berlin",
        care_team=team,
        protocols=["diabetes"],
    )
    post_readings(
        patient,
        now,
        [
            (timedelta(days=days), "glucose", {"value": value})
            for days, value in (
                (21, 110), (20, 48), (19, 120), (12, 52), (11, 115), (4, 45), (3, 118)
            )
        ],
    )  # fmt: skip
    rule = patient.rules.get(key="hypoglycemia_level_2")
    assert Alert.objects.filter(rule=rule).count() == 1
    return physician, patient, rule


@pytest.mark.parametrize("width", WIDTHS)
def test_a_physician_tailors_a_threshold_in_words_with_a_preview(
    tailoring_clinic, open_page, screenshot, width
):
    physician, patient, rule = tailoring_clinic
    page = open_page(width=width)
    login(page, physician.username)

    # when: she opens the rule from the patient's rules
    page.goto(f"/admin/monitoring/patient/{patient.pk}/change/")
    page.locator('tr[data-rule="hypoglycemia_level_2"] a', has_text="Tailor").click()

    # then: the rule as a sentence, the form in words and units, nothing wider than the window
    expect(page.locator("#rule-sentence")).to_have_text("Alert when glucose is below 54 mg/dL")
    assert page.get_by_label("When glucose is").input_value() == "lt"
    expect(page.get_by_label("When glucose is").locator("option:checked")).to_have_text("below")
    expect(page.get_by_label("Limit (mg/dL)")).to_have_value("54")
    expect(page.locator("#rule-json")).not_to_have_attribute("open", "")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"rule-form-{width}")

    # when: she lowers the limit to 50 mg/dL and previews
    page.get_by_label("Limit (mg/dL)").fill("50")
    page.get_by_role("button", name="Preview the last 30 days").click()

    # then: 48 and 45 would have fired, each its own episode; the rule fired once
    expect(page.locator("#rule-preview strong")).to_have_text(
        "Over the last 30 days this would have fired 2 times (it fired once)."
    )
    expect(page.get_by_label("Limit (mg/dL)")).to_have_value("50")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"rule-preview-{width}")
    rule.refresh_from_db()
    assert rule.version == 1

    # when: she gives the reason and saves
    page.get_by_label("Reason").fill("Tolerates lower values")
    page.get_by_role("button", name="Save a new version").click()

    # then: the new version, said in words, and its history
    expect(page.locator(".messagelist")).to_contain_text("Saved version 2")
    expect(page.locator("#rule-sentence")).to_have_text("Alert when glucose is below 50 mg/dL")
    latest = page.locator('#rule-history li[data-version="2"]')
    expect(latest).to_contain_text("Petra Physician")
    expect(latest).to_contain_text(
        "Changed from “Alert when glucose is below 54 mg/dL” to “Alert when glucose is below "
        "50 mg/dL”."
    )
    expect(latest).to_contain_text("Reason: Tolerates lower values")
    assert overflow_of(page) == 0, overflowing(page)
    screenshot(page, f"rule-saved-{width}")
    rule.refresh_from_db()
    assert (rule.version, rule.parameters["conditions"][0]["value"]) == (2, 50)

    # and the patient's rules list says it in words
    page.goto(f"/admin/monitoring/patient/{patient.pk}/change/")
    row = page.locator('tr[data-rule="hypoglycemia_level_2"]')
    expect(row).to_contain_text("Alert when glucose is below 50 mg/dL")
    expect(row).to_contain_text("Glucose is below 54 mg/dL")  # the protocol default
    assert not re.search(r"\b(lt|gt|le|ge)\b|conditions", row.inner_text())
