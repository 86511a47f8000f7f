"""Parsing a batch and validating each item: pure Python, no database.

Units, conversions and plausibility limits come from the clinical reference (units.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings

from monitoring.models import (
    DoseStatus,
    Entry,
    GlucoseContext,
    Metric,
)
from monitoring.units import MetricUnits, format_number, metric_units

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<hours>\d{2}):(?P<minutes>\d{2}))$"
)
# The UTC offsets places use run from -12:00 to +14:00 (Kiribati's Line Islands). Python
# reads up to ±23:59 and PostgreSQL stores up to ±15:59: `+16:00` once failed a whole batch
# insert, and an offset no clock shows is a client bug either way.
MAX_UTC_OFFSET = timedelta(hours=14)

COMMON_FIELDS = {"id", "type", "measured_at", "device", "entry"}
# Fields no client names in a native item, set by an interface's own mapping (Nightscout's
# trend arrow): validate_item accepts them only when its caller passes them as `internal`.
INTERNAL_FIELDS = frozenset({"trend"})
ENTRIES = frozenset(Entry.values)
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


class MalformedBatch(Exception):
    """The body as a whole is unusable; nothing from it is stored."""


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
    # How the value was entered; "" until the channel's default is applied (store._rows).
    # Not content: neither it nor the trend is in the fingerprint, so a re-send that differs
    # only there stays a duplicate (and readings stored before they existed still match).
    entry: str = ""
    trend: str = ""
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
    """The instant an RFC 3339 date-time names, or None with the reason added to `errors`:
    not RFC 3339 with an offset, an impossible date, an offset no place has, or an instant
    before VIGIL_EARLIEST_MEASUREMENT. (How far ahead it may be depends on the field.)"""
    match = RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        errors.add(
            name,
            "Must be an RFC 3339 date-time with a UTC offset, e.g. 2026-03-01T07:30:00+01:00.",
        )
        return None
    if match["sign"] is not None:
        offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"]))
        if int(match["minutes"]) >= 60 or offset > MAX_UTC_OFFSET:
            errors.add(
                name,
                f"The UTC offset {match['offset']} is not a real one: offsets lie between "
                f"-{_clock(MAX_UTC_OFFSET)} and +{_clock(MAX_UTC_OFFSET)}.",
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
    earliest = settings.VIGIL_EARLIEST_MEASUREMENT
    if parsed < earliest:
        errors.add(name, f"Is before {_moment(earliest)}; check the clock.")
        return None
    return parsed


def _minutes(duration: timedelta) -> int:
    return int(duration / timedelta(minutes=1))


def _clock(offset: timedelta) -> str:
    minutes = _minutes(offset)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _moment(instant: datetime) -> str:
    """A setting's instant as a reason names it: the bare date when it is a UTC midnight."""
    instant = instant.astimezone(UTC)
    if instant.time() == datetime.min.time():
        return instant.date().isoformat()
    return instant.isoformat()


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


def _validate_dose(raw: dict, reading: ValidReading, errors: _Errors, *, now: datetime) -> None:
    reading.medication = _text(raw, "medication", errors, max_length=64)
    if not reading.medication and "medication" not in errors:
        errors.add("medication", "This field is required: the medication id from the plan.")
    status = raw.get("status")
    if not isinstance(status, str) or status not in DOSE_STATUSES:
        errors.add("status", f"Must be one of: {', '.join(DoseStatus.values)}.")
    else:
        reading.dose_status = status
    # docs/api.md: a dose says which scheduled dose it answers.
    if raw.get("scheduled_for") is None:
        errors.add("scheduled_for", "This field is required.")
        return
    scheduled_for = parse_timestamp(raw["scheduled_for"], "scheduled_for", errors)
    # A dose may be logged up to the slot lead before it is due (it then answers its slot,
    # schedules/fulfilment.py), give or take the clock skew; a time further ahead names no
    # slot the patient could have answered yet.
    ahead = settings.VIGIL_SLOT_LEAD + settings.VIGIL_FUTURE_SKEW
    if scheduled_for is not None and scheduled_for > now + ahead:
        errors.add(
            "scheduled_for",
            f"Is more than {_minutes(ahead)} minutes in the future: a dose is logged at most "
            f"{_minutes(settings.VIGIL_SLOT_LEAD)} minutes before it is due; check the clock.",
        )
        return
    reading.scheduled_for = scheduled_for


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


def validate_item(
    raw: object, *, now: datetime, internal: frozenset[str] = frozenset()
) -> ValidReading | dict[str, list[str]]:
    """A ValidReading, or the per-field errors that stop this item from being stored.

    `internal`: which of INTERNAL_FIELDS the caller's own mapping may set (an interface
    adapter, never a client's raw item).
    """
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

    for name in sorted(set(raw) - COMMON_FIELDS - FIELDS_BY_TYPE[metric] - internal):
        errors.add(name, f"Not a field of a {metric} reading.")

    measured_at = None
    if raw.get("measured_at") is None:
        errors.add("measured_at", "This field is required.")
    else:
        measured_at = parse_timestamp(raw["measured_at"], "measured_at", errors)
        if measured_at is not None and measured_at > now + settings.VIGIL_FUTURE_SKEW:
            errors.add(
                "measured_at",
                f"Is more than {_minutes(settings.VIGIL_FUTURE_SKEW)} minutes in the future; "
                "check the clock.",
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
    entry = raw.get("entry")
    if entry is not None:
        if isinstance(entry, str) and entry in ENTRIES:
            reading.entry = entry
        else:
            errors.add("entry", f"Must be one of: {', '.join(Entry.values)}.")
    if "trend" in internal:
        reading.trend = _text(raw, "trend", errors, max_length=24)
    if metric == Metric.DOSE:
        _validate_dose(raw, reading, errors, now=now)
    else:
        _validate_measurement(raw, metric, reading, errors)

    if errors:
        return dict(errors)
    reading.fingerprint = reading.compute_fingerprint()
    return reading
