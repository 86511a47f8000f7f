"""The panel costs the same number of queries at 5 patients as at 50: program.panel, the API
and the admin page. Each patient has everything a row shows (protocols, an episode with
device days, readings of two metrics, alerts, time, a review)."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from program.panel import panel_page
from tests.program.panel_helpers import alert, enrol, log_time, post, review, start_episode

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo"]


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def populate(team, count: int, *, nurse, physician) -> None:
    for index in range(count):
        patient = enrol(
            team,
            protocols=["heart_failure", "diabetes"] if index % 2 else ["copd"],
            timezone=ZONES[index % len(ZONES)],
            name=f"Patient {index:03d}",
        )
        start_episode(patient, start=date(2026, 3, 1), practitioner=physician)
        for days_ago in (1, 2, 3):
            at = NOW - timedelta(days=days_ago)
            post(patient, at, type="weight" if index % 2 else "spo2", value=80 + days_ago)
            post(patient, at, type="glucose" if index % 2 else "spo2", value=95 + days_ago)
        alert(patient, severity="warning" if index % 3 else "critical")
        log_time(patient, nurse, at=NOW - timedelta(days=2), minutes=5 + index % 20)
        review(patient, nurse, at=NOW - timedelta(days=index % 5))


def count_queries(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        call()
    return len(queries)


@pytest.mark.parametrize("size", [5, 50])
def test_panel_page_costs_nine_queries_whatever_the_panel(team, nurse, physician, size):
    populate(team, size, nurse=nurse, physician=physician)

    with CaptureQueriesContext(connection) as queries:
        page = panel_page(user=nurse, page_size=50)

    assert len(page.rows) == size
    assert all(row.trend for row in page.rows)
    # The teams, the patients, alerts, episodes, device days, care time; the page's
    # protocols, its readings and today's keep-sending nudges.
    assert len(queries) == 9


def test_the_api_costs_the_same_at_5_and_50_patients(team, nurse, physician, staff_client):
    client = staff_client(nurse)
    populate(team, 5, nurse=nurse, physician=physician)
    client.get("/api/v1/panel")  # the token's last use is written once a while, not each call
    small = count_queries(lambda: client.get("/api/v1/panel"))
    populate(team, 45, nurse=nurse, physician=physician)
    large = count_queries(lambda: client.get("/api/v1/panel"))

    # The token; the panel's nine; the audit rows' one INSERT (in the test's transaction,
    # within a savepoint: two more statements).
    assert small == large == 13


def test_the_admin_page_costs_the_same_at_5_and_50_patients(team, nurse, physician):
    client = Client()
    client.force_login(nurse)
    populate(team, 5, nurse=nurse, physician=physician)
    client.get("/admin/panel/")  # the session's first page warms per-user caches
    small = count_queries(lambda: client.get("/admin/panel/"))
    populate(team, 45, nurse=nurse, physician=physician)
    large = count_queries(lambda: client.get("/admin/panel/"))

    # The session, the user and their authenticators, their permissions (the navigation),
    # the team links; the panel's nine; the audit rows' one INSERT; the session's UPDATE
    # (in a savepoint: two more statements).
    assert small == large == 20
