"""Reading ingestion: validate, normalise, insert a batch in one statement, enqueue on commit.

Validation touches no database (DESIGN.md: per-item queries are what make the textbook
endpoint slow); the batch is written by one `INSERT … ON CONFLICT DO NOTHING RETURNING`,
rows sorted by key so concurrent retries of overlapping batches cannot deadlock, and the
database alone decides which request created a row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from monitoring.models import (
    Device,
    DoseStatus,
    GlucoseContext,
    Metric,
    Patient,
    Reading,
    ReadingSource,
)
from monitoring.units import MetricUnits, format_number, metric_units

logger = logging.getLogger(__name__)

# A BP reading's pulse is stored as its own heart-rate reading with an id derived from the
# BP id, so re-sending the BP re-derives the same id and stays idempotent.
PULSE_NAMESPACE = uuid.UUID("6f1d3c2e-8a53-4d0f-9a34-3c1f0b7e2a91")

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")

COMMON_FIELDS = {"id", "type", "measured_at", "device"}
FIELDS_BY_TYPE = {
    "glucose": {"value", "unit", "context"},
    "blood_pressure": {"systolic", "diastolic", "pulse", "unit"},
    "weight": {"value", "unit"},
    "inr": {"value", "unit"},
    "heart_rate": {"value", "unit"},
    "spo2": {"value", "unit"},
    "temperature": {"value", "unit"},
    "dose": {"medication", "status", "scheduled_for"},
}
# Looked up once per item: sets built once, not per item.
GLUCOSE_CONTEXTS = frozenset(GlucoseContext.values)
DOSE_STATUSES = frozenset(DoseStatus.values)
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
MAX_INSERT_ATTEMPTS = 4


class MalformedBatch(Exception):
    """The body as a whole is unusable; nothing from it is stored."""


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


@dataclass
class ValidReading:
    """One validated item, already in canonical units, ready to become a row."""

    client_id: uuid.UUID
    metric: str
    measured_at: datetime
    utc_offset_minutes: int
    value: float | None = None
    unit: str = ""
    systolic: float | None = None
    diastolic: float | None = None
    pulse: float | None = None
    sent_value: float | None = None
    sent_unit: str = ""
    context: str = ""
    medication: str = ""
    dose_status: str = ""
    scheduled_for: datetime | None = None
    device_serial: str = ""
    fingerprint: str = field(default="")

    def compute_fingerprint(self) -> str:
        content = [
            self.metric,
            self.sent_value,
            self.sent_unit,
            self.systolic,
            self.diastolic,
            self.pulse,
            self.measured_at.timestamp(),
            self.context,
            self.medication,
            self.dose_status,
            self.scheduled_for.timestamp() if self.scheduled_for else None,
            self.device_serial,
        ]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()


# --- Parsing the body ---------------------------------------------------------------------


def parse_batch(body: object) -> list[object]:
    """The list of items in a request body, or MalformedBatch with the reason."""
    if isinstance(body, dict) and "readings" in body:
        items = body["readings"]
        if not isinstance(items, list):
            raise MalformedBatch("'readings' must be a list of reading objects.")
    elif isinstance(body, dict):
        items = [body]
    elif isinstance(body, list):
        items = body
    else:
        raise MalformedBatch(
            'The body must be a JSON object: {"readings": [...]} or a single reading.'
        )
    if not items:
        raise MalformedBatch("A batch needs at least 1 reading.")
    if len(items) > settings.VIGIL_MAX_BATCH:
        raise MalformedBatch(
            f"A batch holds at most {settings.VIGIL_MAX_BATCH} readings; this one has "
            f"{len(items)}. Split it into smaller batches."
        )
    return items


# --- Validating one item ------------------------------------------------------------------


class _Errors(dict):
    def add(self, name: str, message: str) -> None:
        self.setdefault(name, []).append(message)


def _number(raw: dict, name: str, errors: _Errors, *, required: bool) -> float | None:
    value = raw.get(name)
    if value is None:
        if required:
            errors.add(name, "This field is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.add(name, "Must be a number.")
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a double, e.g. 10**400
        value = math.inf
    if not math.isfinite(value):
        errors.add(name, "Must be a finite number.")
        return None
    return value


def _text(raw: dict, name: str, errors: _Errors, *, max_length: int) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.add(name, "Must be a string.")
        return ""
    if len(value) > max_length:
        errors.add(name, f"Must be at most {max_length} characters.")
        return ""
    if "\x00" in value:  # PostgreSQL text cannot hold it: the whole batch insert would fail
        errors.add(name, "Must not contain the NUL character.")
        return ""
    return value


def parse_timestamp(value: object, name: str, errors: _Errors) -> datetime | None:
    if not isinstance(value, str) or not RFC3339.match(value):
        errors.add(
            name,
            "Must be an RFC 3339 date-time with a UTC offset, e.g. 2026-03-01T07:30:00+01:00.",
        )
        return None
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        # The offset can carry the instant outside years 1-9999 (0001-01-01T00:00+05:00):
        # PostgreSQL would store it, and reading it back into Python would then fail.
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        errors.add(name, f"'{value}' is not a valid date-time.")
        return None
    return parsed


def _convert(
    spec: MetricUnits, label: str, value: float, unit_code: str, errors: _Errors, name: str
) -> float | None:
    unit = spec.units[unit_code]
    canonical = unit.to_canonical(value)
    limits = spec.plausible if name == "value" else spec.components.get(name)
    if limits is not None and not limits.contains(canonical):
        # INR is a ratio: however it was spelled ({INR}, 1, ratio), it is shown bare.
        spelled = "" if spec.canonical_unit == "{INR}" else unit_code
        shown = f"{format_number(value)} {spelled}".rstrip()
        if unit.factor != 1 or unit.offset:
            shown += f" ({format_number(round(canonical, 1))} {limits.unit})"
        errors.add(name, f"{label} {shown} is outside the plausible range {limits.describe()}")
        return None
    return canonical


def _unit(raw: dict, spec: MetricUnits, errors: _Errors) -> str | None:
    sent = raw.get("unit")
    if sent is not None and not isinstance(sent, str):
        errors.add("unit", "Must be a string.")
        return None
    unit = spec.lookup(sent)
    if unit is None:
        accepted = ", ".join(spec.accepted_spellings())
        if sent in (None, ""):
            errors.add("unit", f"This field is required for {spec.metric}; one of: {accepted}.")
        else:
            errors.add("unit", f"'{sent}' is not a unit for {spec.metric}; one of: {accepted}.")
        return None
    return unit.code


def _validate_measurement(raw: dict, metric: str, reading: ValidReading, errors: _Errors) -> None:
    spec = metric_units()[metric]
    unit_code = _unit(raw, spec, errors)
    label = metric.replace("_", " ")
    if metric == "blood_pressure":
        systolic = _number(raw, "systolic", errors, required=True)
        diastolic = _number(raw, "diastolic", errors, required=True)
        pulse = _number(raw, "pulse", errors, required=False)
        if unit_code is None:
            return
        if systolic is not None:
            reading.systolic = _convert(spec, "systolic", systolic, unit_code, errors, "systolic")
        if diastolic is not None:
            reading.diastolic = _convert(
                spec, "diastolic", diastolic, unit_code, errors, "diastolic"
            )
        # clinical.yaml blood_pressure.plausible_range.cross_field_rules: systolic > diastolic
        components = (reading.systolic, reading.diastolic)
        if None not in components and not reading.systolic > reading.diastolic:
            errors.add(
                "diastolic",
                f"diastolic {format_number(diastolic)} must be lower than systolic "
                f"{format_number(systolic)}",
            )
        if pulse is not None:
            hr = metric_units()["heart_rate"]
            # Judged by the heart-rate limits, reported against `pulse` (and not mixed with
            # an error about a stray `value` field on the item).
            pulse_errors = _Errors()
            reading.pulse = _convert(hr, "pulse", pulse, hr.canonical_unit, pulse_errors, "value")
            for message in pulse_errors.get("value", []):
                errors.add("pulse", message)
        reading.unit = spec.canonical_unit
        reading.sent_unit = unit_code
        return
    value = _number(raw, "value", errors, required=True)
    if value is None or unit_code is None:
        return
    reading.sent_value = value
    reading.sent_unit = unit_code
    reading.unit = spec.canonical_unit
    reading.value = _convert(spec, label, value, unit_code, errors, "value")
    if metric == "glucose" and raw.get("context") is not None:
        if not isinstance(raw["context"], str) or raw["context"] not in GLUCOSE_CONTEXTS:
            errors.add("context", f"Must be one of: {', '.join(GlucoseContext.values)}.")
        else:
            reading.context = raw["context"]


def _validate_dose(raw: dict, reading: ValidReading, errors: _Errors) -> None:
    reading.medication = _text(raw, "medication", errors, max_length=64)
    if not reading.medication and "medication" not in errors:
        errors.add("medication", "This field is required: the medication id from the plan.")
    status = raw.get("status")
    if not isinstance(status, str) or status not in DOSE_STATUSES:
        errors.add("status", f"Must be one of: {', '.join(DoseStatus.values)}.")
    else:
        reading.dose_status = status
    # API.md: a dose says which scheduled dose it answers.
    if raw.get("scheduled_for") is None:
        errors.add("scheduled_for", "This field is required.")
    else:
        reading.scheduled_for = parse_timestamp(raw["scheduled_for"], "scheduled_for", errors)


def echo_id(raw: object) -> str | None:
    """The id to report back for an item, even a rejected one."""
    if not isinstance(raw, dict):
        return None
    value = raw.get("id")
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return value[:100]
    return None


def validate_item(raw: object, *, now: datetime) -> ValidReading | dict[str, list[str]]:
    """A ValidReading, or the per-field errors that stop this item from being stored."""
    errors = _Errors()
    if not isinstance(raw, dict):
        return {"non_field_errors": ["Each reading must be a JSON object."]}

    client_id = None
    raw_id = raw.get("id")
    if raw_id is None:
        errors.add("id", "This field is required: a UUID made by the client.")
    else:
        with contextlib.suppress(ValueError):
            client_id = uuid.UUID(raw_id) if isinstance(raw_id, str) else None
        if client_id is None:
            errors.add("id", "Must be a UUID, e.g. 7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d.")

    metric = raw.get("type")
    if not isinstance(metric, str) or metric not in FIELDS_BY_TYPE:
        errors.add(
            "type",
            "This field is required."
            if metric is None
            else f"Must be one of: {', '.join(FIELDS_BY_TYPE)}.",
        )
        return dict(errors)

    for name in sorted(set(raw) - COMMON_FIELDS - FIELDS_BY_TYPE[metric]):
        errors.add(name, f"Not a field of a {metric} reading.")

    measured_at = None
    if raw.get("measured_at") is None:
        errors.add("measured_at", "This field is required.")
    else:
        measured_at = parse_timestamp(raw["measured_at"], "measured_at", errors)
        if measured_at is not None and measured_at > now + settings.VIGIL_FUTURE_SKEW:
            minutes = int(settings.VIGIL_FUTURE_SKEW / timedelta(minutes=1))
            errors.add(
                "measured_at", f"Is more than {minutes} minutes in the future; check the clock."
            )

    reading = ValidReading(
        client_id=client_id or uuid.UUID(int=0),
        metric=metric,
        measured_at=measured_at or now,
        utc_offset_minutes=int(measured_at.utcoffset() / timedelta(minutes=1))
        if measured_at
        else 0,
    )
    reading.device_serial = _text(raw, "device", errors, max_length=120)
    if metric == Metric.DOSE:
        _validate_dose(raw, reading, errors)
    else:
        _validate_measurement(raw, metric, reading, errors)

    if errors:
        return dict(errors)
    reading.fingerprint = reading.compute_fingerprint()
    return reading


# --- Writing the batch --------------------------------------------------------------------

COLUMNS = [
    "patient_id", "client_id", "metric", "value", "unit", "systolic", "diastolic",
    "sent_value", "sent_unit", "context", "medication", "dose_status", "scheduled_for",
    "measured_at", "utc_offset_minutes", "received_at", "source", "device_id",
    "device_serial", "part_of", "fingerprint",
]  # fmt: skip
PART_OF = COLUMNS.index("part_of")


def _rows(
    readings: list[ValidReading],
    *,
    patient_id: int,
    received_at: datetime,
    source: str,
    devices: dict[str, int],
    authenticated_device: Device | None,
) -> list[tuple]:
    rows = []
    for reading in readings:
        if authenticated_device is not None:
            device_id = authenticated_device.pk
            # A device posting with its own key need not repeat its serial in every item.
            serial = reading.device_serial or authenticated_device.serial
        else:
            device_id, serial = devices.get(reading.device_serial), reading.device_serial
        common = (
            reading.measured_at, reading.utc_offset_minutes, received_at, source, device_id,
            serial,
        )  # fmt: skip
        rows.append(
            (
                patient_id, reading.client_id, reading.metric, reading.value, reading.unit,
                reading.systolic, reading.diastolic, reading.sent_value, reading.sent_unit,
                reading.context, reading.medication, reading.dose_status, reading.scheduled_for,
                *common, None, reading.fingerprint,
            )
        )  # fmt: skip
        if reading.pulse is not None:
            hr_unit = metric_units()["heart_rate"].canonical_unit
            rows.append(
                (
                    patient_id, uuid.uuid5(PULSE_NAMESPACE, str(reading.client_id)), "heart_rate",
                    reading.pulse, hr_unit, None, None, reading.pulse, hr_unit, "", "", "", None,
                    *common, reading.client_id, reading.fingerprint,
                )
            )  # fmt: skip
    # Sorted by the unique key: concurrent batches then take row locks in the same order
    # and cannot deadlock (DESIGN.md: 7 of 8 racing retries failed with 40P01 unsorted).
    rows.sort(key=lambda row: row[1])
    return rows


def _adapt_for_database(rows: list[tuple]) -> list[tuple]:
    """psycopg adapts UUIDs and datetimes natively; other backends need Django's prep."""
    if connection.vendor == "postgresql":
        return rows
    by_column = {f.column: f for f in Reading._meta.concrete_fields}
    fields = [by_column[name] for name in COLUMNS]
    return [
        tuple(f.get_db_prep_save(value, connection) for f, value in zip(fields, row, strict=True))
        for row in rows
    ]


@cache
def _unnest_insert_sql() -> str:
    """PostgreSQL: one array parameter per column, so the statement text never changes.

    A multi-row VALUES list has 21 placeholders per row (10,500 for a 500-item batch):
    psycopg re-parses such a long query on every call and PostgreSQL re-plans it, which cost
    more than validating the batch. Character columns are passed as text[] so that the
    assignment to varchar(n) still rejects an over-long value (an explicit cast to
    varchar(n)[] would silently truncate it). unnest yields the rows in array order, i.e.
    the sorted order `_rows` produced, as a VALUES list does.
    """
    by_column = {f.column: f for f in Reading._meta.concrete_fields}
    arrays = ", ".join(
        "%s::text[]"
        if isinstance(by_column[name], models.CharField)
        else f"%s::{by_column[name].db_type(connection)}[]"
        for name in COLUMNS
    )
    return (
        f"INSERT INTO {Reading._meta.db_table} ({', '.join(COLUMNS)}) "
        f"SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (patient_id, client_id) DO NOTHING RETURNING client_id"
    )


def _insert_rows(rows: list[tuple]) -> set[uuid.UUID]:
    """Insert what is new; return the client ids this statement created."""
    if not rows:
        return set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _unnest_insert_sql(), [list(column) for column in zip(*rows, strict=True)]
            )
            return {value for (value,) in cursor.fetchall()}
    table = Reading._meta.db_table
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([placeholders] * len(rows))
        + " ON CONFLICT (patient_id, client_id) DO NOTHING RETURNING client_id"
    )
    params = [value for row in _adapt_for_database(rows) for value in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    return {value if isinstance(value, uuid.UUID) else uuid.UUID(value) for (value,) in returned}


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
    received_at: datetime | None = None,
) -> IngestResult:
    """Validate and store a batch of readings for one patient.

    Writes: new Reading rows (one INSERT for the batch; a BP pulse adds a heart-rate row).
    Enqueues: one evaluation task for the patient, after commit, when anything was created.
    Returns a result per item, in request order.
    """
    now = received_at or timezone.now()
    results: list[ItemResult] = []
    valid: list[tuple[ItemResult, ValidReading]] = []
    first: dict[uuid.UUID, ValidReading] = {}  # the first item with each id in this batch
    for raw in items:
        outcome = validate_item(raw, now=now)
        if isinstance(outcome, dict):
            results.append(ItemResult(echo_id(raw), ItemStatus.REJECTED, outcome))
            continue
        result = ItemResult(str(outcome.client_id), ItemStatus.CREATED)
        results.append(result)
        valid.append((result, outcome))
        first.setdefault(outcome.client_id, outcome)

    created = _store(patient=patient, readings=list(first.values()), device=device, now=now)
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
    return IngestResult(results)


def _store(
    *, patient: Patient, readings: list[ValidReading], device: Device | None, now: datetime
) -> set[uuid.UUID]:
    from monitoring.tasks import evaluate_patient_readings_task

    if not readings:
        return set()
    devices = _resolve_devices(patient, readings) if device is None else {}
    rows = _rows(
        readings,
        patient_id=patient.pk,
        received_at=now,
        source=ReadingSource.DEVICE if device else ReadingSource.APP,
        devices=devices,
        authenticated_device=device,
    )
    for attempt in range(1, MAX_INSERT_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                created = _insert_rows([row for row in rows if row[PART_OF] is None])
                # A pulse is stored only with the blood pressure it came with: an item that
                # conflicts with a stored reading must not slip a heart rate in beside it.
                created |= _insert_rows(
                    [row for row in rows if row[PART_OF] is not None and row[PART_OF] in created]
                )
                if created:
                    # After commit, and robust: a broker outage never fails the upload.
                    enqueue_on_commit(evaluate_patient_readings_task, patient.pk)
            break
        except OperationalError as error:
            if attempt == MAX_INSERT_ATTEMPTS or not _is_retryable(error):
                raise
            logger.warning("readings insert retry %s for patient %s", attempt, patient.pk)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    # Only the ids the client sent count; derived pulse rows travel with their BP reading.
    return created & {reading.client_id for reading in readings}


def _stored_fingerprints(patient: Patient, client_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not client_ids:
        return {}
    return dict(
        Reading.objects.filter(patient=patient, client_id__in=client_ids).values_list(
            "client_id", "fingerprint"
        )
    )
