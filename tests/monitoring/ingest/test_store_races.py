"""Idempotency on the partitioned readings table (PostgreSQL): the (patient, client id) key
lives in ReadingKey, claimed in the insert's own statement, so racing retries of
overlapping batches from several connections store each reading once, whichever partition
its measured_at sends it to, and an id re-sent with another time is a conflict even when
that time falls in another partition."""

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitoring.ingest import record_readings
from monitoring.models import Reading, ReadingKey
from monitoring.partitions import DEFAULT, add_months, month_start, partition_name
from tests.factories import PatientFactory, ReadingItemFactory
from tests.monitoring.ingest.helpers import CONFLICT_ERRORS

pytestmark = pytest.mark.postgres

# The migration makes this month's partition and the next ones; 2005 has none (DEFAULT).
THIS_MONTH = month_start(timezone.now())
NEXT_MONTH = add_months(THIS_MONTH, 1)
RECEIVED = NEXT_MONTH + timedelta(days=1)  # so that next month's readings are not future
TIMES = [THIS_MONTH + timedelta(hours=5), NEXT_MONTH + timedelta(hours=6)]
LONG_AGO = datetime(2005, 6, 7, 8, 0, tzinfo=UTC)


def items_across_partitions(count: int) -> list[dict]:
    """Items spread over this month, next month and DEFAULT; every 5th a BP with a pulse."""
    items = []
    for n in range(count):
        at = [*TIMES, LONG_AGO][n % 3] + timedelta(minutes=n)
        kind = {"type": "blood_pressure", "pulse": 70} if n % 5 == 0 else {"value": 100 + n}
        items.append(ReadingItemFactory(measured_at=at.isoformat(), **kind))
    return items


def partitions_of_patient(patient) -> Counter:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM monitoring_reading WHERE patient_id = %s",
            [patient.pk],
        )
        return Counter(name for (name,) in cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_racing_overlapping_batches_on_several_connections_store_each_reading_once(
    run_concurrently,
):
    # given: 60 readings over three partitions; 6 batches, each a shuffled overlapping subset
    patient = PatientFactory()
    items = items_across_partitions(60)
    rng = random.Random(15)
    batches = []
    for n in range(6):
        chosen = {item["id"]: item for item in items[n::6] + rng.sample(items, 30)}
        batch = list(chosen.values())
        rng.shuffle(batch)
        batches.append(batch)
    senders = Counter(item["id"] for batch in batches for item in batch)

    # when: each batch on its own connection, released at once
    results = run_concurrently(
        *[
            lambda batch=batch: record_readings(patient=patient, items=batch, received_at=RECEIVED)
            for batch in batches
        ]
    )

    # then: each id created by exactly one request, a duplicate for every other
    seen: dict[str, Counter] = {}
    for result in results:
        for item in result.results:
            seen.setdefault(item.id, Counter())[item.status] += 1
    assert seen == {
        item_id: Counter({"created": 1, "duplicate": count - 1} if count > 1 else {"created": 1})
        for item_id, count in senders.items()
    }
    pulses = sum(1 for item in items if "pulse" in item)
    assert Reading.objects.filter(patient=patient).count() == 60 + pulses
    # one key per stored reading, pointing at it, with its time and fingerprint
    stored = {
        (r.client_id, r.pk, r.measured_at, r.fingerprint)
        for r in Reading.objects.filter(patient=patient)
    }
    keys = set(
        ReadingKey.objects.filter(patient=patient).values_list(
            "client_id", "reading_id", "measured_at", "fingerprint"
        )
    )
    assert keys == stored
    # and the readings sit in the three partitions their times name
    assert partitions_of_patient(patient) == {
        partition_name(THIS_MONTH): 20 + 4,
        partition_name(NEXT_MONTH): 20 + 4,
        DEFAULT: 20 + 4,
    }


@pytest.mark.django_db(transaction=True)
def test_racing_retries_of_one_batch_across_partitions_create_it_once(run_concurrently):
    # given
    patient = PatientFactory()
    items = items_across_partitions(30)

    # when: 5 retries of the same batch at once
    results = run_concurrently(
        *[lambda: record_readings(patient=patient, items=items, received_at=RECEIVED)] * 5
    )

    # then
    assert sorted(result.created for result in results) == [0, 0, 0, 0, 30]
    assert Reading.objects.filter(patient=patient).count() == 30 + 6
    assert ReadingKey.objects.filter(patient=patient).count() == 30 + 6


@pytest.mark.django_db
def test_an_id_resent_with_a_time_in_another_partition_is_a_conflict_and_stores_nothing():
    # given: a reading stored in this month's partition
    patient = PatientFactory()
    item = ReadingItemFactory(measured_at=TIMES[0].isoformat(), value=120)
    record_readings(patient=patient, items=[item], received_at=RECEIVED)

    # when: the same id, measured in 2005 (DEFAULT), so no partition's own index could see it
    resent = {**item, "measured_at": LONG_AGO.isoformat()}
    result = record_readings(patient=patient, items=[resent], received_at=RECEIVED)

    # then
    assert result.as_dict()["results"] == [
        {"id": item["id"], "status": "conflict", "errors": CONFLICT_ERRORS}
    ]
    assert list(Reading.objects.filter(patient=patient).values_list("measured_at", flat=True)) == [
        TIMES[0]
    ]
    assert partitions_of_patient(patient) == {partition_name(THIS_MONTH): 1}


@pytest.mark.django_db
def test_a_duplicate_is_classified_from_its_key_without_reading_the_readings_table(
    django_assert_max_num_queries,
):
    # given
    patient = PatientFactory()
    item = ReadingItemFactory(measured_at=TIMES[0].isoformat())
    record_readings(patient=patient, items=[item], received_at=RECEIVED)

    # when
    with django_assert_max_num_queries(10) as queries:
        result = record_readings(patient=patient, items=[item], received_at=RECEIVED)

    # then: a duplicate; the only statements naming the readings table are the insert's
    assert result.as_dict()["duplicates"] == 1
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if "monitoring_reading " in q["sql"] and "INSERT" not in q["sql"]
    ]
    assert reads == []
    assert uuid.UUID(item["id"]) in set(
        ReadingKey.objects.filter(patient=patient).values_list("client_id", flat=True)
    )
