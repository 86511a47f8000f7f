"""No reading path reads more than its window, whatever the history behind it (issue 15.2).

Each path runs twice on the same patient: with a month of 5-minute CGM (the window every page
shows) for it and two other patients of its team, then with eleven months more before it for
all three (~285,000 rows more: more than ten times the history). Its queries are captured,
rolled back, and each SELECT is run again under EXPLAIN (ANALYZE, BUFFERS): the second run may
read no more than 1.2 times the buffers of the first, nor more rows. PostgreSQL only: the
plans are the point.

The readings table is partitioned by month of measured_at (docs/retention.md), and the history
gets its months' partitions as in production (tests/monitoring/history.py). A query bounded
by its window reads the window's partitions only, whatever the history. A query that cannot
be bounded in time (a patient's latest readings whatever their age, the pending readings)
opens every partition: each one it opens costs one index descent, a constant per partition
(PARTITION_PROBE: the B-tree's root and leaf, one heap page; its first row), never the
partition's rows. That, and only that, is allowed on top of the 1.2 times: the test counts the
partitions each plan opened before and after, and a plan that reads a partition's rows (a
full count, a scan of the history) still fails.
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
from monitoring.evaluation import evaluate_patients_together, evaluate_pending_readings
from monitoring.evaluation.scheduled import evaluate_scheduled_rules
from monitoring.models import Reading, Rule
from tests.factories import AlertFactory, PatientFactory, ReadingFactory
from tests.monitoring.history import (
    buffers,
    explain,
    generate_readings,
    reserve_reading_ids,
    rows_read,
)

pytestmark = pytest.mark.postgres

FIVE_MINUTES = timedelta(minutes=5)
MONTH = 30 * 288  # a month of 5-minute CGM
HISTORY = 11 * MONTH  # the months before it
# A change of the B-tree's depth adds a page per index descent: a few buffers, not a factor.
DEPTH_SLACK = 24
# What opening one more partition costs a plan that cannot prune it: one index descent (root,
# leaf, the heap page of its first row), and that first row (a Merge Append reads one row of
# each partition before it can merge). A constant per partition, whatever the rows in it.
PARTITION_PROBE = {"buffers": 3, "rows": 1}


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


def reading_partitions() -> set[str]:
    """The names of the readings table's partitions (none if it is a plain table)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'monitoring_reading'::regclass"
        )
        return {name for (name,) in cursor.fetchall()}


def partitions_opened(plan: dict, partitions: set[str]) -> int:
    """How many scans of a readings partition the plan ran (a partition pruned, at plan or
    run time, is not one; a scan never executed is not one)."""
    own = int(plan.get("Relation Name") in partitions and plan.get("Actual Loops", 0) > 0)
    return own + sum(partitions_opened(child, partitions) for child in plan.get("Plans", []))


def cost(action) -> dict:
    """Buffers and rows read by the SELECTs `action` runs (EXPLAIN ANALYZE of each, after
    the action's writes were rolled back), the partitions their plans opened, and the plans,
    for the assertion messages."""
    with CaptureQueriesContext(connection) as queries, rolled_back():
        action()
    plans = [
        (query["sql"], explain(query["sql"], None))
        for query in queries.captured_queries
        if query["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    partitions = reading_partitions()
    return {
        "buffers": sum(buffers(plan) for _, plan in plans),
        "rows": sum(rows_read(plan) for _, plan in plans),
        "partitions_opened": sum(partitions_opened(plan, partitions) for _, plan in plans),
        "queries": len(queries.captured_queries),
        # For the assertion's message: the query that read the most rows.
        "worst": max(((rows_read(plan), sql[:200]) for sql, plan in plans), default=(0, "")),
    }


def assert_flat(before: dict, after: dict) -> None:
    # Partitions opened beyond those of the first run: one descent each (module docstring).
    more = max(after["partitions_opened"] - before["partitions_opened"], 0)
    for read in ("buffers", "rows"):
        allowed = 1.2 * before[read] + DEPTH_SLACK + more * PARTITION_PROBE[read]
        assert after[read] <= allowed, (read, allowed, before, after)
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


def add_month(patients, now) -> None:
    """The month the pages show, for the patient and the others: the month's partitions hold
    every patient's readings, in the first run as in the second."""
    for patient in patients:
        generate_readings(
            patient_id=patient.pk,
            metric="glucose",
            unit="mg/dL",
            until=now,
            count=MONTH,
            every=FIVE_MINUTES,
            source="nightscout",
        )


def add_history(patients, now, first_id: int) -> int:
    """Eleven months before the month, for every patient, with ids below the month's (taken
    before it), as readings stored before it have."""
    return sum(
        generate_readings(
            patient_id=patient.pk,
            metric="glucose",
            unit="mg/dL",
            until=now - MONTH * FIVE_MINUTES,
            count=HISTORY,
            every=FIVE_MINUTES,
            first_id=first_id + index * HISTORY,
        )
        for index, patient in enumerate(patients)
    )


def measured_twice(patient, team, now, action) -> tuple[dict, dict]:
    patients = [patient, PatientFactory(care_team=team), PatientFactory(care_team=team)]
    history_ids = reserve_reading_ids(len(patients) * HISTORY)
    add_month(patients, now)
    with rolled_back():
        action()  # once first: Django caches content types and permissions on first use
    before = cost(action)
    assert add_history(patients, now, history_ids) >= 10 * len(patients) * MONTH
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

    # then: the query of the pending readings reads the partial index, our one row only (on
    # the partitioned table: each partition's own copy of it, one probe per partition)
    (pending,) = [
        query["sql"] for query in queries.captured_queries
        if '"evaluated_at" IS NULL' in query["sql"] and query["sql"].startswith("SELECT")
    ]  # fmt: skip
    plan = explain(pending, None)
    used = indexes_used(plan)
    assert used and used <= indexes_of("reading_unevaluated"), used
    assert rows_read(plan) == 1


def test_the_pending_readings_of_patients_evaluated_together_are_served_per_patient(
    cgm_patient, team, now
):
    # given: another patient's backlog of 20,000 unevaluated readings, and one reading each
    # of two patients evaluated together
    other = PatientFactory(care_team=team)
    generate_readings(patient_id=other.pk, metric="glucose", unit="mg/dL", until=now,
                      count=20_000, every=FIVE_MINUTES)  # fmt: skip
    Reading.objects.filter(patient=other).update(evaluated_at=None)
    second = enrol_patient(
        external_id="MRN-CGM-2",
        name="Second Patient",
        timezone="Europe/Paris",
        care_team=team,
        protocols=["diabetes"],
    )
    for patient in (cgm_patient, second):
        ReadingFactory(patient=patient, metric="glucose", value=120, unit="mg/dL",
                       measured_at=now, received_at=now, evaluated_at=None)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE monitoring_reading")

    # when
    with CaptureQueriesContext(connection) as queries, rolled_back():
        evaluated = evaluate_patients_together(patient_ids=[cgm_patient.pk, second.pk], now=now)

    # then: one query of both patients' pending readings, an index probe per patient
    assert evaluated == 2
    (pending,) = [
        query["sql"] for query in queries.captured_queries
        if '"evaluated_at" IS NULL' in query["sql"] and query["sql"].startswith("SELECT")
    ]  # fmt: skip
    plan = explain(pending, None)
    used = indexes_used(plan)
    assert used and used <= indexes_of("reading_unevaluated"), used
    assert rows_read(plan) == 2


def indexes_used(plan: dict) -> set[str]:
    """The indexes the plan's scans of readings read."""
    own = {plan["Index Name"]} if "Index Name" in plan else set()
    return own.union(*(indexes_used(child) for child in plan.get("Plans", [])))


def indexes_of(parent: str) -> set[str]:
    """The index, and on a partitioned table each partition's index attached to it (named by
    PostgreSQL, e.g. monitoring_reading_2026_12_patient_id_received_at_idx)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            [parent],
        )
        return {parent} | {name for (name,) in cursor.fetchall()}
