"""The readings table's monthly partitions (PostgreSQL): made ahead, idempotent, DEFAULT
takes what no month holds and gives it back when its month is made; the migration converts
a table with rows and keeps every reading, key, index and id."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from monitoring.models import Reading, ReadingKey, Slot
from monitoring.partitions import (
    DEFAULT,
    create_month_partition,
    ensure_reading_partitions,
    monthly_partitions,
    partition_name,
)
from tests.factories import PatientFactory, ReadingFactory, SlotFactory

pytestmark = pytest.mark.postgres

DECEMBER = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


def partition_of(reading: Reading) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM monitoring_reading WHERE id = %s", [reading.pk]
        )
        return cursor.fetchone()[0]


def drop_partition(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.django_db
def test_the_job_makes_this_month_and_the_next_three_once(settings, time_machine):
    # given: a clock past the months the migration made
    settings.VIGIL_READING_PARTITIONS_AHEAD = 3
    time_machine.move_to(datetime(2027, 11, 15, tzinfo=UTC), tick=False)

    # when
    first = ensure_reading_partitions()
    second = ensure_reading_partitions()

    # then
    made = [
        "monitoring_reading_2027_11",
        "monitoring_reading_2027_12",
        "monitoring_reading_2028_01",
        "monitoring_reading_2028_02",
    ]
    assert first == made
    assert second == []
    names = [partition.name for partition in monthly_partitions()]
    assert names[-4:] == made
    assert monthly_partitions()[-1].end == datetime(2028, 3, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_a_reading_no_month_holds_goes_to_default_and_moves_out_when_its_month_is_made():
    # given: a reading of 2005 (validation accepts back to 2000) and none of its month
    patient = PatientFactory()
    old = ReadingFactory(patient=patient, measured_at=datetime(2005, 6, 7, 8, 0, tzinfo=UTC))
    other = ReadingFactory(patient=patient, measured_at=datetime(2005, 7, 1, 0, 0, tzinfo=UTC))
    assert partition_of(old) == partition_of(other) == DEFAULT

    # when
    made = create_month_partition(datetime(2005, 6, 1, tzinfo=UTC))
    again = create_month_partition(datetime(2005, 6, 1, tzinfo=UTC))

    # then: the June reading moved, the July one stays; nothing lost, nothing doubled
    assert (made, again) == (True, False)
    assert partition_of(old) == "monitoring_reading_2005_06"
    assert partition_of(other) == DEFAULT
    assert Reading.objects.filter(patient=patient).count() == 2
    assert Reading.objects.get(pk=old.pk).client_id == old.client_id


@pytest.mark.django_db
def test_an_insert_lands_in_its_months_partition():
    reading = ReadingFactory(measured_at=DECEMBER)

    assert partition_of(reading) == partition_name(datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.django_db
def test_partitions_are_pruned_for_a_patients_window():
    # given
    patient = PatientFactory()
    ReadingFactory(patient=patient, measured_at=DECEMBER)

    # when: the readings list's query shape, one patient's last days
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT id FROM monitoring_reading WHERE patient_id = %s "
            "AND measured_at >= %s AND measured_at < %s ORDER BY measured_at DESC, id DESC",
            [patient.pk, DECEMBER - timedelta(days=3), DECEMBER + timedelta(hours=1)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # then: only December's partition is read, not DEFAULT nor the months after
    assert "monitoring_reading_2026_12" in plan
    assert "monitoring_reading_2027_01" not in plan
    assert DEFAULT not in plan


# --- The migration converts a table with rows ----------------------------------------------

BEFORE = [("monitoring", "0015_reading_entry_source_trend_indexes")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def latest():
    """Every app's last migration: going back to monitoring 0015 also unapplies the other
    apps' migrations that depend on later monitoring ones (alerts, program), so all of them
    are applied again."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def reading_columns() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, patient_id, client_id, measured_at, fingerprint, device_id "
            "FROM monitoring_reading ORDER BY id"
        )
        return cursor.fetchall()


def index_definitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'monitoring_reading'")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_a_table_with_rows_and_back():
    # given: the plain table of migration 0015, with readings of several months and a slot
    # fulfilled by one of them (the patient made first: later migrations add patient columns)
    patient = PatientFactory()
    try:
        at_0015_then_converted_and_back(patient)
    finally:
        migrate(latest())


def at_0015_then_converted_and_back(patient) -> None:
    migrate(BEFORE)
    months = [datetime(2024, 2, 29, 23, 59, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), DECEMBER]
    with connection.cursor() as cursor:
        for n, at in enumerate(months):
            cursor.execute(
                "INSERT INTO monitoring_reading (client_id, metric, value, unit, sent_unit, "
                "context, medication, dose_status, measured_at, utc_offset_minutes, received_at, "
                "source, device_serial, fingerprint, patient_id, entry, trend) VALUES (%s, "
                "'weight', %s, 'kg', 'kg', '', '', '', %s, 0, %s, 'app', '', %s, %s, 'manual', "
                "'')",
                [uuid.uuid4(), 80.0 + n, at, at, f"f{n}", patient.pk],
            )
        cursor.execute("SELECT max(id) FROM monitoring_reading")
        (last_id,) = cursor.fetchone()
    before = reading_columns()

    # when
    migrate([("monitoring", "0016_reading_partitions_idempotency_keys")])
    converted_then_back(patient, before, last_id)


def converted_then_back(patient, before: list[tuple], last_id: int) -> None:
    # then: every row, its key, the indexes of Reading.Meta on the parent, ids continue
    assert reading_columns() == before
    assert sorted(ReadingKey.objects.values_list("reading_id", "measured_at", "fingerprint")) == [
        (row[0], row[3], row[4]) for row in before
    ]
    assert {p.name for p in monthly_partitions()} >= {
        "monitoring_reading_2024_02",
        "monitoring_reading_2026_03",
        "monitoring_reading_2026_12",
    }
    assert index_definitions() == {
        "monitoring_reading_pkey",
        "reading_patient_metric_time",
        "reading_patient_time",
        "reading_device",
        "reading_unevaluated",
    }
    fresh = ReadingFactory(patient=patient, measured_at=DECEMBER)
    assert fresh.pk == last_id + 1
    after = reading_columns()

    # and back: one plain table again, every row kept, the unique key back
    migrate(BEFORE)
    assert reading_columns() == after
    assert "reading_client_id_unique_per_patient" in index_definitions()


@pytest.mark.django_db
def test_a_slot_fulfilled_by_a_reading_keeps_django_s_set_null():
    # given
    patient = PatientFactory()
    reading = ReadingFactory(patient=patient, measured_at=DECEMBER)
    slot = SlotFactory(schedule__patient=patient, status="done", fulfilled_by=reading)

    # when
    reading.delete()

    # then
    slot.refresh_from_db()
    assert slot.fulfilled_by_id is None
    assert Slot.objects.filter(pk=slot.pk).count() == 1


@pytest.mark.django_db
def test_a_reading_is_found_by_its_client_id_through_its_key_in_its_partition_alone():
    # given: two patients' readings, one of them with the same client id
    patient, other = PatientFactory(), PatientFactory()
    wanted = ReadingFactory(patient=patient, measured_at=DECEMBER)
    ReadingFactory(patient=patient, measured_at=DECEMBER - timedelta(hours=1))
    ReadingFactory(patient=other, client_id=wanted.client_id, measured_at=DECEMBER)
    found = Reading.objects.by_client_id(patient_id=patient.pk, client_id=wanted.client_id)

    # when
    plan = found.explain(analyze=True)

    # then: that reading, read in its month's partition only (the others pruned at run time)
    assert list(found) == [wanted]
    read = [
        line.split(" on ")[1].split()[0]
        for line in plan.splitlines()
        if " on monitoring_reading_" in line and "never executed" not in line
    ]
    assert read == ["monitoring_reading_2026_12"]
    assert list(Reading.objects.by_client_id(patient_id=other.pk, client_id=uuid.uuid4())) == []
