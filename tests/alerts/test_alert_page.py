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
from datetime import timedelta

from django.urls import reverse

from alerts.models import (
    AlertStatus,
)
from monitoring.patient_rules import change_rule
from tests.alerts.triage_helpers import (  # noqa: F401
    NOW,
    _messages,
    alert_of,
    events_of,
    frozen,
    hypo,
    page_url,
    root,
)
from tests.factories import (
    ReadingFactory,
    RuleFactory,
)

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
        ("09 Mar 2026 10:00 EDT", "98 mg/dL", "98 mg/dL", "", False),
        ("05 Mar 2026 23:00 EST", "50 mg/dL", "2.8 mmol/L", "Fasting", True),
        ("17 Feb 2026 11:00 EST", "110 mg/dL", "6.1 mmol/L", "Fasting", False),
    ]
    assert "Triggered this alert" in response.content.decode()


def test_the_alert_page_timeline_merges_events_and_notifications_with_their_attempts(
    root, hypo, superuser
):
    # given: acknowledged later, with a note
    root.post(
        reverse("admin:alerts_alert_acknowledge", args=[hypo.pk]), {"note": "Calling her now."}
    )

    # when
    response = root.get(page_url(hypo))

    # then
    timeline = response.context["timeline"]
    assert [(e.label, e.at, e.actor, e.note, e.details) for e in timeline] == [
        ("Raised", "05 Mar 2026 23:01 EST", "Vigil", "", ["Critical", "rule version 1"]),
        ("Acknowledged", "09 Mar 2026 12:00 EDT", "root", "Calling her now.", []),
    ]
    (notification,) = timeline[0].notifications
    assert (notification.channel, notification.to, notification.status_label) == (
        "Email",
        "nurse (nurse@clinic.test)",
        "Sent",
    )
    assert [(a.number, a.at, a.outcome_label, a.detail) for a in notification.attempts] == [
        (1, "05 Mar 2026 23:01 EST", "Failed, will retry", "35 ms · 421 try again later"),
        (2, "05 Mar 2026 23:03 EST", "Sent", "41 ms"),
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
        ("09 Mar 2026 09:00 EDT", "warfarin-5mg skipped")
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
