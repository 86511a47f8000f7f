"""Retention per data class, as the clinic's records policy says (docs/retention.md).

Every class is kept forever unless its setting says otherwise; nothing is deleted by default.

- Raw readings (`VIGIL_RETAIN_READINGS`), with their idempotency keys and the hourly CGM
  summaries derived from them: kept at least that long. On PostgreSQL a month's partition is
  dropped once every row in it is past retention (so a row may outlive its retention by up
  to a month, never the reverse); rows in the DEFAULT partition, and on SQLite the table's
  rows, go by the same cut-off, the start of the month that holds `now - retention`.
- Raw CGM readings (`VIGIL_CGM_RAW_REPLACED_AFTER`, only where the clinic chooses): the
  evaluated CGM glucose readings older than that are replaced, per patient and clock hour,
  by a CgmHourlySummary (count, sum, sum of squares, min, max). Their keys stay, so a late
  retry of one is still a duplicate and is not counted twice.
- Alerts (`VIGIL_RETAIN_ALERTS`): resolved alerts resolved longer ago, with their events
  and notifications; open and acknowledged alerts are never deleted.
- Audit events (`VIGIL_RETAIN_AUDIT`): events older than that; the PostgreSQL trigger lets
  this job, and only for events before the cut-off it states, past the append-only rule.

Idempotent: a second run finds nothing more to do. Every step is its own transaction(s).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.lifecycle import delete_resolved_alerts
from monitoring.models import (
    AuditEvent,
    CgmHourlySummary,
    DeviceKind,
    Entry,
    Metric,
    Reading,
    ReadingKey,
    ReadingSource,
    Slot,
)
from monitoring.partitions import DEFAULT, PARENT, is_partitioned, month_start, partitions_ending_by

logger = logging.getLogger(__name__)

CHUNK = 2000  # ids per statement: within SQLite's bound on parameters, cheap on PostgreSQL

# Raw CGM readings: glucose a device measured, from a CGM or through a CGM uploader.
CGM_READINGS = Q(metric=Metric.GLUCOSE, entry=Entry.DEVICE) & (
    Q(device__kind=DeviceKind.CGM) | Q(source=ReadingSource.NIGHTSCOUT)
)


def apply_retention(*, now: datetime | None = None) -> dict[str, int]:
    """Apply every data class's retention setting; returns what each step removed.

    Writes: CgmHourlySummary rows; deletes readings, their keys, summaries, alerts, audit
    events past retention (and clears a slot's `fulfilled_by` that named a deleted reading).
    """
    now = now or timezone.now()
    done: dict[str, int] = {}
    if settings.VIGIL_CGM_RAW_REPLACED_AFTER is not None:
        done["cgm_readings_replaced"] = replace_cgm_readings(
            before=now - settings.VIGIL_CGM_RAW_REPLACED_AFTER
        )
    if settings.VIGIL_RETAIN_READINGS is not None:
        done.update(delete_readings(before=month_start(now - settings.VIGIL_RETAIN_READINGS)))
    if settings.VIGIL_RETAIN_ALERTS is not None:
        # Alerts are written by alerts.lifecycle alone, their deletion included.
        done["alerts"] = delete_resolved_alerts(before=now - settings.VIGIL_RETAIN_ALERTS)
    if settings.VIGIL_RETAIN_AUDIT is not None:
        done["audit_events"] = delete_audit_events(before=now - settings.VIGIL_RETAIN_AUDIT)
    logger.info("retention applied: %s", done)
    return done


# --- Raw CGM replaced by hourly summaries --------------------------------------------------


def replace_cgm_readings(*, before: datetime) -> int:
    """Replace each patient's evaluated raw CGM readings measured before the clock hour
    holding `before` by hourly summaries; returns how many readings were replaced."""
    before = before.replace(minute=0, second=0, microsecond=0)
    waiting = Reading.objects.filter(
        CGM_READINGS, measured_at__lt=before, evaluated_at__isnull=False
    )
    patient_ids = list(waiting.values_list("patient_id", flat=True).distinct().order_by())
    return sum(_replace_patient_cgm(patient_id, before=before) for patient_id in patient_ids)


def _replace_patient_cgm(patient_id: int, *, before: datetime) -> int:
    with transaction.atomic():
        # Locked: a second run at the same time waits, then finds them gone (never counts
        # a reading into a summary twice). SQLite's IMMEDIATE transactions serialise anyway.
        rows = list(
            Reading.objects.filter(
                CGM_READINGS,
                patient_id=patient_id,
                measured_at__lt=before,
                evaluated_at__isnull=False,
            )
            .select_for_update(of=("self",))
            .values_list("id", "measured_at", "value", "unit")
            .order_by()
        )
        if not rows:
            return 0
        _add_to_summaries(patient_id, rows)
        _delete_readings_by_id(patient_id, [row[0] for row in rows], before=before)
    return len(rows)


def _add_to_summaries(patient_id: int, rows: list[tuple]) -> None:
    hours: dict[tuple, list[float]] = defaultdict(list)
    for _id, measured_at, value, unit in rows:
        hours[(measured_at.replace(minute=0, second=0, microsecond=0), unit)].append(value)
    table = CgmHourlySummary._meta.db_table
    # Additive, so an hour replaced in two runs (a late upload) sums exactly.
    sql = (
        f"INSERT INTO {table} (patient_id, hour, unit, count, total, total_of_squares, "
        "minimum, maximum) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (patient_id, hour) DO UPDATE SET "
        f"count = {table}.count + excluded.count, "
        f"total = {table}.total + excluded.total, "
        f"total_of_squares = {table}.total_of_squares + excluded.total_of_squares, "
        f"minimum = CASE WHEN excluded.minimum < {table}.minimum "
        f"THEN excluded.minimum ELSE {table}.minimum END, "
        f"maximum = CASE WHEN excluded.maximum > {table}.maximum "
        f"THEN excluded.maximum ELSE {table}.maximum END"
    )
    params = [
        (
            patient_id,
            _db_time(hour),
            unit,
            len(values),
            sum(values),
            sum(value * value for value in values),
            min(values),
            max(values),
        )
        for (hour, unit), values in sorted(hours.items())
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _delete_readings_by_id(patient_id: int, ids: list[int], *, before: datetime) -> None:
    """Delete these readings of the patient, all measured before `before` (which spares the
    partitions after it), clearing any slot they fulfilled. Their keys stay."""
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        Slot.objects.filter(fulfilled_by_id__in=chunk).update(fulfilled_by=None)
        placeholders = ", ".join(["%s"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {PARENT} WHERE patient_id = %s AND measured_at < %s "
                f"AND id IN ({placeholders})",
                [patient_id, _db_time(before), *chunk],
            )


# --- Raw readings past the records policy -------------------------------------------------


def delete_readings(*, before: datetime) -> dict[str, int]:
    """Delete the readings measured before `before` (a month's start), their keys and the
    hourly summaries of those months. On PostgreSQL whole partitions are dropped."""
    dropped = 0
    if is_partitioned():
        for partition in partitions_ending_by(before):
            _drop_partition(partition.name)
            dropped += 1
        deleted = _delete_rows(DEFAULT, before=before)
    else:
        deleted = _delete_rows(PARENT, before=before)
    summaries, _ = CgmHourlySummary.objects.filter(hour__lt=before).delete()
    return {"reading_partitions_dropped": dropped, "readings": deleted, "cgm_summaries": summaries}


def _drop_partition(name: str) -> None:
    slots, keys = Slot._meta.db_table, ReadingKey._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # Deferred foreign-key checks still pending in this transaction would block the drop.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # No late reading may slip in between clearing its references and the drop.
        cursor.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"UPDATE {slots} SET fulfilled_by_id = NULL "
            f"WHERE fulfilled_by_id IN (SELECT id FROM {name})"
        )
        cursor.execute(
            f"DELETE FROM {keys} USING {name} AS reading "
            f"WHERE {keys}.patient_id = reading.patient_id "
            f"AND {keys}.client_id = reading.client_id"
        )
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
        cursor.execute(f"DROP TABLE {name}")
    logger.info("reading partition %s dropped past retention", name)


def _delete_rows(table: str, *, before: datetime) -> int:
    slots, keys = Slot._meta.db_table, ReadingKey._meta.db_table
    at = _db_time(before)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {slots} SET fulfilled_by_id = NULL WHERE fulfilled_by_id IN "
            f"(SELECT id FROM {table} WHERE measured_at < %s)",
            [at],
        )
        cursor.execute(
            f"DELETE FROM {keys} WHERE (patient_id, client_id) IN "
            f"(SELECT patient_id, client_id FROM {table} WHERE measured_at < %s)",
            [at],
        )
        cursor.execute(f"DELETE FROM {table} WHERE measured_at < %s", [at])
        return cursor.rowcount


# --- Audit ---------------------------------------------------------------------


def delete_audit_events(*, before: datetime) -> int:
    """Delete audit events recorded before `before`. On PostgreSQL the transaction states
    the cut-off, and the trigger refuses the deletion of any event at or after it."""
    table = AuditEvent._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('vigil.audit_retention_before', %s, true)",
                [before.isoformat()],
            )
        cursor.execute(f"DELETE FROM {table} WHERE at < %s", [_db_time(before)])
        return cursor.rowcount


def _db_time(value: datetime) -> object:
    """A datetime as the database compares it (SQLite: naive UTC text, as Django stores it)."""
    return connection.ops.adapt_datetimefield_value(value)
