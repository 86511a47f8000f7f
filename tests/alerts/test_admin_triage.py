"""The triage queue (the Alert changelist, alerts/admin.py and alerts/triage.py), through the
admin's own URLs on real PostgreSQL: order, colour and word, filters, search, bulk actions
through alerts.lifecycle, team scoping, and query counts.

Most tests log in as a superuser. The scoping and permission tests use the personas'
roles (tests/conftest.py; alerts.teams): a nurse may view and change (triage) her team's
alerts, a coordinator only view them.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from alerts.models import (
    AlertEvent,
    AlertStatus,
    Notification,
)
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
    select,
    shown,
)
from tests.factories import (
    MembershipFactory,
    PatientFactory,
    ReadingFactory,
    RuleFactory,
)

# --- Order ----------------------------------------------------------------------------------


def test_the_queue_orders_severity_first_then_open_before_acknowledged_then_longest_waiting(
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
    acknowledged_warning = alert_of(
        patient, severity="warning", status=AlertStatus.ACKNOWLEDGED, age=timedelta(days=4)
    )
    acknowledged_info = alert_of(
        patient, severity="info", status=AlertStatus.ACKNOWLEDGED, age=timedelta(days=5)
    )
    alert_of(patient, severity="critical", status=AlertStatus.RESOLVED, age=timedelta(days=9))

    # when
    response = root.get(QUEUE)

    # then: an acknowledged critical that is still there sits above every open warning and
    # the open info alert
    assert response.status_code == 200
    assert shown(response) == [
        old_critical.pk,
        new_critical.pk,
        acknowledged_critical.pk,
        old_warning.pk,
        acknowledged_warning.pk,
        info.pk,
        acknowledged_info.pk,
    ]
    assert response.context["title"] == "Triage queue"


def test_the_whole_history_lists_the_resolved_alerts_after_the_unresolved_ones(root, patient):
    # given
    resolved_critical = alert_of(
        patient, severity="critical", status=AlertStatus.RESOLVED, age=timedelta(days=9)
    )
    open_info = alert_of(patient, severity="info", age=timedelta(minutes=1))
    resolved_info = alert_of(
        patient, severity="info", status=AlertStatus.RESOLVED, age=timedelta(days=2)
    )

    # when
    response = root.get(f"{QUEUE}?status=all")

    # then
    assert shown(response) == [open_info.pk, resolved_critical.pk, resolved_info.pk]


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


# --- Columns --------------------------------------------------------------------------------

PRIORITY = [
    "severity_badge",
    "patient_column",
    "summary",
    "value_column",
    "trend_column",
    "since",
    "status_column",
]
MORE = [
    "metric_column",
    "occurrences",
    "condition_cleared",
    "assignee_column",
    "escalation_level",
    "source_column",
]


def cell(html: str, column: str, content: str) -> bool:
    return bool(
        re.search(rf'<t[dh] class="field-{column}"[^>]*>{re.escape(content)}</t[dh]>', html)
    )


def header_columns(html: str) -> list[str]:
    return re.findall(r'<th scope="col" class="[^"]*column-(\w+)[^"]*"', html)


@pytest.fixture
def glucose_alert(patient, nurse):
    """A low-glucose alert raised at 07:30 New York time by a 52 mg/dL reading, a 96 mg/dL
    reading since."""
    low = ReadingFactory(patient=patient, metric="glucose", value=52, unit="mg/dL",
                         measured_at=NOW - timedelta(hours=4, minutes=30))  # fmt: skip
    ReadingFactory(patient=patient, metric="glucose", value=96, unit="mg/dL",
                   measured_at=NOW - timedelta(minutes=20))  # fmt: skip
    ReadingFactory(patient=patient, metric="weight", value=81.4, measured_at=NOW)
    return alert_of(
        patient,
        severity="critical",
        age=timedelta(hours=4, minutes=30),
        occurrences=1,
        condition_cleared_at=NOW - timedelta(minutes=20),
        assignee=nurse,
        escalation_level=2,
        values={"observed": "52 mg/dL"},
        reading_ids=[low.pk],
    )


def test_each_row_shows_the_priority_columns_severity_patient_problem_value_since_status(
    root, patient, glucose_alert
):
    # when: the nurse's browser says she is in Berlin
    root.cookies["vigil_tz"] = "Europe/Berlin"
    html = root.get(QUEUE).content.decode()

    # then
    assert header_columns(html) == PRIORITY
    patient_url = reverse("admin:monitoring_patient_change", args=[patient.pk])
    cells = {
        "summary": f'<a href="{page_url(glucose_alert)}">Low glucose</a>',
        "patient_column": (
            f'<a href="{patient_url}">{escape(patient.name)}</a><br>'
            f'<span class="vigil-quiet">{patient.external_id}</span>'
        ),
        "value_column": (
            '<dl class="vigil-values">'
            '<dt>Triggered</dt><dd><span class="vigil-value">52 mg/dL</span></dd>'
            '<dt>Latest</dt><dd><span class="vigil-value">96 mg/dL</span>'
            ' <span class="vigil-quiet">20\xa0minutes ago</span></dd></dl>'
        ),
        # the patient's clock, then the nurse's
        "since": (
            '<time datetime="2026-03-09T11:30:00+00:00">4\xa0hours ago</time><br>'
            '<span class="vigil-quiet">9 Mar 2026, 07:30 EDT</span><br>'
            '<span class="vigil-quiet">12:30 CET your time</span>'
        ),
        "status_column": "Open",
    }
    for column, content in cells.items():
        assert cell(html, column, content), column
    for column in MORE:
        assert f'class="field-{column}"' not in html


def test_more_columns_come_on_demand_metric_occurrences_cleared_assignee_level_source(
    root, glucose_alert
):
    # when
    html = root.get(f"{QUEUE}?columns=all").content.decode()

    # then: the priority columns first (a sort by column number names the same column)
    assert header_columns(html) == PRIORITY + MORE
    cells = {
        "metric_column": "Blood glucose",
        "occurrences": "1",
        "assignee_column": "nurse",
        "escalation_level": "2",
        # where the latest value came from (issue 12.4)
        "source_column": "Patient app · Typed by a person",
    }
    for column, content in cells.items():
        assert cell(html, column, content), column
    assert re.search(r'<td class="field-condition_cleared"><img src="[^"]*icon-yes\.svg"', html)
    assert '<a id="queue-columns" href="?">Fewer columns</a>' in html


def test_the_columns_link_keeps_the_filters_and_the_filters_keep_the_columns(root, glucose_alert):
    # when
    narrow = root.get(f"{QUEUE}?severity__exact=critical&q=MRN").content.decode()
    wide = root.get(f"{QUEUE}?columns=all&severity__exact=critical").content.decode()

    # then
    assert (
        '<a id="queue-columns" href="?columns=all&amp;q=MRN&amp;severity__exact=critical">'
        "More columns"
    ) in narrow
    # the severity filter's links, and the column sort links, keep ?columns=all
    assert '<a href="?columns=all&amp;severity__exact=warning">Warning</a>' in wide
    assert 'href="?columns=all&amp;o=3&amp;severity__exact=critical"' in wide
    assert shown(root.get(f"{QUEUE}?columns=all&severity__exact=critical")) == [glucose_alert.pk]


def test_the_values_are_labelled_the_worst_of_several_and_the_same_reading(root, patient):
    # given: a blood-pressure alert that absorbed three findings, its latest reading the worst
    bp_rule = RuleFactory(patient=patient, metric="blood_pressure", severity="critical")
    ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                   systolic=131, diastolic=84, measured_at=NOW - timedelta(days=2))  # fmt: skip
    worst = ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                           systolic=186, diastolic=118,
                           measured_at=NOW - timedelta(hours=2))  # fmt: skip
    alert_of(
        patient,
        rule=bp_rule,
        occurrences=3,
        values={"observed": "186/118 mm[Hg]"},
        reading_ids=[worst.pk],
    )

    # when
    html = root.get(QUEUE).content.decode()

    # then: the unit as clinicians write it; "same reading" rather than the value twice
    assert cell(
        html,
        "value_column",
        '<dl class="vigil-values">'
        '<dt>Worst of 3</dt><dd><span class="vigil-value">186/118 mmHg</span></dd>'
        '<dt>Latest</dt><dd><span class="vigil-value">same reading</span></dd></dl>',
    )


def test_an_average_alert_says_its_value_is_an_average(root, patient):
    rule = RuleFactory(
        patient=patient, kind="average", metric="blood_pressure", title="High 7-day average"
    )
    alert_of(patient, rule=rule, values={"average": "142/91 mm[Hg]", "readings": 14})

    html = root.get(QUEUE).content.decode()

    assert cell(
        html,
        "value_column",
        '<dl class="vigil-values">'
        '<dt>Triggered (average)</dt><dd><span class="vigil-value">142/91 mmHg</span></dd>'
        '<dt>Latest</dt><dd><span class="vigil-value">no reading</span></dd></dl>',
    )


def test_without_a_reading_the_value_is_what_the_rule_saw(root, patient):
    # given: no glucose reading at all (the rule's values are all there is)
    alert = alert_of(patient, values={"observed": "48 mg/dL"})

    # when
    response = root.get(QUEUE)

    # then
    assert cell(
        response.content.decode(),
        "value_column",
        '<dl class="vigil-values">'
        '<dt>Triggered</dt><dd><span class="vigil-value">48 mg/dL</span></dd>'
        '<dt>Latest</dt><dd><span class="vigil-value">no reading</span></dd></dl>',
    )
    rows = {row.pk: row for row in response.context["cl"].result_list}
    assert rows[alert.pk].latest_reading is None
    assert rows[alert.pk].trend_readings in (None, [])


def test_the_latest_value_is_the_metrics_latest_reading(root, patient):
    # given: a kind with no single triggering value, and blood-pressure readings
    bp_rule = RuleFactory(patient=patient, metric="blood_pressure", severity="critical")
    bp = alert_of(patient, rule=bp_rule)
    ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                   systolic=186, diastolic=118, measured_at=NOW - timedelta(hours=2))  # fmt: skip
    ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                   systolic=131, diastolic=84, measured_at=NOW - timedelta(days=2))  # fmt: skip

    # when
    response = root.get(QUEUE)

    # then
    assert cell(
        response.content.decode(),
        "value_column",
        '<dl class="vigil-values">'
        '<dt>Latest</dt><dd><span class="vigil-value">186/118 mmHg</span>'
        ' <span class="vigil-quiet">2\xa0hours ago</span></dd></dl>',
    )
    rows = {row.pk: row.latest_reading for row in response.context["cl"].result_list}
    assert (rows[bp.pk]["systolic"], rows[bp.pk]["diastolic"]) == (186, 118)


# --- Trend ----------------------------------------------------------------------------------


def test_each_row_draws_the_metrics_last_readings_as_a_sparkline_with_its_words(root, patient):
    # given: four glucose readings an hour apart, the low one triggered the alert; one more
    # reading of another metric, and one older than the trend's window
    ReadingFactory(patient=patient, metric="glucose", value=300, unit="mg/dL",
                   measured_at=NOW - timedelta(days=31))  # fmt: skip
    for hours, value in [(3, 100), (1, 80), (0, 140)]:
        ReadingFactory(patient=patient, metric="glucose", value=value, unit="mg/dL",
                       measured_at=NOW - timedelta(hours=hours))  # fmt: skip
    low = ReadingFactory(patient=patient, metric="glucose", value=60, unit="mg/dL",
                         measured_at=NOW - timedelta(hours=2))  # fmt: skip
    ReadingFactory(patient=patient, metric="weight", value=81.4, measured_at=NOW)
    alert_of(patient, values={"observed": "60 mg/dL"}, reading_ids=[low.pk])

    # when
    html = root.get(QUEUE).content.decode()

    # then: time across (72 px less 3 each side), value up (24 px less 3 each side): 60 at
    # the bottom, 140 at the top; the triggering reading ringed, the latest a dot
    words = "Blood glucose, last 4 readings (oldest first): 100, 60, 80, 140 mg/dL"
    assert cell(
        html,
        "trend_column",
        '<svg class="vigil-spark" width="72" height="24" viewBox="0 0 72 24" role="img" '
        f'aria-label="{words}"><title>{words}</title>'
        '<polyline class="vigil-spark-line" points="3.0,12.0 25.0,21.0 47.0,16.5 69.0,3.0"/>'
        '<circle class="vigil-spark-trigger" cx="25.0" cy="21.0" r="3"/>'
        '<circle class="vigil-spark-last" cx="69.0" cy="3.0" r="2"/></svg>',
    )


def test_a_blood_pressure_trend_draws_systolic_and_diastolic_on_one_scale(root, patient):
    bp_rule = RuleFactory(patient=patient, metric="blood_pressure", severity="critical")
    for hours, systolic, diastolic in [(2, 140, 90), (1, 180, 110)]:
        ReadingFactory(patient=patient, metric="blood_pressure", value=None, unit="mm[Hg]",
                       systolic=systolic, diastolic=diastolic,
                       measured_at=NOW - timedelta(hours=hours))  # fmt: skip
    alert_of(patient, rule=bp_rule)

    html = root.get(QUEUE).content.decode()

    # 90 to 180 mmHg over 18 px: 140 at 11, 110 at 17
    words = "Blood pressure, last 2 readings (oldest first): 140/90, 180/110 mmHg"
    assert (
        f'aria-label="{words}"><title>{words}</title>'
        '<polyline class="vigil-spark-line" points="3.0,11.0 69.0,3.0"/>'
        '<polyline class="vigil-spark-line" points="3.0,21.0 69.0,17.0"/>'
    ) in html


def test_the_trend_draws_at_most_the_last_twelve_readings(root, patient):
    for minutes in range(15):
        ReadingFactory(patient=patient, metric="glucose", value=100 + minutes, unit="mg/dL",
                       measured_at=NOW - timedelta(minutes=5 * minutes))  # fmt: skip
    alert_of(patient)

    html = root.get(QUEUE).content.decode()

    newest_twelve = ", ".join(str(value) for value in range(111, 99, -1))
    assert f"Blood glucose, last 12 readings (oldest first): {newest_twelve} mg/dL" in html


def test_a_row_without_recent_readings_says_so(root, patient):
    alert_of(patient, values={"observed": "48 mg/dL"})

    html = root.get(QUEUE).content.decode()

    assert cell(html, "trend_column", '<span class="vigil-quiet">No recent readings</span>')


# --- Refresh ----------------------------------------------------------------------------------


def test_the_queue_reloads_itself_at_its_own_address_with_the_filters(root, patient, settings):
    # given
    settings.VIGIL_QUEUE_REFRESH_SECONDS = 90
    alert_of(patient)
    root.cookies["vigil_tz"] = "Europe/Berlin"

    # when
    response = root.get(f"{QUEUE}?severity__exact=warning&q=Smith&p=1")
    html = response.content.decode()

    # then: the script's data and the no-script fallback name this very address
    here = "/admin/alerts/alert/?severity__exact=warning&amp;q=Smith&amp;p=1"
    assert f'data-seconds="90" data-idle-seconds="1800" data-url="{here}"' in html
    assert f'<noscript><meta http-equiv="refresh" content="90; url={here}"></noscript>' in html
    assert "Updated at <time>17:00 CET</time>" in html
    assert "refreshes every 90 seconds" in html
    assert (
        '<a id="queue-refresh-pause" href="?q=Smith&amp;refresh=off&amp;severity__exact=warning">'
        "Pause</a>"
    ) in html
    nonce = re.search(r'<script nonce="([^"]+)">\s*\(function \(\) \{\s*var status', html)
    assert nonce and nonce.group(1) in response.headers["Content-Security-Policy"]


def test_a_paused_queue_does_not_reload_and_keeps_the_pause_in_its_links(root, patient, settings):
    settings.VIGIL_QUEUE_REFRESH_SECONDS = 60
    alert_of(patient)

    html = root.get(f"{QUEUE}?refresh=off&severity__exact=warning").content.decode()

    assert "http-equiv" not in html
    assert "data-seconds" not in html
    assert "Updated at <time>16:00 UTC</time>" in html
    assert "automatic refresh paused" in html
    assert '<a id="queue-refresh-resume" href="?severity__exact=warning">Resume</a>' in html
    # the filters' links keep the pause, and it filters no alert away
    assert '<a href="?refresh=off&amp;severity__exact=critical">Critical</a>' in html
    assert len(shown(root.get(f"{QUEUE}?refresh=off"))) == 1


def test_a_refresh_interval_of_zero_switches_the_reload_off(root, patient, settings):
    settings.VIGIL_QUEUE_REFRESH_SECONDS = 0
    alert_of(patient)

    html = root.get(QUEUE).content.decode()

    assert "http-equiv" not in html
    assert "data-seconds" not in html
    assert 'id="queue-refresh-pause"' not in html
    assert "Updated at <time>16:00 UTC</time>" in html


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
    for alert, previous in ((open_alert, None), (nurses, nurse.pk)):
        alert.refresh_from_db()
        assert alert.assignee == superuser
        assert events_of(alert) == [("assigned", "root", "")]
        assert AlertEvent.objects.get(alert=alert).data == {
            "assignee": superuser.pk,
            "previous_assignee": previous,
        }
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
    response = select(
        root, "resolve_with_note", [first, second], apply="yes", note=note, reason="false_alarm"
    )

    # then
    assert response.status_code == 302
    for alert in (first, second):
        alert.refresh_from_db()
        assert (alert.status, alert.resolved_by, alert.resolved_at, alert.resolution_reason) == (
            AlertStatus.RESOLVED,
            superuser,
            NOW,
            "false_alarm",
        )
        assert events_of(alert) == [("resolved", "root", note)]
        assert AlertEvent.objects.get(alert=alert).data == {"reason": "false_alarm"}
    assert _messages(root, response) == ["Resolved: 2 alerts."]


def test_resolve_with_an_empty_note_resolves_nothing(root, patient):
    # given
    alert = alert_of(patient)

    # when
    response = select(
        root, "resolve_with_note", [alert], apply="yes", note="   ", reason="escalated"
    )

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
# teams; the filtered count; the page of alerts with their patients, assignees, latest
# readings and trends (one query: correlated subqueries); the access layer's audit insert
# in its savepoint (3); the session save. The same for 2 alerts or 40.
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
# recipients) and the attempts; the team's nurses and physicians to assign it to; a content
# type the audit may look up once; the audit insert in its savepoint (3); the session save;
# the user's running care-time timer (the timer box, program/templatetags/care_time.py).
# The same for 1 event or 30.
PAGE_QUERIES = 18
