"""No reading path reads more than its window, whatever the history behind it (issue 15.2).

Each path runs twice on the same patient: with a month of 5-minute CGM (the window every page
shows), then with eleven months more before it and two other patients' year (~330,000 rows:
more than ten times the history). Its queries are captured, rolled back, and each SELECT is
run again under EXPLAIN (ANALYZE, BUFFERS): the second run may read no more than 1.2 times
the buffers of the first, nor more rows. PostgreSQL only: the plans are the point.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.auth import issue_app_token
from monitoring.enrolment import enrol_patient
from monitoring.evaluation import evaluate_pending_readings
from monitoring.evaluation.scheduled import evaluate_scheduled_rules
from monitoring.models import Reading, Rule
from tests.factories import AlertFactory, PatientFactory, ReadingFactory
from tests.monitoring.history import buffers, explain, generate_readings, rows_read

pytestmark = pytest.mark.postgres

FIVE_MINUTES = timedelta(minutes=5)
MONTH = 30 * 288  # a month of 5-minute CGM
# A change of the B-tree's depth adds a page per index descent: a few buffers, not a factor.
DEPTH_SLACK = 24


class RolledBack(Exception):
    pass


@contextmanager
def rolled_back():
    """Run the block, then undo what it wrote: each path is measured on the same data."""
    try:
        with transaction.atomic():
            yield
            raise RolledBack
    except RolledBack:
        pass


def cost(action) -> dict:
    """Buffers and rows read by the SELECTs `action` runs (EXPLAIN ANALYZE of each, after
    the action's writes were rolled back), and the plans, for the assertion messages."""
    with CaptureQueriesContext(connection) as queries, rolled_back():
        action()
    plans = [
        (query["sql"], explain(query["sql"], None))
        for query in queries.captured_queries
        if query["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    return {
        "buffers": sum(buffers(plan) for _, plan in plans),
        "rows": sum(rows_read(plan) for _, plan in plans),
        "queries": len(queries.captured_queries),
        # For the assertion's message: the query that read the most rows.
        "worst": max(((rows_read(plan), sql[:200]) for sql, plan in plans), default=(0, "")),
    }


def assert_flat(before: dict, after: dict) -> None:
    assert after["buffers"] <= 1.2 * before["buffers"] + DEPTH_SLACK, (before, after)
    assert after["rows"] <= 1.2 * before["rows"] + DEPTH_SLACK, (before, after)
    assert after["queries"] == before["queries"], (before, after)


@pytest.fixture
def cgm_patient(team):
    return enrol_patient(
        external_id="MRN-CGM",
        name="Cgm Patient",
        timezone="Europe/Paris",
        care_team=team,
        protocols=["diabetes"],
    )


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


def add_month(patient, now) -> None:
    generate_readings(
        patient_id=patient.pk,
        metric="glucose",
        unit="mg/dL",
        until=now,
        count=MONTH,
        every=FIVE_MINUTES,
        source="nightscout",
    )


def add_history(patient, team, now) -> int:
    """Eleven months before the patient's month, and two other patients' year."""
    added = generate_readings(
        patient_id=patient.pk,
        metric="glucose",
        unit="mg/dL",
        until=now - MONTH * FIVE_MINUTES,
        count=11 * MONTH,
        every=FIVE_MINUTES,
    )
    for _ in range(2):
        other = PatientFactory(care_team=team)
        added += generate_readings(
            patient_id=other.pk,
            metric="glucose",
            unit="mg/dL",
            until=now,
            count=12 * MONTH,
            every=FIVE_MINUTES,
        )
    return added


def measured_twice(patient, team, now, action) -> tuple[dict, dict]:
    add_month(patient, now)
    with rolled_back():
        action()  # once first: Django caches content types and permissions on first use
    before = cost(action)
    assert add_history(patient, team, now) >= 10 * MONTH
    after = cost(action)
    return before, after


def admin_get(user, url):
    client = Client()
    client.force_login(user)

    def get():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return get


def test_the_api_readings_list_reads_its_page_on_reading_patient_time(cgm_patient, team, now):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_app_token(patient=cgm_patient)[1]}")

    def first_page():
        assert client.get("/api/v1/readings").status_code == 200

    before, after = measured_twice(cgm_patient, team, now, first_page)

    assert_flat(before, after)
    # the page's 101 rows (one past, for the cursor), not the patient's history
    assert after["rows"] < 500, after


def test_the_admin_readings_list_of_every_patient_reads_the_latest_stored_only(
    cgm_patient, team, now, nurse
):
    url = reverse("admin:monitoring_reading_changelist")

    before, after = measured_twice(cgm_patient, team, now, admin_get(nurse, url))

    assert_flat(before, after)


def test_the_admin_readings_list_of_one_patient_reads_its_page(cgm_patient, team, now, nurse):
    url = f"{reverse('admin:monitoring_reading_changelist')}?patient={cgm_patient.pk}&p=2"

    before, after = measured_twice(cgm_patient, team, now, admin_get(nurse, url))

    assert_flat(before, after)
    assert after["rows"] < 1000, after  # two pages and one row, not 105,000 readings


def test_the_patient_page_reads_its_month(cgm_patient, team, now, nurse):
    url = reverse("admin:monitoring_patient_change", args=[cgm_patient.pk])

    before, after = measured_twice(cgm_patient, team, now, admin_get(nurse, url))

    assert_flat(before, after)


def test_the_alert_page_reads_its_month(cgm_patient, team, now, nurse):
    rule = cgm_patient.rules.filter(metric="glucose", kind="threshold").first()
    alert = AlertFactory(patient=cgm_patient, rule=rule)
    url = reverse("admin:alerts_alert_change", args=[alert.pk])

    before, after = measured_twice(cgm_patient, team, now, admin_get(nurse, url))

    assert_flat(before, after)


def test_evaluating_a_live_reading_reads_its_window(cgm_patient, team, now):
    def evaluate_live_reading():
        ReadingFactory(patient=cgm_patient, metric="glucose", value=120, unit="mg/dL",
                       measured_at=now, received_at=now, evaluated_at=None)  # fmt: skip
        assert evaluate_pending_readings(patient_id=cgm_patient.pk, now=now) == 1

    before, after = measured_twice(cgm_patient, team, now, evaluate_live_reading)

    assert_flat(before, after)


def test_the_scheduled_cgm_summaries_load_their_window_once_as_tuples(cgm_patient, team, now):
    rule_ids = list(
        Rule.objects.filter(patient=cgm_patient, kind="cgm_summary").values_list("id", flat=True)
    )
    assert len(rule_ids) >= 2

    def summarise():
        evaluate_scheduled_rules(patient_id=cgm_patient.pk, rule_ids=rule_ids, now=now)

    before, after = measured_twice(cgm_patient, team, now, summarise)

    assert_flat(before, after)
    with CaptureQueriesContext(connection) as queries, rolled_back():
        summarise()
    glucose_loads = [
        query for query in queries.captured_queries
        if 'FROM "monitoring_reading"' in query["sql"] and "glucose" in query["sql"]
    ]  # fmt: skip
    assert len(glucose_loads) == 1


def test_the_pending_readings_query_is_served_per_patient_whatever_the_backlog(
    cgm_patient, team, now
):
    # given: another patient's backlog of 20,000 unevaluated readings, and one of ours
    other = PatientFactory(care_team=team)
    generate_readings(patient_id=other.pk, metric="glucose", unit="mg/dL", until=now,
                      count=20_000, every=FIVE_MINUTES)  # fmt: skip
    Reading.objects.filter(patient=other).update(evaluated_at=None)
    ReadingFactory(patient=cgm_patient, metric="glucose", value=120, unit="mg/dL",
                   measured_at=now, received_at=now, evaluated_at=None)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE monitoring_reading")

    # when
    with CaptureQueriesContext(connection) as queries, rolled_back():
        evaluate_pending_readings(patient_id=cgm_patient.pk, now=now)

    # then: the query of the pending readings reads the partial index, our one row only
    (pending,) = [
        query["sql"] for query in queries.captured_queries
        if '"evaluated_at" IS NULL' in query["sql"] and query["sql"].startswith("SELECT")
    ]  # fmt: skip
    plan = explain(pending, None)
    assert "reading_unevaluated" in str(plan)
    assert rows_read(plan) == 1
