"""The triage queue (the Alert changelist) and the alert page, through the admin's own URLs
on real PostgreSQL: order, colour and word, filters, search, bulk actions through
alerts.lifecycle, the page's charts, rules and timeline, team scoping, and query counts.

Most tests log in as a superuser. The scoping and permission tests use the personas'
roles (tests/conftest.py; alerts.teams): a nurse may view and change (triage) her team's
alerts, a coordinator only view them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from alerts.lifecycle import Trigger, raise_alert
from alerts.models import (
    Alert,
    AlertEvent,
    AlertStatus,
    Notification,
    NotificationAttempt,
)
from monitoring.patient_rules import change_rule
from tests.factories import (
    AlertFactory,
    MembershipFactory,
    PatientFactory,
    ReadingFactory,
    RuleFactory,
)

# Monday 9 March 2026, 12:00 in New York (EDT since Sunday), where `patient` lives.
NOW = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
QUEUE = "/admin/alerts/alert/"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def root(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def page_url(alert: Alert) -> str:
    return reverse("admin:alerts_alert_change", args=[alert.pk])


def alert_of(patient, *, severity="warning", status=AlertStatus.OPEN, age=timedelta(hours=1), **kw):
    """An alert raised `age` before NOW, with its own rule of `severity`."""
    first = NOW - age
    if "rule" not in kw:
        kw["rule"] = RuleFactory(patient=patient, severity=severity)
    return AlertFactory(
        patient=patient,
        status=status,
        first_triggered_at=first,
        last_triggered_at=kw.pop("last_triggered_at", first),
        **kw,
    )


def shown(response) -> list[int]:
    """The alert ids of the queue page, in the order shown."""
    return [alert.pk for alert in response.context["cl"].result_list]


def select(client: Client, action: str, alerts, url: str = QUEUE, **extra):
    return client.post(url, {"action": action, "_selected_action": [a.pk for a in alerts], **extra})


def events_of(alert: Alert) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert=alert)
        .order_by("id")
        .values_list("kind", "actor__username", "note")
    )


# --- Order ----------------------------------------------------------------------------------


def test_the_queue_shows_unresolved_alerts_open_then_acknowledged_critical_first_then_oldest(
    root, patient
):
    # given
    old_warning = alert_of(patient, severity="warning", age=timedelta(days=2))
    new_critical = alert_of(patient, severity="critical", age=timedelta(minutes=5))
    old_critical = alert_of(patient, severity="critical", age=timedelta(hours=6))
    info = alert_of(patient, severity="info", age=timedelta(days=3))
    acknowledged_critical = alert_of(
        patient, severity="critical", status=AlertStatus.ACKNOWLEDGED, age=timedelta(days=1)
    )
    acknowledged_info = alert_of(
        patient, severity="info", status=AlertStatus.ACKNOWLEDGED, age=timedelta(days=5)
    )
    alert_of(patient, severity="critical", status=AlertStatus.RESOLVED, age=timedelta(days=9))

    # when
    response = root.get(QUEUE)

    # then
    assert response.status_code == 200
    assert shown(response) == [
        old_critical.pk,
        new_critical.pk,
        old_warning.pk,
        info.pk,
        acknowledged_critical.pk,
        acknowledged_info.pk,
    ]
    assert response.context["title"] == "Triage queue"


def test_the_queue_shows_severity_by_colour_and_word(root, patient):
    alert_of(patient, severity="critical")
    alert_of(patient, severity="warning")
    alert_of(patient, severity="info")

    html = root.get(QUEUE).content.decode()

    for severity, word in [("critical", "Critical"), ("warning", "Warning"), ("info", "Info")]:
        assert f'<span class="vigil-severity vigil-severity-{severity}">{word}</span>' in html
    assert ".vigil-severity-critical { background: #c62828; color: #fff; }" in html
    assert ".vigil-severity-warning { background: #f0b429; color: #1f1f1f; }" in html
    assert ".vigil-severity-info { background: #1565c0; color: #fff; }" in html


def test_each_row_shows_patient_metric_latest_value_since_occurrences_cleared_assignee_level(
    root, patient, nurse
):
    # given: a glucose alert raised at 07:30 New York time, two readings since
    alert = alert_of(
        patient,
        severity="critical",
        age=timedelta(hours=4, minutes=30),
        occurrences=3,
        condition_cleared_at=NOW - timedelta(minutes=20),
        assignee=nurse,
        escalation_level=2,
    )
    ReadingFactory(patient=patient, metric="glucose", value=52, unit="mg/dL",
                   measured_at=NOW - timedelta(hours=4, minutes=30))  # fmt: skip
    ReadingFactory(patient=patient, metric="glucose", value=96, unit="mg/dL",
                   measured_at=NOW - timedelta(minutes=20))  # fmt: skip
    ReadingFactory(patient=patient, metric="weight", value=81.4, measured_at=NOW)

    # when
    html = root.get(QUEUE).content.decode()

    # then
    patient_url = reverse("admin:monitoring_patient_change", args=[patient.pk])
    cells = {
        "summary": f'<a href="{page_url(alert)}">Low glucose</a>',
        "patient_column": (
            f'<a href="{patient_url}">{escape(patient.name)}</a><br>'
            f'<span class="vigil-quiet">{patient.external_id}</span>'
        ),
        "metric_column": "Blood glucose",
        "latest_value": '96 mg/dL<br><span class="vigil-quiet">09 Mar 11:40 EDT</span>',
        "since": (
            '<time datetime="2026-03-09T11:30:00+00:00">4\xa0hours ago</time><br>'
            '<span class="vigil-quiet">09 Mar 07:30 EDT</span>'
        ),
        "occurrences": "3",
        "status_column": "Open",
        "assignee_column": "nurse",
        "escalation_level": "2",
    }
    for column, content in cells.items():
        assert re.search(
            rf'<t[dh] class="field-{column}"[^>]*>{re.escape(content)}</t[dh]>', html
        ), column
    assert re.search(r'<td class="field-condition_cleared"><img src="[^"]*icon-yes\.svg"', html)


def test_the_latest_value_is_the_metrics_latest_reading_with_its_unit_else_what_the_rule_saw(
    root, patient
):
    # given
    bp_rule = RuleFactory(patient=patient, metric="blood_pressure", severity="critical")
    bp = alert_of(patient, rule=bp_rule)
    ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                   systolic=186, diastolic=118, measured_at=NOW - timedelta(hours=2))  # fmt: skip
    ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                   systolic=131, diastolic=84, measured_at=NOW - timedelta(days=2))  # fmt: skip
    no_reading = alert_of(patient, values={"observed": "48 mg/dL"})

    # when
    response = root.get(QUEUE)

    # then
    html = response.content.decode()
    assert '<td class="field-latest_value">186/118 mmHg<br>' in html
    assert '<td class="field-latest_value">48 mg/dL</td>' in html
    rows = {alert.pk: alert.latest_reading for alert in response.context["cl"].result_list}
    assert rows[no_reading.pk] is None
    assert (rows[bp.pk]["systolic"], rows[bp.pk]["diastolic"]) == (186, 118)


# --- Filters and search ---------------------------------------------------------------------


@pytest.fixture
def mixed(patient, other_patient, nurse, superuser):
    """One alert of each kind the filters tell apart, by name."""
    bp_rule = RuleFactory(patient=patient, metric="blood_pressure", severity="critical")
    return {
        "critical_bp": alert_of(patient, rule=bp_rule),
        "warning_mine": alert_of(patient, assignee=superuser),
        "info_cleared": alert_of(patient, severity="info", condition_cleared_at=NOW),
        "acknowledged": alert_of(
            patient, status=AlertStatus.ACKNOWLEDGED, assignee=nurse, acknowledged_by=nurse
        ),
        "resolved": alert_of(patient, status=AlertStatus.RESOLVED),
        "other_team": alert_of(other_patient, severity="critical"),
    }


FILTERS = [
    ("", ["critical_bp", "other_team", "warning_mine", "info_cleared", "acknowledged"]),
    ("status=open", ["critical_bp", "other_team", "warning_mine", "info_cleared"]),
    ("status=acknowledged", ["acknowledged"]),
    ("status=resolved", ["resolved"]),
    ("severity=critical", ["critical_bp", "other_team"]),
    ("severity=info", ["info_cleared"]),
    ("metric=blood_pressure", ["critical_bp"]),
    ("assigned=me", ["warning_mine"]),
    ("assigned=nobody", ["critical_bp", "other_team", "info_cleared"]),
    ("cleared=yes", ["info_cleared"]),
    ("cleared=no", ["critical_bp", "other_team", "warning_mine", "acknowledged"]),
    ("status=all&severity=warning", ["warning_mine", "acknowledged", "resolved"]),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_the_queue_filters(root, mixed, query, expected):
    response = root.get(f"{QUEUE}?{query}")

    assert response.status_code == 200
    assert {mixed[name].pk for name in expected} == set(shown(response))
    assert len(shown(response)) == len(expected)


def test_the_team_filter_offers_my_teams_and_each_team(root, mixed, team, other_team, superuser):
    # given: the superuser works in the other team only
    MembershipFactory(team=other_team, user=superuser)

    # when
    mine = root.get(f"{QUEUE}?team=mine")
    one = root.get(f"{QUEUE}?team={team.pk}")

    # then
    assert shown(mine) == [mixed["other_team"].pk]
    assert set(shown(one)) == {
        mixed[name].pk for name in ["critical_bp", "warning_mine", "info_cleared", "acknowledged"]
    }
    titles = [choice["display"] for choice in _filter_choices(one, "care team")]
    assert titles == ["All", "My teams", other_team.name, team.name]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("%C2%B2", id="superscript-two"),
        pytest.param("%D9%A3", id="arabic-indic-three"),
        pytest.param("1x", id="not-a-number"),
    ],
)
def test_a_team_value_that_is_no_team_id_filters_nothing_and_is_no_error(root, mixed, value):
    # "²".isdigit() is True and int("²") raises: the queue answered 500.
    response = root.get(f"{QUEUE}?team={value}")

    assert response.status_code == 200
    assert set(shown(response)) == set(shown(root.get(QUEUE)))


def test_a_team_id_past_the_largest_id_shows_no_alert_and_is_no_error(root, mixed):
    response = root.get(f"{QUEUE}?team=99999999999999999999999")

    assert response.status_code == 200
    assert shown(response) == []


def _filter_choices(response, title):
    spec = next(s for s in response.context["cl"].filter_specs if s.title == title)
    return list(spec.choices(response.context["cl"]))


def test_the_status_filter_shows_unresolved_selected_by_default(root, mixed):
    response = root.get(QUEUE)

    choices = _filter_choices(response, "status")
    assert [(c["display"], c["selected"]) for c in choices] == [
        ("Unresolved", True),
        ("Open", False),
        ("Acknowledged", False),
        ("Resolved", False),
        ("All", False),
    ]


def test_search_finds_alerts_by_mrn_and_by_patient_name(root, team):
    # given
    ada = PatientFactory(care_team=team, name="Ada Lovelace", external_id="MRN-700123")
    bob = PatientFactory(care_team=team, name="Bob Marley", external_id="MRN-455001")
    ada_alert = alert_of(ada)
    bob_alert = alert_of(bob)

    # then
    assert shown(root.get(f"{QUEUE}?q=MRN-700123")) == [ada_alert.pk]
    assert shown(root.get(f"{QUEUE}?q=700123")) == [ada_alert.pk]
    assert shown(root.get(f"{QUEUE}?q=marley")) == [bob_alert.pk]
    assert shown(root.get(f"{QUEUE}?q=nobody-here")) == []


# --- Bulk actions -----------------------------------------------------------------------------


def test_bulk_acknowledge_acknowledges_the_open_alerts_through_the_lifecycle(
    root, patient, superuser, nurse
):
    # given
    first, second = alert_of(patient), alert_of(patient, severity="critical")
    already = alert_of(
        patient, status=AlertStatus.ACKNOWLEDGED, acknowledged_by=nurse, assignee=nurse
    )
    untouched = alert_of(patient)

    # when
    response = select(root, "acknowledge", [first, second, already])

    # then
    assert response.status_code == 302
    for alert in (first, second):
        alert.refresh_from_db()
        assert (alert.status, alert.acknowledged_by, alert.acknowledged_at, alert.assignee) == (
            AlertStatus.ACKNOWLEDGED,
            superuser,
            NOW,
            superuser,
        )
        assert alert.next_escalation_at is None
        assert events_of(alert) == [("acknowledged", "root", "")]
    already.refresh_from_db()
    assert (already.acknowledged_by, already.assignee, events_of(already)) == (nurse, nurse, [])
    untouched.refresh_from_db()
    assert (untouched.status, events_of(untouched)) == (AlertStatus.OPEN, [])
    assert _messages(root, response) == [
        "Acknowledged: 2 alerts.",
        f"Left alone 1 alert (not open): {already.pk}.",
    ]


def _messages(client, response) -> list[str]:
    return [str(m) for m in client.get(response.url).context["messages"]]


def test_bulk_assign_to_me_assigns_through_the_lifecycle(root, patient, superuser, nurse):
    # given
    open_alert = alert_of(patient)
    nurses = alert_of(patient, status=AlertStatus.ACKNOWLEDGED, assignee=nurse)
    resolved = alert_of(patient, status=AlertStatus.RESOLVED)

    # when
    response = select(
        root, "assign_to_me", [open_alert, nurses, resolved], url=f"{QUEUE}?status=all"
    )

    # then
    for alert in (open_alert, nurses):
        alert.refresh_from_db()
        assert alert.assignee == superuser
        assert events_of(alert) == [("assigned", "root", "")]
        assert AlertEvent.objects.get(alert=alert).data == {"assignee": superuser.pk}
    resolved.refresh_from_db()
    assert (resolved.assignee, events_of(resolved)) == (None, [])
    assert _messages(root, response) == [
        "Assigned to you: 2 alerts.",
        f"Left alone 1 alert (resolved): {resolved.pk}.",
    ]


def test_resolve_with_a_note_asks_for_the_note_first_and_changes_nothing_until_then(root, patient):
    # given
    first, second = alert_of(patient), alert_of(patient, severity="critical")

    # when: the action is chosen in the queue
    response = select(root, "resolve_with_note", [first, second])

    # then: the intermediate page lists the two alerts, in the queue's order, and asks
    # for the note
    assert response.status_code == 200
    assert response.templates[0].name == "admin/alerts/alert/resolve_with_note.html"
    assert [a.pk for a in response.context["alerts"]] == [second.pk, first.pk]
    html = response.content.decode()
    assert '<input type="hidden" name="action" value="resolve_with_note">' in html
    assert f'<input type="hidden" name="_selected_action" value="{first.pk}">' in html
    assert '<textarea name="note"' in html
    for alert in (first, second):
        alert.refresh_from_db()
        assert (alert.status, events_of(alert)) == (AlertStatus.OPEN, [])


def test_resolve_with_a_note_resolves_each_alert_with_the_note_and_its_author(
    root, patient, superuser
):
    # given
    first, second = alert_of(patient), alert_of(patient, severity="critical")
    note = "Called the patient: meter error, repeat reading 112 mg/dL."

    # when: the intermediate page is submitted
    response = select(root, "resolve_with_note", [first, second], apply="yes", note=note)

    # then
    assert response.status_code == 302
    for alert in (first, second):
        alert.refresh_from_db()
        assert (alert.status, alert.resolved_by, alert.resolved_at) == (
            AlertStatus.RESOLVED,
            superuser,
            NOW,
        )
        assert events_of(alert) == [("resolved", "root", note)]
    assert _messages(root, response) == ["Resolved: 2 alerts."]


def test_resolve_with_an_empty_note_resolves_nothing(root, patient):
    # given
    alert = alert_of(patient)

    # when
    response = select(root, "resolve_with_note", [alert], apply="yes", note="   ")

    # then: the page again, with the reason
    assert response.status_code == 200
    assert "Write a note to resolve the alert." in response.content.decode()
    alert.refresh_from_db()
    assert (alert.status, events_of(alert)) == (AlertStatus.OPEN, [])


# --- Scoping and permissions ----------------------------------------------------------------


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_team_nurse_sees_only_her_teams_alerts(nurse, patient, other_patient):
    # given
    mine = alert_of(patient)
    theirs = alert_of(other_patient, severity="critical")
    client = logged_in(nurse)

    # when
    response = client.get(QUEUE)

    # then
    assert shown(response) == [mine.pk]
    assert other_patient.name not in response.content.decode()
    assert client.get(page_url(theirs)).status_code == 404
    assert client.get(page_url(mine)).status_code == 200


def test_a_nurse_cannot_act_on_another_teams_alert(nurse, patient, other_patient):
    # given
    theirs = alert_of(other_patient)
    client = logged_in(nurse)

    # when: a guessed URL, and the bulk action with a forged selection
    guessed = client.post(
        reverse("admin:alerts_alert_resolve", args=[theirs.pk]), {"note": "closing it"}
    )
    select(client, "acknowledge", [theirs])

    # then
    assert guessed.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.status, events_of(theirs)) == (AlertStatus.OPEN, [])


def test_a_nurse_who_coordinates_another_team_triages_only_where_she_is_a_nurse(
    nurse, patient, other_team, other_patient
):
    # given: her role in the other team views alerts and does not triage them
    MembershipFactory(team=other_team, user=nurse, role="coordinator")
    mine, theirs = alert_of(patient), alert_of(other_patient)
    client = logged_in(nurse)

    # when
    queue = client.get(QUEUE)
    response = select(client, "acknowledge", [mine, theirs])
    button = client.post(reverse("admin:alerts_alert_acknowledge", args=[theirs.pk]))

    # then: she sees both, and acknowledged hers only
    assert set(shown(queue)) == {mine.pk, theirs.pk}
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, events_of(mine)) == (
        AlertStatus.ACKNOWLEDGED,
        [("acknowledged", "nurse", "")],
    )
    assert (theirs.status, events_of(theirs)) == (AlertStatus.OPEN, [])
    assert _messages(client, response) == [
        "Acknowledged: 1 alert.",
        f"Left alone 1 alert (your role in their team does not triage): {theirs.pk}.",
    ]
    assert button.status_code == 403
    assert 'value="Acknowledge"' not in client.get(page_url(theirs)).content.decode()


def test_a_coordinator_sees_the_queue_but_has_no_actions_and_no_buttons(coordinator, patient):
    # given: the coordinator's role views alerts, and does not triage them
    alert = alert_of(patient)
    client = logged_in(coordinator)

    # when
    queue = client.get(QUEUE)
    page = client.get(page_url(alert))
    posted = client.post(reverse("admin:alerts_alert_acknowledge", args=[alert.pk]))
    select(client, "acknowledge", [alert])

    # then
    assert shown(queue) == [alert.pk]
    assert queue.context["action_form"] is None
    assert 'value="Acknowledge"' not in page.content.decode()
    assert posted.status_code == 403
    alert.refresh_from_db()
    assert (alert.status, events_of(alert)) == (AlertStatus.OPEN, [])


# --- The alert page ---------------------------------------------------------------------------


@pytest.fixture
def hypo(patient, nurse):
    """A critical low-glucose alert, raised through the lifecycle by the reading at 08:30
    New York time three and a half days ago, paged to the nurse by email (sent on the
    second attempt), with the patient's own two low-glucose rules."""
    ReadingFactory(patient=patient, metric="glucose", value=110, unit="mg/dL",
                   sent_value=6.1, sent_unit="mmol/L", context="fasting",
                   measured_at=NOW - timedelta(days=20))  # fmt: skip
    low = ReadingFactory(patient=patient, metric="glucose", value=50, unit="mg/dL",
                         sent_value=2.8, sent_unit="mmol/L", context="fasting",
                         measured_at=NOW - timedelta(days=3, hours=12))  # fmt: skip
    ReadingFactory(patient=patient, metric="glucose", value=98, unit="mg/dL",
                   measured_at=NOW - timedelta(hours=2))  # fmt: skip
    level_1 = RuleFactory(
        patient=patient,
        key="hypoglycemia_level_1",
        title="Level 1 hypoglycaemia",
        severity="warning",
        group="glucose_low",
        parameters={
            "conditions": [
                {"component": "value", "op": "ge", "value": 54},
                {"component": "value", "op": "lt", "value": 70},
            ],
            "match": "all",
        },
        reference="blood_glucose.thresholds.hypoglycemia_level_1",
        source="verified: ada_soc_glycemic_targets",
    )
    level_2 = RuleFactory(
        patient=patient,
        key="hypoglycemia_level_2",
        title="Level 2 hypoglycaemia",
        severity="critical",
        group="glucose_low",
        parameters={"conditions": [{"component": "value", "op": "lt", "value": 54}]},
        reference="blood_glucose.thresholds.hypoglycemia_level_2",
        source="verified: ada_soc_glycemic_targets, ihsg_2017",
    )
    RuleFactory(patient=patient, key="weight_gain", metric="weight", title="Weight gain")
    raised = raise_alert(
        patient=patient,
        trigger=Trigger(
            rule=level_2,
            severity="critical",
            title="Level 2 hypoglycaemia",
            detail="50 mg/dL at 2026-03-05 23:00 EST; rule: < 54 mg/dL",
            first_at=low.measured_at,
            last_at=low.measured_at,
            values={"observed": "50 mg/dL"},
            reading_ids=[low.pk],
        ),
        now=low.measured_at + timedelta(minutes=1),
    )
    notification = Notification.objects.create(
        alert=raised.alert,
        event=raised.event,
        channel="email",
        recipient=nurse,
        target="nurse@clinic.test",
        status="sent",
        attempts=2,
    )
    NotificationAttempt.objects.create(
        notification=notification, number=1, at=low.measured_at + timedelta(minutes=1),
        outcome="transient_failure", error="421 try again later", duration_ms=35,
    )  # fmt: skip
    NotificationAttempt.objects.create(
        notification=notification, number=2, at=low.measured_at + timedelta(minutes=3),
        outcome="sent", duration_ms=41,
    )  # fmt: skip
    raised.alert.level_1 = level_1
    raised.alert.low = low
    return raised.alert


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
            "< 54 mg/dL",
            "Added by a clinician · blood_glucose.thresholds.hypoglycemia_level_2 · "
            "verified: ada_soc_glycemic_targets, ihsg_2017",
            "Fired this alert at version 1",
        ),
        (
            "hypoglycemia_level_1",
            "≥ 54 mg/dL and < 70 mg/dL",
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
        "< 50 mg/dL",
        2,
        "Fired this alert at version 1 (< 54 mg/dL); now version 2",
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
    response = root.post(reverse("admin:alerts_alert_resolve", args=[hypo.pk]), {"note": ""})

    # then
    assert response.status_code == 302
    hypo.refresh_from_db()
    assert (hypo.status, events_of(hypo)[1:]) == (AlertStatus.OPEN, [])
    assert _messages(root, response) == ["Write a note to resolve the alert."]


def test_the_resolve_button_resolves_with_the_note(root, hypo, superuser):
    response = root.post(
        reverse("admin:alerts_alert_resolve", args=[hypo.pk]), {"note": "Treated with juice."}
    )

    hypo.refresh_from_db()
    assert (hypo.status, hypo.resolved_by, hypo.resolved_at) == (
        AlertStatus.RESOLVED,
        superuser,
        NOW,
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


# --- Query counts -----------------------------------------------------------------------------


def _queue_with(count: int, team) -> None:
    for n in range(count):
        patient = PatientFactory(care_team=team)
        rule = RuleFactory(patient=patient, metric="blood_pressure" if n % 2 else "glucose")
        alert_of(patient, rule=rule, age=timedelta(minutes=n + 1))
        ReadingFactory(patient=patient, metric=rule.metric, value=60, systolic=150, diastolic=95)


@pytest.mark.parametrize("count", [2, 40])
def test_the_queue_costs_the_same_queries_for_2_or_40_alerts(
    root, team, count, django_assert_max_num_queries
):
    _queue_with(count, team)

    with django_assert_max_num_queries(QUEUE_QUERIES):
        response = root.get(QUEUE)

    assert len(shown(response)) == count


# The session, the user and the access layer's two-factor lookups (4); the team filter's
# teams; the filtered count; the page of alerts with their patients, assignees and latest
# readings (one query); the access layer's audit insert in its savepoint (3); the session
# save. The same for 2 alerts or 40.
QUEUE_QUERIES = 11


@pytest.mark.parametrize("events", [1, 30])
def test_the_alert_page_costs_the_same_queries_whatever_the_history(
    root, hypo, nurse, events, django_assert_max_num_queries
):
    for n in range(events - 1):
        event = AlertEvent.objects.create(alert=hypo, kind="escalated", at=NOW, data={"level": 2})
        Notification.objects.create(
            alert=hypo, event=event, channel="email", recipient=nurse, target=f"n{n}@clinic.test"
        )

    with django_assert_max_num_queries(PAGE_QUERIES):
        response = root.get(page_url(hypo))

    assert len(response.context["timeline"]) == events


# The session, the user and the two-factor lookups (4); the alert; its rules; the chart
# readings; the recent readings; the events (with actors), their notifications (with
# recipients) and the attempts; a content type the audit may look up once; the audit insert
# in its savepoint (3); the session save. The same for 1 event or 30.
PAGE_QUERIES = 16
