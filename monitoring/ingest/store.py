"""Writing a validated batch: one statement for the batch, the database deciding what is new.

The (patient, client id) key is claimed in ReadingKey in the same statement that inserts the
readings (the readings table is partitioned by time on PostgreSQL, so it cannot hold that
unique key itself: docs/retention.md).

Rows are sorted by key so concurrent retries of overlapping batches cannot deadlock
(docs/architecture.md measured it), and the evaluation is enqueued after commit.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
import zoneinfo
from dataclasses import dataclass, fields
from datetime import date, datetime
from functools import cache
from operator import attrgetter, itemgetter

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, OperationalError, connection, models, transaction
from django.utils import timezone

from config.celery import enqueue_coalesced_on_commit
from config.statements import hot_cursor
from monitoring.ingest.validation import ValidReading, echo_id, validate_item
from monitoring.models import (
    AuditEvent,
    Device,
    DeviceDay,
    Entry,
    Metric,
    Patient,
    Reading,
    ReadingKey,
    ReadingSource,
)
from monitoring.units import metric_units

logger = logging.getLogger(__name__)

# A BP reading's pulse is stored as its own heart-rate reading with an id derived from the
# BP id, so re-sending the BP re-derives the same id and stays idempotent.
PULSE_NAMESPACE = uuid.UUID("6f1d3c2e-8a53-4d0f-9a34-3c1f0b7e2a91")
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
MAX_INSERT_ATTEMPTS = 4


@dataclass(frozen=True)
class Channel:
    """The door a batch came in by: what its rows record as their source, the `entry` an
    item that does not say gets, and which internal fields its own mapping may set."""

    source: str
    default_entry: str
    internal: frozenset[str] = frozenset()


APP = Channel(ReadingSource.APP, Entry.MANUAL)
DEVICE_KEY = Channel(ReadingSource.DEVICE, Entry.DEVICE)
FHIR = Channel(ReadingSource.FHIR, Entry.DEVICE)
NIGHTSCOUT = Channel(ReadingSource.NIGHTSCOUT, Entry.DEVICE, frozenset({"trend"}))


class ItemStatus:
    CREATED = "created"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass
class ItemResult:
    id: str | None
    status: str
    errors: dict[str, list[str]] | None = None

    def as_dict(self) -> dict:
        data: dict = {"id": self.id, "status": self.status}
        if self.errors:
            data["errors"] = self.errors
        return data


@dataclass
class IngestResult:
    results: list[ItemResult]
    # Whether the upload's audit event (record_readings' `audit`) was written with it.
    audited: bool = False

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def created(self) -> int:
        return self.count(ItemStatus.CREATED)

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "duplicates": self.count(ItemStatus.DUPLICATE),
            "conflicts": self.count(ItemStatus.CONFLICT),
            "rejected": self.count(ItemStatus.REJECTED),
            "results": [result.as_dict() for result in self.results],
        }


# --- Writing the batch --------------------------------------------------------------------

# The insert's columns come from the model, in its field order. Each concrete field of
# Reading is either something the validated item carries (a ValidReading attribute of the
# same name), something the batch supplies (who sent it, when, through what), or left to the
# database (the key and the evaluation bookkeeping, which starts empty). A new Reading field
# is added to one of those three and the insert follows; a field in none of them fails at
# import, not in use. The batch's values, in the order _rows appends them to the item's:
FROM_THE_BATCH = ("patient", "received_at", "source", "device", "device_serial", "part_of")
LEFT_TO_THE_DATABASE = frozenset({"id", "evaluated_at", "evaluation_failed_at", "evaluation_error"})
FIELDS = tuple(f for f in Reading._meta.concrete_fields if f.name not in LEFT_TO_THE_DATABASE)
FROM_THE_ITEM = tuple(f.name for f in FIELDS if f.name not in FROM_THE_BATCH)
_unplaced = set(FROM_THE_ITEM) - {f.name for f in fields(ValidReading)}
if _unplaced:
    raise ImproperlyConfigured(f"Reading fields no ingest value is declared for: {_unplaced}")
COLUMNS = [field.column for field in FIELDS]
CLIENT_ID = COLUMNS.index("client_id")
PART_OF = COLUMNS.index("part_of")
ENTRY = COLUMNS.index("entry")
METRIC = COLUMNS.index("metric")
ITEM_INDEX = {name: index for index, name in enumerate(FROM_THE_ITEM)}
# Rows are built in C-level calls, as building them is on the measured path of every batch
# (benchmarks/README.md): the item's values in one attrgetter call, then the item's and the
# batch's values put in the model's order (the COLUMNS order) by one itemgetter call.
_item_values = attrgetter(*FROM_THE_ITEM)
_in_model_order = itemgetter(*((FROM_THE_ITEM + FROM_THE_BATCH).index(f.name) for f in FIELDS))

# A BP reading's pulse becomes a heart-rate reading of its own: the BP's time, device and
# fingerprint (of what was sent: the BP with its pulse), none of the BP's content, which is
# what this lists (an item field added later is copied from the BP unless it is listed here).
PULSE_CLEARED = {
    "systolic": None,
    "diastolic": None,
    "context": "",
    "medication": "",
    "dose_status": "",
    "scheduled_for": None,
}


def _pulse_values(reading: ValidReading, *, unit: str) -> tuple:
    values = list(_item_values(reading))
    changed = {
        **PULSE_CLEARED,
        "client_id": uuid.uuid5(PULSE_NAMESPACE, str(reading.client_id)),
        "metric": "heart_rate",
        "value": reading.pulse,
        "unit": unit,
        "sent_value": reading.pulse,
        "sent_unit": unit,
    }
    for name, value in changed.items():
        values[ITEM_INDEX[name]] = value
    return tuple(values)


def _rows(
    readings: list[ValidReading],
    *,
    patient_id: int,
    received_at: datetime,
    source: str,
    devices: dict[str, int],
    authenticated_device: Device | None,
) -> list[tuple]:
    """One row per reading (two for a BP with a pulse), values in COLUMNS order."""
    rows = []
    for reading in readings:
        if authenticated_device is not None:
            device_id = authenticated_device.pk
            # A device posting with its own key need not repeat its serial in every item.
            serial = reading.device_serial or authenticated_device.serial
        else:
            device_id, serial = devices.get(reading.device_serial), reading.device_serial
        # FROM_THE_BATCH's values, in its order.
        batch = (patient_id, received_at, source, device_id, serial)
        rows.append(_in_model_order(_item_values(reading) + batch + (None,)))
        if reading.pulse is not None:
            pulse = _pulse_values(reading, unit=metric_units()["heart_rate"].canonical_unit)
            rows.append(_in_model_order(pulse + batch + (reading.client_id,)))
    # Sorted by the unique key: concurrent batches then take row locks in the same order
    # and cannot deadlock (docs/architecture.md: 7 of 8 racing retries failed with 40P01
    # unsorted). By the UUID's integer, which is how UUIDs order: one key per row instead of
    # a Python-level UUID comparison per step of the sort (most of _rows' time otherwise).
    rows.sort(key=lambda row: row[CLIENT_ID].int)
    return rows


def _adapt_for_database(rows: list[tuple]) -> list[tuple]:
    """psycopg adapts UUIDs and datetimes natively; other backends need Django's prep."""
    if connection.vendor == "postgresql":
        return rows
    return [
        tuple(f.get_db_prep_save(value, connection) for f, value in zip(FIELDS, row, strict=True))
        for row in rows
    ]


# The idempotency key's columns: which patient and client id, where the reading is, and the
# fingerprint that tells a re-sent item (duplicate) from other content (conflict).
KEY_COLUMNS = ("patient_id", "client_id", "reading_id", "measured_at", "fingerprint")
PATIENT = COLUMNS.index("patient_id")
MEASURED_AT = COLUMNS.index("measured_at")
FINGERPRINT = COLUMNS.index("fingerprint")
# The readings' id sequence on PostgreSQL: owned by the partitioned table's id since
# migration 0016, under the name the identity column's sequence had before it.
ID_SEQUENCE = f"{Reading._meta.db_table}_id_seq"


# The audit event of an upload, written by the same statement (monitoring.audit.upload_event).
AUDIT_FIELDS = tuple(f for f in AuditEvent._meta.concrete_fields if not f.primary_key)


@cache
def _unnest_insert_sql(audited: bool = False, single: bool = False) -> str:
    """PostgreSQL: one statement claims the keys and inserts the readings whose key it claimed.

    One array parameter per column, so the statement text never changes: a multi-row VALUES
    list has 21 placeholders per row (10,500 for a 500-item batch), which psycopg re-parses
    and PostgreSQL re-plans on every call, costing more than validating the batch. Character
    columns are passed as text[] so that the assignment to varchar(n) still rejects an
    over-long value (an explicit cast to varchar(n)[] would silently truncate it).

    The readings table is partitioned by time, so it cannot hold the (patient, client id)
    unique key; ReadingKey's primary key does. The batch takes its reading ids from the
    sequence first (materialised: each row's id is drawn once), `claimed` inserts the keys
    in key order with ON CONFLICT DO NOTHING (a key another transaction holds uncommitted is
    waited for, then skipped if it committed: the database alone decides which request
    created a reading, and the sorted order means racing retries wait, never deadlock), and
    only the rows whose key this statement claimed are inserted. A duplicate costs an id
    from the sequence, nothing else. With `audited`, the upload's audit event is inserted by
    the same statement (its values after the arrays), so an upload is one statement and one
    commit. With `single`, the one row comes as a VALUES row of scalar parameters instead of
    arrays: a cuff or a scale posts one reading at a time, and psycopg's dumping of 22
    one-element arrays was a sixth of such an upload's CPU.
    """
    readings = Reading._meta.db_table
    suffix = "" if single else "[]"
    values = ", ".join(
        f"%s::text{suffix}"
        if isinstance(field, models.CharField)
        else f"%s::{field.db_type(connection)}{suffix}"
        for field in FIELDS
    )
    items = f"(VALUES ({values}, %s::date))" if single else f"unnest({values}, %s::date[])"
    columns = ", ".join(COLUMNS)
    keys = ReadingKey._meta.db_table
    days = DeviceDay._meta.db_table
    return (
        f"WITH batch AS MATERIALIZED ("
        f"SELECT nextval('{ID_SEQUENCE}') AS id, item.* "
        f"FROM {items} AS item({columns}, device_day)), "
        f"claimed AS (INSERT INTO {keys} ({', '.join(KEY_COLUMNS)}) "
        "SELECT patient_id, client_id, id, measured_at, fingerprint FROM batch "
        "ORDER BY client_id "
        "ON CONFLICT (patient_id, client_id) DO NOTHING RETURNING reading_id), "
        # The device days of the readings this statement created (a re-sent one adds none).
        f"counted AS (INSERT INTO {days} (patient_id, day) "
        "SELECT DISTINCT batch.patient_id, batch.device_day "
        "FROM batch JOIN claimed ON claimed.reading_id = batch.id "
        "WHERE batch.device_day IS NOT NULL ORDER BY 1, 2 ON CONFLICT DO NOTHING) "
        + (_audit_cte() if audited else "")
        + f"INSERT INTO {readings} (id, {columns}) "
        f"SELECT batch.id, {', '.join('batch.' + column for column in COLUMNS)} "
        "FROM batch JOIN claimed ON claimed.reading_id = batch.id "
        "RETURNING client_id"
    )


def _audit_cte() -> str:
    casts = ", ".join(
        "%s::text" if isinstance(field, models.CharField) else f"%s::{field.db_type(connection)}"
        for field in AUDIT_FIELDS
    )
    columns = ", ".join(field.column for field in AUDIT_FIELDS)
    return f", audited AS (INSERT INTO {AuditEvent._meta.db_table} ({columns}) VALUES ({casts})) "


def _audit_values(event: AuditEvent) -> list:
    return [
        field.get_db_prep_save(getattr(event, field.attname), connection) for field in AUDIT_FIELDS
    ]


def _device_day(row: tuple, zone: zoneinfo.ZoneInfo) -> date | None:
    """The patient's local day a row counts for as device data, or None if it does not
    (typed by a person, or a medication dose: not physiologic data)."""
    if row[ENTRY] != Entry.DEVICE or row[METRIC] == Metric.DOSE:
        return None
    return row[MEASURED_AT].astimezone(zone).date()


def _insert_rows(
    rows: list[tuple], zone: zoneinfo.ZoneInfo, audit: AuditEvent | None = None
) -> set[uuid.UUID]:
    """Insert what is new, with its device days (and `audit`, the upload's event); return
    the client ids this statement created."""
    if not rows:
        return set()
    device_days = [_device_day(row, zone) for row in rows]
    if connection.vendor == "postgresql":
        single = len(rows) == 1
        if single:
            params = [*rows[0], device_days[0]]
        else:
            params = [list(column) for column in zip(*rows, strict=True)] + [device_days]
        if audit is not None:
            params += _audit_values(audit)
        with hot_cursor() as cursor:
            cursor.execute(_unnest_insert_sql(audited=audit is not None, single=single), params)
            return {value for (value,) in cursor.fetchall()}
    if audit is not None:
        audit.save()
    created = _insert_rows_serialised(rows)
    DeviceDay.objects.bulk_create(
        {
            DeviceDay(patient_id=row[PATIENT], day=day)
            for row, day in zip(rows, device_days, strict=True)
            if day is not None and row[CLIENT_ID] in created
        },
        ignore_conflicts=True,
    )
    return created


def _insert_rows_serialised(rows: list[tuple]) -> set[uuid.UUID]:
    """SQLite: its transactions are IMMEDIATE (config/settings.py), so one writer at a time
    holds the database from BEGIN to COMMIT and a key looked up here cannot be claimed
    meanwhile by another request. Readings first (their ids come from the insert), then
    their keys."""
    patient_id = rows[0][PATIENT]
    known = set(
        ReadingKey.objects.filter(
            patient_id=patient_id, client_id__in=[row[CLIENT_ID] for row in rows]
        ).values_list("client_id", flat=True)
    )
    new = [row for row in rows if row[CLIENT_ID] not in known]
    if not new:
        return set()
    table = Reading._meta.db_table
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([placeholders] * len(new))
        + " RETURNING client_id, id"
    )
    params = [value for row in _adapt_for_database(new) for value in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = {
            value if isinstance(value, uuid.UUID) else uuid.UUID(value): reading_id
            for value, reading_id in cursor.fetchall()
        }
    ReadingKey.objects.bulk_create(
        ReadingKey(
            patient_id=patient_id,
            client_id=row[CLIENT_ID],
            reading_id=ids[row[CLIENT_ID]],
            measured_at=row[MEASURED_AT],
            fingerprint=row[FINGERPRINT],
        )
        for row in new
    )
    return set(ids)


def _is_retryable(error: OperationalError) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES


def _resolve_devices(patient: Patient, readings: list[ValidReading]) -> dict[str, int]:
    serials = {reading.device_serial for reading in readings if reading.device_serial}
    if not serials:
        return {}
    return dict(
        Device.objects.filter(
            patient=patient, serial__in=serials, revoked_at__isnull=True
        ).values_list("serial", "id")
    )


def record_readings(
    *,
    patient: Patient,
    items: list[object],
    device: Device | None = None,
    channel: Channel | None = None,
    received_at: datetime | None = None,
    audit: AuditEvent | None = None,
) -> IngestResult:
    """Validate and store a batch of readings for one patient.

    `channel`: the interface the items came through (default: a device key's or the app's).
    Every interface (REST, FHIR, Nightscout) stores through here: one ingest path.
    Writes: new Reading rows (one INSERT for the batch; a BP pulse adds a heart-rate row).
    Enqueues: a wake-up of the evaluation drain for the patient (coalesced with the wake-ups
    not yet taken), after commit, when anything was created.
    `audit`: the upload's audit event (monitoring.audit.upload_event), written with the
    readings when any item is valid (IngestResult.audited says whether it was).
    Returns a result per item, in request order.
    """
    now = received_at or timezone.now()
    if channel is None:
        channel = DEVICE_KEY if device is not None else APP
    results: list[ItemResult] = []
    valid: list[tuple[ItemResult, ValidReading]] = []
    first: dict[uuid.UUID, ValidReading] = {}  # the first item with each id in this batch
    for raw in items:
        outcome = validate_item(raw, now=now, internal=channel.internal)
        if isinstance(outcome, dict):
            results.append(ItemResult(echo_id(raw), ItemStatus.REJECTED, outcome))
            continue
        outcome.entry = outcome.entry or channel.default_entry
        result = ItemResult(str(outcome.client_id), ItemStatus.CREATED)
        results.append(result)
        valid.append((result, outcome))
        first.setdefault(outcome.client_id, outcome)

    created, audited = _store(
        patient=patient,
        readings=list(first.values()),
        device=device,
        source=channel.source,
        now=now,
        audit=audit,
    )
    stored = _stored_fingerprints(patient, set(first) - created)
    for result, reading in valid:
        client_id = reading.client_id
        if client_id in created and first[client_id] is reading:
            continue
        known = first[client_id].fingerprint if client_id in created else stored.get(client_id)
        if known == reading.fingerprint:
            result.status = ItemStatus.DUPLICATE
        else:
            result.status = ItemStatus.CONFLICT
            result.errors = {"id": ["A reading with this id is already stored with other content."]}
    return IngestResult(results, audited=audited)


def _store(
    *,
    patient: Patient,
    readings: list[ValidReading],
    device: Device | None,
    source: str,
    now: datetime,
    audit: AuditEvent | None,
) -> tuple[set[uuid.UUID], bool]:
    """The client ids created, and whether `audit` was written with them."""
    if not readings:
        return set(), False
    devices = _resolve_devices(patient, readings) if device is None else {}
    rows = _rows(
        readings,
        patient_id=patient.pk,
        received_at=now,
        source=source,
        devices=devices,
        authenticated_device=device,
    )
    zone = patient.zone
    sent = [row for row in rows if row[PART_OF] is None]
    pulses = [row for row in rows if row[PART_OF] is not None]
    # One statement is its own transaction on PostgreSQL: no BEGIN and COMMIT round trips
    # (a single reading from a cuff or a scale is the common upload). Pulses need a second
    # statement, and SQLite several: those run in a transaction.
    one_statement = (
        connection.vendor == "postgresql" and not pulses and not connection.in_atomic_block
    )
    for attempt in range(1, MAX_INSERT_ATTEMPTS + 1):
        try:
            with contextlib.nullcontext() if one_statement else transaction.atomic():
                created = _insert_rows(sent, zone, audit)
                # A pulse is stored only with the blood pressure it came with: an item that
                # conflicts with a stored reading must not slip a heart rate in beside it.
                created |= _insert_rows([row for row in pulses if row[PART_OF] in created], zone)
                if created:
                    # After commit, and robust: a broker outage never fails the upload. One
                    # wake-up for many uploads while a drain is still to start
                    # (monitoring/evaluation/drain.py).
                    enqueue_coalesced_on_commit(
                        "monitoring.tasks.drain_pending_readings_task", patient.pk
                    )
            break
        except OperationalError as error:
            if attempt < MAX_INSERT_ATTEMPTS and _is_retryable(error):
                logger.warning("readings insert retry %s for patient %s", attempt, patient.pk)
                time.sleep(random.uniform(0.01, 0.05) * attempt)
                continue
            if audit is None:
                raise
            _log_storing_without_audit(error, patient)
            audit = None
        except DatabaseError as error:
            if audit is None:
                raise
            _log_storing_without_audit(error, patient)
            audit = None
    # Only the ids the client sent count; derived pulse rows travel with their BP reading.
    return created & {reading.client_id for reading in readings}, audit is not None


def _log_storing_without_audit(error: DatabaseError, patient: Patient) -> None:
    """The statement carrying the audit event failed, so nothing of it was stored: the
    readings are stored without it (a reading is never lost to the audit log; the audit
    middleware then tries the event on its own and logs its failure)."""
    logger.error(
        "upload of patient %s failed with its audit event (%s); storing the readings alone",
        patient.pk,
        type(error).__name__,
    )


def _stored_fingerprints(patient: Patient, client_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not client_ids:
        return {}
    # From the keys: classifying a re-sent item never reads the (partitioned) readings.
    return dict(
        ReadingKey.objects.filter(patient=patient, client_id__in=client_ids).values_list(
            "client_id", "fingerprint"
        )
    )
