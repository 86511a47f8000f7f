"""The README's demo: seeded clinic, simulated apps, and a nurse with something to triage."""

import re
from io import StringIO

from django.core.management import call_command
from playwright.sync_api import expect

from monitoring.evaluation import evaluate_pending_readings
from monitoring.models import Patient
from tests.browser.conftest import login


def test_the_demo_nurse_finds_the_simulated_alerts_in_her_queue(
    live_server, open_page, settings, tmp_path, _broker_queues_purged
):
    # given: what scripts/run does, the worker's evaluation done in place
    settings.VAR_DIR = tmp_path
    seeded = StringIO()
    call_command("seed_demo", "--base-url", live_server.url, stdout=seeded)
    password = re.search(r"^\s+nurse\s+(\S+)$", seeded.getvalue(), re.MULTILINE)[1]
    call_command("simulate_readings", "--base-url", live_server.url, stdout=StringIO())
    for patient in Patient.objects.all():
        evaluate_pending_readings(patient_id=patient.pk)

    # when
    page = open_page()
    login(page, "nurse", password)
    page.goto("/admin/alerts/alert/")

    # then
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)
    assert rows.locator(".vigil-severity").all_inner_texts() == [
        "Critical", "Critical", "Critical", "Warning", "Warning"
    ]  # fmt: skip
    assert sorted(rows.locator(".field-summary").all_inner_texts()) == [
        "Glucose is below 54 mg/dL",
        "INR is at or above 5",
        "SpO2 is at or below 87 %",
        "Systolic is above 180 mmHg or diastolic is above 120 mmHg",
        "Weight rises by more than 0.9 kg in 1 day",
    ]
