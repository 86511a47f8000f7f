"""Readings partitioned by month of measured_at on PostgreSQL; idempotency keys in their own table.

A partitioned table's unique keys must include the partition key, so the (patient, client
id) guarantee moves to `monitoring_readingkey` (primary key (patient, client id)), filled
here from the stored readings; the readings' own unique constraint goes. `Slot.fulfilled_by`
loses its database constraint: `id` alone is no longer a key PostgreSQL can reference
(the readings' primary key becomes (id, measured_at)); Django keeps its SET NULL.

PostgreSQL only, the table is converted with its rows: renamed aside, a partitioned table of
the same columns created in its place (monthly partitions for every month that holds rows,
this month and the next VIGIL_READING_PARTITIONS_AHEAD, a DEFAULT partition), the rows
copied, the foreign keys and every index of Reading.Meta recreated on the parent, the old
table dropped. The id sequence continues where the old identity column was. It holds an
ACCESS EXCLUSIVE lock on the readings for its duration (measured: docs/retention.md). On
SQLite the table stays a plain table. Reversible (back to one plain table).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PARENT = "monitoring_reading"
ASIDE = "monitoring_reading_unpartitioned"
DEFAULT = "monitoring_reading_default"
SEQUENCE = "monitoring_reading_id_seq"


def fill_reading_keys(apps, schema_editor):
    # In key order: the primary key's B-tree then grows at its right edge instead of taking
    # random UUIDs (measured on 1M readings: 8 s instead of 25 s, and a denser index).
    schema_editor.execute(
        "INSERT INTO monitoring_readingkey (patient_id, client_id, reading_id, measured_at, "
        "fingerprint) SELECT patient_id, client_id, id, measured_at, fingerprint "
        "FROM monitoring_reading ORDER BY patient_id, client_id"
    )


def _month_partition_sql(year: int, month: int) -> str:
    end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {PARENT}_{year:04d}_{month:02d} PARTITION OF {PARENT} "
        f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00+00') "
        f"TO ('{end_year:04d}-{end_month:02d}-01 00:00+00')"
    )


def _sequence_position(cursor, table: str) -> tuple[int, bool]:
    cursor.execute(f"SELECT pg_get_serial_sequence('{table}', 'id')")
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
    return cursor.fetchone()


def _foreign_keys(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [table],
    )
    return cursor.fetchall()


def _months_with_rows(cursor, table: str) -> set[tuple[int, int]]:
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', measured_at AT TIME ZONE 'UTC') FROM {table}"
    )
    return {(month.year, month.month) for (month,) in cursor.fetchall()}


def _current_window(cursor) -> set[tuple[int, int]]:
    cursor.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')")
    (month,) = cursor.fetchone()
    index = month.year * 12 + month.month - 1
    ahead = settings.VIGIL_READING_PARTITIONS_AHEAD
    return {((index + n) // 12, (index + n) % 12 + 1) for n in range(ahead + 1)}


def partition_readings(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    Reading = apps.get_model("monitoring", "Reading")
    run = schema_editor.execute
    with schema_editor.connection.cursor() as cursor:
        last_value, is_called = _sequence_position(cursor, PARENT)
        foreign_keys = _foreign_keys(cursor, PARENT)
        run(f"ALTER TABLE {PARENT} RENAME TO {ASIDE}")
        # Dropping the identity drops its sequence, whose name the new one takes.
        run(f"ALTER TABLE {ASIDE} ALTER COLUMN id DROP IDENTITY")
        run(f"ALTER TABLE {ASIDE} DROP CONSTRAINT {PARENT}_pkey")
        for index in Reading._meta.indexes:
            run(f"DROP INDEX {index.name}")
        run(
            f"CREATE TABLE {PARENT} (LIKE {ASIDE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE) PARTITION BY RANGE (measured_at)"
        )
        run(f"CREATE SEQUENCE {SEQUENCE} AS bigint OWNED BY {PARENT}.id")
        cursor.execute("SELECT setval(%s, %s, %s)", [SEQUENCE, last_value, is_called])
        run(f"ALTER TABLE {PARENT} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        run(f"CREATE TABLE {DEFAULT} PARTITION OF {PARENT} DEFAULT")
        for year, month in sorted(_months_with_rows(cursor, ASIDE) | _current_window(cursor)):
            run(_month_partition_sql(year, month))
        # Rows first, keys and indexes after: building an index once is cheaper than
        # maintaining it row by row.
        run(f"INSERT INTO {PARENT} SELECT * FROM {ASIDE}")
        run(f"ALTER TABLE {PARENT} ADD CONSTRAINT {PARENT}_pkey PRIMARY KEY (id, measured_at)")
        for name, definition in foreign_keys:
            run(f"ALTER TABLE {PARENT} ADD CONSTRAINT {name} {definition}")
        for index in Reading._meta.indexes:
            schema_editor.add_index(Reading, index)
        run(f"DROP TABLE {ASIDE}")
        run(f"ANALYZE {PARENT}")


def unpartition_readings(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    Reading = apps.get_model("monitoring", "Reading")
    run = schema_editor.execute
    with schema_editor.connection.cursor() as cursor:
        last_value, is_called = _sequence_position(cursor, PARENT)
        foreign_keys = _foreign_keys(cursor, PARENT)
        run(f"ALTER TABLE {PARENT} RENAME TO {ASIDE}")
        run(f"ALTER TABLE {ASIDE} DROP CONSTRAINT {PARENT}_pkey")
        for index in Reading._meta.indexes:
            run(f"DROP INDEX {index.name}")
        run(
            f"CREATE TABLE {PARENT} (LIKE {ASIDE} INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        )
        run(f"ALTER TABLE {PARENT} ALTER COLUMN evaluation_error SET DEFAULT ''")
        run(f"INSERT INTO {PARENT} SELECT * FROM {ASIDE}")
        run(f"DROP TABLE {ASIDE}")  # its partitions and its sequence with it
        run(f"ALTER TABLE {PARENT} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{PARENT}', 'id'), %s, %s)",
            [last_value, is_called],
        )
        run(f"ALTER TABLE {PARENT} ADD CONSTRAINT {PARENT}_pkey PRIMARY KEY (id)")
        for name, definition in foreign_keys:
            run(f"ALTER TABLE {PARENT} ADD CONSTRAINT {name} {definition}")
        for index in Reading._meta.indexes:
            schema_editor.add_index(Reading, index)
        # Slot.fulfilled_by's constraint comes back with the reversed AlterField.


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0015_reading_entry_source_trend_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="slot",
            name="fulfilled_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="monitoring.reading",
            ),
        ),
        migrations.CreateModel(
            name="ReadingKey",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "patient_id",
                        "client_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="monitoring.patient",
                    ),
                ),
                ("client_id", models.UUIDField()),
                ("reading_id", models.BigIntegerField()),
                ("measured_at", models.DateTimeField()),
                ("fingerprint", models.CharField(max_length=64)),
            ],
        ),
        migrations.RunPython(fill_reading_keys, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="reading",
            name="reading_client_id_unique_per_patient",
        ),
        migrations.RunPython(partition_readings, unpartition_readings),
    ]
