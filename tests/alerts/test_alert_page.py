"""The alert page (alerts/alert_page.py), through the admin's own URLs on real PostgreSQL:
its charts, rules and timeline, and acting on the alert from it.

Most tests log in as a superuser. The scoping and permission tests use the personas'
roles (tests/conftest.py; alerts.teams): a nurse may view and change (triage) her team's
alerts, a coordinator only view them.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.alert_page import readable
from alerts.lifecycle import acknowledge_alert, assign_alert, note_alert, resolve_alert
from alerts.models import (
    Alert,
    AlertStatus,
)
from monitoring.enrolment import enrol_patient
from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from monitoring.models import AuditEvent, Protocol
from monitoring.patient_rules import change_rule
from tests.alerts.triage_helpers import (  # noqa: F401
    NOW,
    QUEUE,
    _messages,
    alert_of,
    events_of,
    frozen,
    hypo,
    page_url,
    root,
)
from tests.factories import (
    MedicationPlanFactory,
    MembershipFactory,
    ReadingFactory,
    ReadingItemFactory,
    RuleFactory,
    UserFactory,
)
from tests.program.factories import EpisodeFactory

# --- The alert page ---------------------------------------------------------------------------


def _svgs(html: str) -> list[str]:
    return re.findall(r'<svg [^>]*class="vigil-chart".*?</svg>', html, flags=re.S)


def test_the_alert_page_charts_14_and_30_days_with_the_patients_bands_and_the_trigger_marked(
    root, hypo
):
    html = root.get(page_url(hypo)).content.decode()

    fourteen, thirty = _svgs(html)
    assert ">Blood glucose, last 14 days</title>" in fourteen
    assert ">Blood glucose, last 30 days</title>" in thirty
    for svg in (fourteen, thirty):
        # The patient's own thresholds, as bands coloured by severity…
        assert len(re.findall(r'<rect class="band band-critical"', svg)) == 1
        assert len(re.findall(r'<rect class="band band-warning"', svg)) == 1
        assert "Critical: Level 2 hypoglycaemia (&lt; 54 mg/dL)" in svg
        assert "Warning: Level 1 hypoglycaemia (≥ 54 mg/dL and &lt; 70 mg/dL)" in svg
        # …the unit and the patient's time zone…
        assert '<text class="unit"' in svg and ">mg/dL</text>" in svg
        assert "America/New_York (EST/EDT)" in svg
        assert "<script" not in svg
    # …and the triggering reading marked where it was measured: 3.5 days before the end
    # of a 14-day (648 units wide) and a 30-day axis that start at x=56.
    assert re.findall(r'<line class="mark" x1="([\d.]+)"', fourteen) == ["542.0"]
    assert re.findall(r'<line class="mark" x1="([\d.]+)"', thirty) == ["628.4"]
    # The 20-day-old reading is on the 30-day chart only.
    assert fourteen.count('<circle class="point"') == 2
    assert thirty.count('<circle class="point"') == 3


def test_the_alert_page_lists_the_rules_in_force_with_their_source(root, hypo):
    response = root.get(page_url(hypo))

    rows = response.context["rules"]
    assert [(r.rule.key, r.parameters, r.source, r.fired) for r in rows] == [
        (
            "hypoglycemia_level_2",
            "Glucose is below 54 mg/dL",
            "Added by a clinician · blood_glucose.thresholds.hypoglycemia_level_2 · "
            "verified: ada_soc_glycemic_targets, ihsg_2017",
            "Fired this alert at version 1",
        ),
        (
            "hypoglycemia_level_1",
            "Glucose is at or above 54 mg/dL and below 70 mg/dL",
            "Added by a clinician · blood_glucose.thresholds.hypoglycemia_level_1 · "
            "verified: ada_soc_glycemic_targets",
            "",
        ),
    ]
    html = response.content.decode()
    assert "hypoglycemia_level_2 · Threshold" in html
    assert "weight_gain" not in html  # another metric's rule


def test_the_alert_page_says_when_the_rule_changed_since_it_fired(root, hypo, physician):
    # given: a physician tailors the rule that fired
    change_rule(
        rule=hypo.rule,
        user=physician,
        parameters={"conditions": [{"component": "value", "op": "lt", "value": 50}]},
        note="Tolerates lower values.",
    )

    # when
    rows = root.get(page_url(hypo)).context["rules"]

    # then
    assert (rows[0].rule.key, rows[0].parameters, rows[0].rule.version, rows[0].fired) == (
        "hypoglycemia_level_2",
        "Glucose is below 50 mg/dL",
        2,
        "Fired this alert at version 1 (Glucose is below 54 mg/dL); now version 2",
    )


def test_the_alert_page_lists_recent_readings_in_local_time_with_unit_and_as_sent(root, hypo):
    response = root.get(page_url(hypo))

    rows = response.context["readings"]
    assert [(r.at, r.value, r.sent, r.context, r.triggering) for r in rows] == [
        ("9 Mar 2026, 10:00 EDT", "98 mg/dL", "98 mg/dL", "", False),
        ("5 Mar 2026, 23:00 EST", "50 mg/dL", "2.8 mmol/L", "Fasting", True),
        ("17 Feb 2026, 11:00 EST", "110 mg/dL", "6.1 mmol/L", "Fasting", False),
    ]
    assert "Triggered this alert" in response.content.decode()


def test_the_alert_page_timeline_merges_events_and_notifications_with_their_attempts(
    root, hypo, superuser
):
    # given: acknowledged later, with a note; the viewer in the patient's zone (one clock)
    root.cookies["vigil_tz"] = "America/New_York"
    root.post(
        reverse("admin:alerts_alert_acknowledge", args=[hypo.pk]), {"note": "Calling her now."}
    )

    # when
    response = root.get(page_url(hypo))

    # then
    timeline = response.context["timeline"]
    assert [(e.label, e.at, e.actor, e.note, e.details) for e in timeline] == [
        ("Raised", "5 Mar 2026, 23:01 EST", "Vigil", "", ["Critical", "rule version 1"]),
        ("Acknowledged", "9 Mar 2026, 12:00 EDT", "root", "Calling her now.", []),
    ]
    (notification,) = timeline[0].notifications
    assert (notification.channel, notification.to, notification.status_label) == (
        "Email",
        "nurse (nurse@clinic.test)",
        "Sent",
    )
    assert [(a.number, a.at, a.outcome_label, a.detail) for a in notification.attempts] == [
        (1, "5 Mar 2026, 23:01 EST", "Failed, will retry", "35 ms · 421 try again later"),
        (2, "5 Mar 2026, 23:03 EST", "Sent", "41 ms"),
    ]
    html = response.content.decode()
    assert '<span class="vigil-outcome-transient_failure">Failed, will retry</span>' in html
    assert '<div class="vigil-note">Calling her now.</div>' in html


def test_a_dose_alert_page_lists_the_doses_instead_of_a_chart(root, patient):
    # given: an adherence alert and the doses behind it
    parameters = {"mode": "consecutive_missed", "count": 2, "medications": []}
    rule = RuleFactory(
        patient=patient,
        kind="adherence",
        metric="dose",
        title="Missed doses",
        parameters=parameters,
    )
    alert = alert_of(patient, rule=rule, values={"medication": "warfarin-5mg", "missed": 2})
    ReadingFactory(patient=patient, metric="dose", value=None, unit="", medication="warfarin-5mg",
                   dose_status="skipped", measured_at=NOW - timedelta(hours=3))  # fmt: skip

    # when
    response = root.get(page_url(alert))

    # then
    assert response.status_code == 200
    assert response.context["charts"] == []
    assert _svgs(response.content.decode()) == []
    assert [(r.at, r.value) for r in response.context["readings"]] == [
        ("9 Mar 2026, 09:00 EDT", "warfarin-5mg skipped")
    ]
    assert response.context["values"] == [("medication", "warfarin-5mg"), ("missed", 2)]


def test_the_alert_page_is_read_only(root, hypo):
    # when: a POST to the change form itself
    response = root.post(page_url(hypo), {"title": "renamed", "status": "resolved"})

    # then
    assert response.status_code == 403
    hypo.refresh_from_db()
    assert (hypo.title, hypo.status) == ("Level 2 hypoglycaemia", AlertStatus.OPEN)


def test_the_acknowledge_button_acknowledges_with_the_note(root, hypo, superuser):
    response = root.post(
        reverse("admin:alerts_alert_acknowledge", args=[hypo.pk]), {"note": "On it."}
    )

    assert response.status_code == 302
    assert response.url == page_url(hypo)
    hypo.refresh_from_db()
    assert (hypo.status, hypo.acknowledged_by, hypo.assignee) == (
        AlertStatus.ACKNOWLEDGED,
        superuser,
        superuser,
    )
    assert events_of(hypo)[1:] == [("acknowledged", "root", "On it.")]
    assert _messages(root, response) == ["Alert acknowledged."]


def test_the_resolve_button_needs_a_note(root, hypo):
    # when
    response = root.post(
        reverse("admin:alerts_alert_resolve", args=[hypo.pk]),
        {"note": "", "reason": "contacted_patient"},
    )

    # then
    assert response.status_code == 302
    hypo.refresh_from_db()
    assert (hypo.status, events_of(hypo)[1:]) == (AlertStatus.OPEN, [])
    assert _messages(root, response) == ["Write a note to resolve the alert."]


def test_the_resolve_button_resolves_with_the_note(root, hypo, superuser):
    response = root.post(
        reverse("admin:alerts_alert_resolve", args=[hypo.pk]),
        {"note": "Treated with juice.", "reason": "contacted_patient"},
    )

    hypo.refresh_from_db()
    assert (hypo.status, hypo.resolved_by, hypo.resolved_at, hypo.resolution_reason) == (
        AlertStatus.RESOLVED,
        superuser,
        NOW,
        "contacted_patient",
    )
    assert events_of(hypo)[1:] == [("resolved", "root", "Treated with juice.")]
    assert _messages(root, response) == ["Alert resolved."]
    # A resolved alert's page offers no buttons.
    assert 'value="Resolve"' not in root.get(page_url(hypo)).content.decode()


def test_the_buttons_answer_only_post(root, hypo):
    response = root.get(reverse("admin:alerts_alert_resolve", args=[hypo.pk]))

    assert response.status_code == 405
    hypo.refresh_from_db()
    assert hypo.status == AlertStatus.OPEN


# --- Issue 14: the clinical header, titles, times, History ------------------------------------


def _between(html: str, start: str, end: str) -> str:
    at = html.index(start)
    return html[at : html.index(end, at)]


def _the_patient_in_full(patient, nurse):
    """The hypo patient with what the header shows: born 20 Jun 1958, a phone, German, two
    protocols, a running RPM episode's codes, a medication plan; the nurse's name."""
    patient.name = "Dmitri Bauer"
    patient.external_id = "MRN-4711"
    patient.date_of_birth = date(1958, 6, 20)
    patient.phone = "+1 (212) 555-0142"
    patient.language = "de"
    patient.save()
    patient.protocols.set(Protocol.objects.filter(code__in=["diabetes", "hypertension"]))
    MedicationPlanFactory(patient=patient, medication="insulin", name="Insulin glargine 20 U",
                          dose_times=["21:00"])  # fmt: skip
    nurse.first_name, nurse.last_name = "Nina", "Nurse"
    nurse.save()
    EpisodeFactory(patient=patient, conditions=["E11.9", "I10"], billing_practitioner=nurse)


def test_the_alert_page_opens_with_the_patients_clinical_header(root, hypo, patient, nurse):
    # given
    _the_patient_in_full(patient, nurse)
    assign_alert(alert=hypo, user=nurse, assignee=nurse)

    # when
    html = root.get(page_url(hypo)).content.decode()

    # then: who, how old, which record, the language, a number to tap
    header = _between(html, '<section class="clinical-header"', "</section>")
    patient_url = reverse("admin:monitoring_patient_change", args=[patient.pk])
    assert f'<h2><a href="{patient_url}">Dmitri Bauer</a></h2>' in header
    assert '67 years <span class="quiet">(born 20 Jun 1958)</span>' in header
    assert '<span class="clinical-header-mrn">MRN MRN-4711</span>' in header
    assert '<span class="clinical-header-language">Speaks German</span>' in header
    assert (
        '<a class="clinical-header-phone" href="tel:+12125550142">Call +1 (212) 555-0142</a>'
        in header
    )
    assert "Their time now: 12:00 EDT" in header
    # …what they are monitored for, what they take, who looks after them, who has the alert
    assert (
        '<dd class="clinical-header-conditions">Diabetes, Hypertension · ICD-10-CM E11.9, I10</dd>'
        in header
    )
    assert (
        '<dd class="clinical-header-medications"><ul><li>Insulin glargine 20 U · 21:00 daily '
        '<span class="quiet">(missed doses escalate)</span></li></ul></dd>'
    ) in header
    assert (
        '<dd class="clinical-header-team">Heart failure clinic: Nina Nurse '
        '<span class="quiet">(Nurse)</span></dd>'
    ) in header
    assert '<dd class="clinical-header-assignee">Nina Nurse</dd>' in header


def test_an_unassigned_alert_without_a_phone_or_birth_date_says_so(root, hypo):
    html = root.get(page_url(hypo)).content.decode()

    assert '<span class="clinical-header-age">age unknown</span>' in html
    assert "No phone number on file" in html
    assert "tel:" not in html
    assert '<dd class="clinical-header-assignee">Nobody</dd>' in html
    assert '<dd class="clinical-header-medications">No medication plan</dd>' in html


def test_the_title_and_breadcrumbs_name_the_patient_not_the_alert_id(root, hypo, patient):
    patient.name = "Dmitri Bauer"
    patient.save()

    html = root.get(page_url(hypo)).content.decode()

    assert "<title>Dmitri Bauer: Level 2 hypoglycaemia | Vigil</title>" in html
    assert "<h1>Dmitri Bauer: Level 2 hypoglycaemia</h1>" in html
    crumbs = _between(html, '<div class="breadcrumbs">', "</div>")
    assert f'&rsaquo; <a href="{QUEUE}">Triage queue</a>' in crumbs
    assert "&rsaquo; Dmitri Bauer: Level 2 hypoglycaemia" in crumbs
    assert f"alert {hypo.pk}" not in html


def test_the_alert_page_gives_times_on_the_patients_clock_and_the_viewers(root, hypo):
    # given: the nurse's browser is in Berlin, the patient in New York
    root.cookies["vigil_tz"] = "Europe/Berlin"

    # when
    response = root.get(page_url(hypo))

    # then
    html = response.content.decode()
    assert (
        "<dt>Since</dt><dd>5 Mar 2026, 23:00 EST · 6 Mar 2026, 05:00 CET your time (3\xa0days, "
        "12\xa0hours ago)</dd>"
    ) in html
    assert [e.at for e in response.context["timeline"]] == [
        "5 Mar 2026, 23:01 EST · 6 Mar 2026, 05:01 CET your time"
    ]
    # The finding's own text in the same words: one date format.
    assert (
        '<p class="vigil-detail">50 mg/dL at 5 Mar 2026, 23:00 EST; rule: &lt; 54 mg/dL</p>' in html
    )
    assert "2026-03-05" not in html


def test_the_viewer_in_the_patients_zone_reads_one_clock(root, hypo):
    root.cookies["vigil_tz"] = "America/New_York"

    html = root.get(page_url(hypo)).content.decode()

    assert "<dt>Last triggered</dt><dd>5 Mar 2026, 23:00 EST</dd>" in html
    assert "your time" not in html


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("192/118 mm[Hg] at 2026-03-09 07:00 EDT; rule: ≥ 180 mm[Hg]",
         "192/118 mmHg at 9 Mar 2026, 07:00 EDT; rule: ≥ 180 mmHg"),
        ("38.9 Cel", "38.9 °C"),
        ("131 /min at 2026-12-06 05:00 CET", "131 bpm at 6 Dec 2026, 05:00 CET"),
        ("3.6 {INR}; rule: > 3 {INR}", "3.6; rule: > 3"),
        ("2.1 mg/dL/min", "2.1 mg/dL/min"),
    ],
)  # fmt: skip
def test_a_findings_stored_text_is_shown_in_display_units_and_the_one_date_format(stored, shown):
    assert readable(stored) == shown


def test_the_history_button_shows_the_alerts_own_events(root, hypo, superuser, nurse):
    # given: acknowledged, assigned, noted and resolved with a reason
    root.cookies["vigil_tz"] = "America/New_York"
    acknowledge_alert(alert=hypo, user=superuser, note="Calling her now.")
    assign_alert(alert=hypo, user=superuser, assignee=nurse)
    note_alert(alert=hypo, user=nurse, note="Left a voicemail.")
    resolve_alert(alert=hypo, user=nurse, note="Ate, now 98.", reason="contacted_patient")
    history = reverse("admin:alerts_alert_history", args=[hypo.pk])

    # when
    page = root.get(page_url(hypo)).content.decode()
    response = root.get(history)

    # then: the page's History button leads to the events, not to an empty change log
    assert f'href="{history}"' in page
    assert response.status_code == 200
    assert [(e.label, e.actor, e.note, e.details) for e in response.context["timeline"]] == [
        ("Raised", "Vigil", "", ["Critical", "rule version 1"]),
        ("Acknowledged", "root", "Calling her now.", []),
        ("Assigned", "root", "", ["to nurse", "from root"]),
        ("Note", "nurse", "Left a voicemail.", []),
        ("Resolved", "nurse", "Ate, now 98.", ["Contacted the patient"]),
    ]
    html = response.content.decode()
    assert "<strong>Resolved</strong> · 9 Mar 2026, 12:00 EDT · nurse" in html
    assert "(Contacted the patient)" in html
    assert "doesn’t have a change history" not in html
    assert "<title>History: " in html
    assert f'<a href="{page_url(hypo)}">' in html  # the breadcrumbs lead back to the alert
    assert (
        AuditEvent.objects.filter(
            action="view", model="alerts.alert", object_id=str(hypo.pk), fields=["history"]
        ).count()
        == 1
    )


def test_another_teams_user_gets_404_for_the_alerts_history(hypo, outsider):
    client = Client()
    client.force_login(outsider)

    response = client.get(reverse("admin:alerts_alert_history", args=[hypo.pk]))

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(object_id=str(hypo.pk), fields=["history"]).exists()


def test_the_admin_has_no_view_site_link_and_keeps_its_navigation_sidebar(root, hypo):
    html = root.get(page_url(hypo)).content.decode()

    assert "View site" not in html
    assert 'id="nav-sidebar"' in html
    assert 'id="toggle-nav-sidebar"' in html


def test_the_alert_page_takes_the_same_queries_however_much_there_is(
    root, hypo, patient, nurse, physician
):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert root.get(page_url(hypo)).status_code == 200
        return len(queries)

    # given: the page once with little (an assignee: a user more to read, once)
    assign_alert(alert=hypo, user=nurse, assignee=nurse)
    root.get(page_url(hypo))  # warm: sessions, content types
    before = count()

    # when: the patient holds more of everything the header and the timeline show
    _the_patient_in_full(patient, nurse)
    for n in range(3):
        MedicationPlanFactory(patient=patient, medication=f"drug-{n}", name=f"Drug {n} 1 mg")
        MembershipFactory(team=patient.care_team, user=UserFactory(username=f"member{n}"))
    assign_alert(alert=hypo, user=nurse, assignee=physician)
    note_alert(alert=hypo, user=nurse, note="One.")
    note_alert(alert=hypo, user=nurse, note="Two.")

    # then
    assert count() == before


def test_a_blood_pressure_alert_page_writes_mmhg_never_the_ucum_code(root, team):
    # given: a hypertension patient whose reading crossed the crisis threshold, recorded and
    # evaluated as the app and the worker do
    patient = enrol_patient(external_id="BP-1", name="Harriet Ford", timezone="America/New_York",
                            care_team=team, protocols=["hypertension"])  # fmt: skip
    item = ReadingItemFactory(type="blood_pressure", systolic=192, diastolic=118,
                              measured_at=(NOW - timedelta(hours=1)).isoformat())  # fmt: skip
    record_readings(patient=patient, items=[item], received_at=NOW)
    evaluate_pending_readings(patient_id=patient.pk, now=NOW)
    alert = Alert.objects.get(patient=patient, severity="critical")

    # when
    html = root.get(page_url(alert)).content.decode()

    # then
    assert (
        "<title>Harriet Ford: Systolic is above 180 mmHg or diastolic is above 120 mmHg | Vigil"
        "</title>" in html
    )
    assert "192/118 mmHg at 9 Mar 2026, 11:00 EDT" in html
    assert "mm[Hg]" not in html
