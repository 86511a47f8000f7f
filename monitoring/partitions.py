"""The readings table's monthly partitions on PostgreSQL: created ahead, dropped past retention.

`monitoring_reading` is partitioned by range of `measured_at`, one partition per calendar
month in UTC (`monitoring_reading_2026_12`), plus a DEFAULT partition that takes any row no
monthly partition holds (a device's very old backlog, a clock far off): an insert never
fails for want of a partition. Why `measured_at` and why monthly: docs/retention.md.

A beat job (`maintain_reading_partitions_task`) creates the current month's partition and
`VIGIL_READING_PARTITIONS_AHEAD` months after it, so ordinary readings never land in DEFAULT.
Creating a month that DEFAULT already holds rows of (a month in the past, or one the job
did not create in time) moves those rows into the new partition in the same transaction, as
PostgreSQL refuses to attach a partition DEFAULT holds rows of. Every operation is
idempotent: a second run finds the partitions there and does nothing.

On SQLite (the embedded default) the table is a plain table and these are no-ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

PARENT = "monitoring_reading"
DEFAULT = "monitoring_reading_default"
PARTITIONS_LOCK = 7303


def month_start(at: datetime) -> datetime:
    """The first instant (UTC) of the calendar month, in UTC, that holds `at`."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_{start:%Y_%m}"


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def monthly_partitions() -> list[Partition]:
    """The monthly partitions that exist, oldest first (DEFAULT is not one of them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
            FROM pg_inherits
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE pg_inherits.inhparent = to_regclass(%s) AND child.relname <> %s
            """,
            [PARENT, DEFAULT],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, _bound in rows:
        start = datetime.strptime(name.removeprefix(f"{PARENT}_"), "%Y_%m").replace(tzinfo=UTC)
        partitions.append(Partition(name, start, add_months(start, 1)))
    return sorted(partitions, key=lambda partition: partition.start)


def create_month_partition(start: datetime) -> bool:
    """Create the partition of the month starting at `start` unless it exists; True if created.

    Writes: the partition; rows of that month moved out of DEFAULT if it held any.
    """
    name, end = partition_name(start), add_months(start, 1)
    bounds = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    with transaction.atomic(), connection.cursor() as cursor:
        # Two runs at once: the second waits here, then finds the partition made. (Class
        # 7303 beside the evaluation's 7301 and the nudges' 7302 per-patient locks.)
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [PARTITIONS_LOCK])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return False
        # Nothing may land in DEFAULT while its rows of this month move: lock it first (the
        # attach below needs this lock anyway), then look.
        cursor.execute(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE")
        in_range = "measured_at >= %s AND measured_at < %s"
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE {in_range})", [start, end])
        if not cursor.fetchone()[0]:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} {bounds}")
            return True
        # DEFAULT holds rows of this month: a partition cannot be attached over them. Build
        # it beside the table, move the rows, then attach it; the CHECK spares the attach a
        # scan of what was just moved (PostgreSQL proves the bound from it).
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE {in_range} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        cursor.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK ({in_range})", [start, end]
        )
        cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {bounds}")
        cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bound")
    return True


def ensure_reading_partitions(
    *, now: datetime | None = None, months_ahead: int | None = None
) -> list[str]:
    """Create this month's partition and the next `months_ahead` (default: the setting).

    Returns the names created (none on a second run, none on SQLite).
    """
    if not is_partitioned():
        return []
    if months_ahead is None:
        months_ahead = settings.VIGIL_READING_PARTITIONS_AHEAD
    first = month_start(now or timezone.now())
    created = []
    for offset in range(months_ahead + 1):
        start = add_months(first, offset)
        if create_month_partition(start):
            created.append(partition_name(start))
    return created


def partitions_ending_by(cutoff: datetime) -> list[Partition]:
    """The monthly partitions every row of which measured before `cutoff`."""
    return [partition for partition in monthly_partitions() if partition.end <= cutoff]
