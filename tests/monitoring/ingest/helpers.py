"""Constants, builders and fixtures shared by test_store.py, test_validation.py,
test_validation_values.py (imported by name: a fixture here applies only where a test module
imports it)."""

from datetime import UTC, datetime, timedelta

from monitoring.ingest import (
    IngestResult,
    ValidReading,
    record_readings,
    validate_item,
)
from monitoring.units import format_number

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


TIMESTAMP_FORMAT = (
    "Must be an RFC 3339 date-time with a UTC offset, e.g. 2026-03-01T07:30:00+01:00."
)


UUID_FORMAT = "Must be a UUID, e.g. 7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d."


SINGLE_VALUE_METRICS = ["glucose", "weight", "inr", "heart_rate", "spo2", "temperature"]


CONFLICT_ERRORS = {"id": ["A reading with this id is already stored with other content."]}


def errors_of(item) -> dict:
    outcome = validate_item(item, now=NOW)
    assert isinstance(outcome, dict), f"expected per-field errors, got {outcome!r}"
    return outcome


def valid(item) -> ValidReading:
    outcome = validate_item(item, now=NOW)
    assert isinstance(outcome, ValidReading), f"expected a valid reading, got {outcome!r}"
    return outcome


def record(patient, items, *, received_at=NOW, **kwargs) -> IngestResult:
    return record_readings(patient=patient, items=items, received_at=received_at, **kwargs)


def statuses(result: IngestResult) -> list[str]:
    return [item.status for item in result.results]


def minutes(duration: timedelta) -> int:
    return int(duration / timedelta(minutes=1))


def outside(label: str, value: float, unit: str, limits) -> str:
    shown = f"{format_number(value)} {'' if unit == '{INR}' else unit}".rstrip()
    return f"{label} {shown} is outside the plausible range {limits.describe()}"
