"""A long history of readings, written by PostgreSQL itself (INSERT … SELECT generate_series):
hundreds of thousands of rows in a second or two, for the tests that a page or a hot query
reads its window and not the history before it (tests/monitoring/test_reading_paths.py).
Every row is evaluated already, so no evaluation is pending but the test's own.

As in production: each month of the history has its partition (the beat job
`maintain-reading-partitions` creates them ahead, and moves a late month out of DEFAULT when
it creates it; the test database has only the months migration 0016 made), and each
reading has its idempotency key (ingest writes both in one statement)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db import connection

from monitoring.partitions import add_months, create_month_partition, is_partitioned, month_start


def ensure_month_partitions(first: datetime, last: datetime) -> None:
    """A partition for every month from `first`'s to `last`'s (PostgreSQL, partitioned)."""
    if not is_partitioned():
        return
    month = month_start(first)
    while month <= last:
        create_month_partition(month)
        month = add_months(month, 1)


def generate_readings(
    *,
    patient_id: int,
    metric: str,
    unit: str,
    until: datetime,
    count: int,
    every: timedelta,
    source: str = "device",
    entry: str = "device",
    first_id: int | None = None,
) -> int:
    """`count` readings of the patient, one every `every`, the last at `until` (values swing
    70–250 for glucose, 110–170/70–100 for blood pressure, else 60–100); returns `count`.

    Ids come from the sequence, growing with time, or from `first_id` on (ids reserved by
    `reserve_reading_ids`: a history written after the readings it precedes still has the
    lower ids, as it would have had arriving first)."""
    blood_pressure = metric == "blood_pressure"
    ensure_month_partitions(until - (count - 1) * every, until)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH stored AS (
            INSERT INTO monitoring_reading (
                {id_column}patient_id, client_id, metric, value, unit, systolic, diastolic,
                sent_value, sent_unit, context, medication, dose_status, measured_at,
                utc_offset_minutes, received_at, source, entry, device_serial, trend,
                fingerprint, evaluated_at, evaluation_error
            )
            SELECT {id_value}%(patient)s, gen_random_uuid(), %(metric)s,
                   CASE WHEN %(bp)s THEN NULL ELSE %(low)s + (n * 7) %% %(span)s END,
                   %(unit)s,
                   CASE WHEN %(bp)s THEN 110 + (n * 7) %% 60 END,
                   CASE WHEN %(bp)s THEN 70 + (n * 3) %% 30 END,
                   CASE WHEN %(bp)s THEN NULL ELSE %(low)s + (n * 7) %% %(span)s END,
                   %(unit)s, '', '', '', at, 0, at, %(source)s, %(entry)s, '', '',
                   md5(n::text), at, ''
            FROM generate_series(0, %(count)s - 1) AS n,
                 LATERAL (SELECT %(until)s::timestamptz - n * %(every)s::interval AS at) AS t
            ORDER BY at  -- ids grow with time, as they do when readings arrive
            RETURNING patient_id, client_id, id, measured_at, fingerprint
            )
            INSERT INTO monitoring_readingkey (
                patient_id, client_id, reading_id, measured_at, fingerprint
            )
            SELECT patient_id, client_id, id, measured_at, fingerprint FROM stored
            """.format(
                id_column="" if first_id is None else "id, ",
                # n counts back from `until`: the oldest reading takes the first id.
                id_value="" if first_id is None else "%(first_id)s + %(count)s - 1 - n, ",
            ),
            {
                "patient": patient_id,
                "metric": metric,
                "bp": blood_pressure,
                "low": 70 if metric == "glucose" else 60,
                "span": 180 if metric == "glucose" else 40,
                "unit": unit,
                "until": until,
                "count": count,
                "every": every,
                "source": source,
                "entry": entry,
                "first_id": first_id,
            },
        )
        # Statistics of every table, as autovacuum keeps them in production: the test's
        # patients, teams and memberships were never analyzed, and the planner's guesses
        # about them decide whether a page is read in index order or sorted whole.
        cursor.execute("ANALYZE")
    return count


def reserve_reading_ids(count: int) -> int:
    """Take `count` ids off the readings' sequence for `generate_readings(first_id=…)`;
    returns the first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('monitoring_reading_id_seq')")
        (first,) = cursor.fetchone()
        cursor.execute("SELECT setval('monitoring_reading_id_seq', %s)", [first + count])
    return first


def explain(sql: str, params) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of one captured query: its top plan node."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
        (document,) = cursor.fetchone()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    return plan


def buffers(plan: dict) -> int:
    """Shared buffers a plan touched (hit + read), its sub-plans included."""
    return plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)


def rows_read(plan: dict) -> int:
    """Rows every scan node of the plan produced or filtered away: what it read."""
    own = 0
    # A bitmap index scan's rows are the ones its heap scan reads: counted there.
    if "Scan" in plan["Node Type"] and plan["Node Type"] != "Bitmap Index Scan":
        loops = plan.get("Actual Loops", 1)
        own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return own + sum(rows_read(child) for child in plan.get("Plans", []))
