"""The panel's admin page (/admin/panel/): rows, flags in words, links, filters, sorts, audit,
the navigation entry beside the triage queue, and no inline script."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from monitoring.models import AuditEvent
from tests.factories import NudgeFactory, UserFactory
from tests.program.panel_helpers import alert, enrol, log_time, post, review, start_episode

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
URL = "/admin/panel/"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def as_nurse(nurse) -> Client:
    client = Client()
    client.force_login(nurse)
    return client


def rows(response) -> list[str]:
    return re.findall(r'<tr class="[^"]*" id="panel-patient-(\d+)">', response.content.decode())


def row_html(response, patient) -> str:
    html = response.content.decode()
    start = html.rindex("<tr", 0, html.index(f'id="panel-patient-{patient.pk}"'))
    return html[start : html.index("</tr>", start)]


def test_the_page_shows_each_patient_with_its_flags_in_words(team, nurse, physician, as_nurse):
    # given
    risky = enrol(team, protocols=["heart_failure"], name="Risky Example")
    start_episode(risky, start=date(2026, 3, 1), practitioner=physician)
    post(risky, datetime(2026, 3, 2, 13, 0, tzinfo=UTC), value=80.0)
    post(risky, datetime(2026, 3, 9, 12, 0, tzinfo=UTC), value=81.4)
    alert(risky, severity="critical")
    log_time(risky, nurse, at=NOW - timedelta(days=1), minutes=12, interactive=True)
    review(risky, nurse, at=datetime(2026, 3, 8, 14, 0, tzinfo=UTC))
    NudgeFactory(patient=risky, purpose="keep_sending", local_day=date(2026, 3, 10), status="sent")
    quiet = enrol(team, protocols=["diabetes"], name="Quiet Example")

    # when
    response = as_nurse.get(URL)

    # then
    assert response.status_code == 200
    assert rows(response) == [str(risky.pk), str(quiet.pk)]  # the critical alert first
    risky_row = row_html(response, risky)
    assert reverse("admin:monitoring_patient_change", args=[risky.pk]) in risky_row
    assert "vigil-at-risk" in risky_row
    assert "At risk of &lt; 16 days" in risky_row
    assert "2 of 16 days" in risky_row
    assert "Encouraged today (sent)" in risky_row
    assert "period ends 30 Mar" in risky_row
    assert ">Critical</span>" in risky_row and "1 unresolved" in risky_row
    assert "81.4 kg" in risky_row
    assert "12 min" in risky_row and "Interactive contact: yes" in risky_row
    assert "by nurse" in risky_row
    assert "Needs review" in risky_row
    assert 'role="img" aria-label="Body weight: 80 → 81.4"' in risky_row
    assert "No data for" not in risky_row
    quiet_row = row_html(response, quiet)
    assert "No data for 3 days" in quiet_row
    assert "Blood glucose</strong>: none yet" in quiet_row
    assert "No running episode" in quiet_row
    assert "Never" in quiet_row


def test_the_table_is_accessible_and_loads_no_inline_script(team, as_nurse):
    enrol(team, name="A")

    html = as_nurse.get(URL).content.decode()

    # Sorted by severity (its natural order, the worst first); the link reverses it.
    assert '<th scope="col" aria-sort="ascending"><a href="?sort=-severity">Alerts</a> ▲' in html
    assert '<th scope="col"><a href="?sort=name">Patient</a></th>' in html
    assert '<th scope="row">' in html
    assert "<caption>1 patient</caption>" in html
    # Every script has a source on this origin, or is the admin's one nonce'd inline script
    # (the viewer's zone, config/templates/admin/base_site.html); none from elsewhere.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all(re.search(r'src="/static/| nonce="', attrs) for attrs in scripts)
    assert len([attrs for attrs in scripts if "nonce=" in attrs]) == 1
    assert re.findall(r'(?:src|href)="(?:https?:)?//', html) == []


def test_filter_links_and_sort(team, nurse, as_nurse):
    quiet = enrol(team, name="Quiet")
    fresh = enrol(team, name="Fresh")
    post(fresh, NOW - timedelta(hours=1))

    html = as_nurse.get(URL).content.decode()
    filtered = as_nurse.get(URL, {"no_data": "true"})
    by_name = as_nurse.get(URL, {"sort": "-name"})

    assert '<a href="?no_data=true">No data for 3 days</a>' in html
    assert '<a href="?minutes_below=10">Minutes short of 10</a>' in html
    assert '<a href="?minutes_below=20">Minutes short of 20</a>' in html
    assert rows(filtered) == [str(quiet.pk)]
    assert '<a href="?no_data=true" aria-current="true">' in filtered.content.decode()
    assert rows(by_name) == [str(quiet.pk), str(fresh.pk)]


def test_a_bad_query_is_a_400_with_the_reason(team, as_nurse, other_team):
    response = as_nurse.get(URL, {"team": other_team.pk})

    assert response.status_code == 400
    assert "team: Not one of your care teams." in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_a_page_past_the_last_is_a_404(team, as_nurse):
    enrol(team)

    assert as_nurse.get(URL, {"page": "2"}).status_code == 404
    assert as_nurse.get(URL, {"page": "x"}).status_code == 404


def test_another_teams_patients_are_never_shown(team, other_team, as_nurse):
    mine = enrol(team)
    enrol(other_team)

    assert rows(as_nurse.get(URL)) == [str(mine.pk)]


def test_the_page_records_one_view_per_patient_shown(team, nurse, as_nurse):
    patients = [enrol(team, name=name) for name in ("A", "B")]

    as_nurse.get(URL)

    assert sorted(
        AuditEvent.objects.values_list("user_id", "patient_id", "action", "model", "surface")
    ) == [(nurse.pk, patient.pk, "view", "monitoring.patient", "admin") for patient in patients]


def test_the_navigation_shows_the_panel_after_the_triage_queue(team, as_nurse):
    html = as_nurse.get(reverse("admin:alerts_alert_changelist")).content.decode()

    queue = html.index('href="/admin/alerts/alert/"')
    link = html.index(f'href="{URL}"')
    assert queue < link < html.index('href="/admin/alerts/careteam/"')


def test_the_page_needs_a_staff_login(team):
    response = Client().get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_in_no_team_see_an_empty_panel(team):
    enrol(team)
    client = Client()
    client.force_login(UserFactory(username="visitor"))

    response = client.get(URL)

    assert response.status_code == 200
    assert rows(response) == []
    assert "No patients match." in response.content.decode()
