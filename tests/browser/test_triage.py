"""A nurse triages in a real browser: the queue, the alert page with its chart, acknowledge;
and a nurse of another team cannot open the alert."""

import re

from playwright.sync_api import expect

from alerts.models import Alert, AlertEvent, AlertEventKind, AlertStatus
from tests.browser.conftest import login

QUEUE_URL = re.compile(r"/admin/alerts/alert/(\?.*)?$")


def test_a_nurse_lands_on_the_queue_when_she_logs_in(clinic, open_page):
    page = open_page()

    # when: she logs in where anyone starts, the admin's front door
    login(page, clinic.nurse.username)

    # then
    expect(page).to_have_url(QUEUE_URL)
    expect(page.locator("#result_list tbody tr")).to_have_count(len(clinic.queue))


def test_a_nurse_sees_the_queue_in_order_opens_the_top_alert_and_acknowledges_it(
    clinic, open_page, artifacts
):
    page = open_page()
    login(page, clinic.nurse.username)

    # when
    page.goto("/admin/alerts/alert/")

    # then: she lands on her teams' queue, critical first, then the oldest first
    expect(page).to_have_url(QUEUE_URL)
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(clinic.queue))
    assert rows.locator(".field-summary").all_inner_texts() == [a.title for a in clinic.queue]
    assert rows.locator(".vigil-severity").all_inner_texts() == [
        a.get_severity_display() for a in clinic.queue
    ]
    assert rows.locator("td.field-status_column").all_inner_texts() == ["Open"] * 5
    expect(page.locator("#result_list")).not_to_contain_text(clinic.other_team_alert.patient.name)
    page.screenshot(path=artifacts / "queue.png", full_page=True)

    # when: she opens the top alert
    top = clinic.queue[0]
    rows.first.locator(".field-summary a").click()

    # then: the alert page, with the glucose chart and the patient's thresholds as bands
    expect(page).to_have_url(re.compile(rf"/admin/alerts/alert/{top.pk}/change/$"))
    expect(page.locator(".vigil-summary .vigil-status")).to_have_text("Open")
    chart = page.locator("svg.vigil-chart").first
    expect(chart).to_be_visible()
    expect(chart.locator("title").first).to_have_text("Blood glucose, last 14 days")
    expect(chart.locator("rect.band-critical")).not_to_have_count(0)  # < 54 mg/dL
    expect(chart.locator("rect.band-warning")).not_to_have_count(0)  # 54–70 mg/dL
    expect(chart.locator("circle.point")).not_to_have_count(0)
    page.screenshot(path=artifacts / "alert.png", full_page=True)

    # when: she acknowledges it
    page.get_by_role("button", name="Acknowledge").click()

    # then: the page says so, and the database holds who and when
    expect(page.locator(".vigil-summary .vigil-status")).to_have_text("Acknowledged")
    expect(page.locator(".messagelist")).to_contain_text("Alert acknowledged.")
    top.refresh_from_db()
    assert (top.status, top.acknowledged_by, top.assignee) == (
        AlertStatus.ACKNOWLEDGED,
        clinic.nurse,
        clinic.nurse,
    )
    events = AlertEvent.objects.filter(alert=top).exclude(kind=AlertEventKind.RAISED)
    assert [(e.kind, e.actor) for e in events] == [(AlertEventKind.ACKNOWLEDGED, clinic.nurse)]
    others = Alert.objects.filter(pk__in=[a.pk for a in clinic.queue[1:]])
    assert set(others.values_list("status", flat=True)) == {AlertStatus.OPEN}


def test_a_nurse_of_another_team_gets_404_for_the_alert(clinic, open_page):
    # given
    page = open_page()
    login(page, clinic.other_nurse.username)
    alert = clinic.queue[0]

    # when: she guesses the alert's address
    response = page.goto(f"/admin/alerts/alert/{alert.pk}/change/")

    # then
    assert response.status == 404
    assert alert.patient.name not in page.content()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    assert not AlertEvent.objects.filter(alert=alert).exclude(kind=AlertEventKind.RAISED).exists()


def test_a_nurse_notes_the_alert_resolves_it_with_a_reason_and_marks_the_patient_reviewed(
    clinic, open_page, artifacts
):
    # given
    page = open_page()
    login(page, clinic.nurse.username)
    top = clinic.queue[0]
    page.goto(f"/admin/alerts/alert/{top.pk}/change/")

    # when: a note, which changes nothing else
    page.get_by_label("Note", exact=True).last.fill("Left a voicemail.")
    page.get_by_role("button", name="Add note").click()

    # then
    expect(page.locator(".messagelist")).to_contain_text("Note added.")
    expect(page.locator(".vigil-summary .vigil-status")).to_have_text("Open")
    expect(page.locator(".vigil-timeline")).to_contain_text("Left a voicemail.")

    # when: she resolves it without a reason, then with one
    page.get_by_label("Note (required)").fill("Reached her: cuff was loose.")
    page.get_by_role("button", name="Resolve").click()
    # The browser holds the form back: a reason is required.
    expect(page.locator(".vigil-summary .vigil-status")).to_have_text("Open")
    page.get_by_label("Contacted the patient").check()
    page.get_by_role("button", name="Resolve").click()

    # then
    expect(page.locator(".vigil-summary .vigil-status")).to_have_text("Resolved")
    expect(page.locator(".vigil-summary")).to_contain_text("Contacted the patient")
    page.screenshot(path=artifacts / "alert-resolved.png", full_page=True)
    top.refresh_from_db()
    assert (top.status, top.resolved_by, top.resolution_reason) == (
        AlertStatus.RESOLVED,
        clinic.nurse,
        "contacted_patient",
    )
    events = AlertEvent.objects.filter(alert=top).exclude(kind=AlertEventKind.RAISED)
    assert [(e.kind, e.note, e.data) for e in events] == [
        (AlertEventKind.NOTE, "Left a voicemail.", {}),
        (AlertEventKind.RESOLVED, "Reached her: cuff was loose.", {"reason": "contacted_patient"}),
    ]

    # when: on the patient's page she marks the patient reviewed and logs the call
    page.get_by_role("link", name=top.patient.name).click()
    page.get_by_role("button", name="Mark reviewed").click()
    expect(page.locator("#last-review")).to_contain_text(f"by {clinic.nurse.username}")
    page.locator("#note-kind").select_option("call")
    page.locator("#note-outcome").select_option("reached")
    page.locator("#note-text").fill("Cuff refitted over the phone.")
    page.get_by_role("button", name="Save", exact=True).click()

    # then
    expect(page.locator(".messagelist")).to_contain_text("Call logged.")
    expect(page.locator("#notes tbody tr").first).to_contain_text("Call: Reached the patient")
    page.screenshot(path=artifacts / "patient-reviewed.png", full_page=True)
