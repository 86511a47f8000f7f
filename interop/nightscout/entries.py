"""Nightscout entries in and out: `sgv` and `mbg` are glucose readings, the rest documents.

In (lib/server/entries.js `create`): an entry's instant is `date` (epoch ms), else its
`dateString`; its clock's offset is the dateString's, else `utcOffset`; Nightscout's identity
of an entry is its type and time, so the reading's id is derived from `type:date` and a
re-post is a duplicate. One call of monitoring.ingest.record_readings per request: the one
ingest path, its validation (the plausible range of clinical.yaml), idempotency and
evaluation. The mapping makes no query of its own.

Decisions:
- `sgv` is a CGM's sensor glucose: entry `device`, the trend arrow (`direction`) and the
  uploader's device name (`device`) kept. An `sgv` below 39 is not a glucose value but a CGM
  status code (lib/plugins/errorcodes.js: 1 ?SN, 5 ?NC, 9 ?AD, 10 ???, 12 ?RF …; the client
  shows `value < 39` as the code, lib/client/index.js updateCurrentSGV): kept as a document,
  never a reading. 39 is the sensor's "LOW" (below its 40 mg/dL floor, shown as LOW there):
  a glucose reading of 39 mg/dL, so a severe low is evaluated as one, never dropped.
- `mbg` is a meter fingerstick, which Nightscout uploaders mostly take typed in by hand (a
  calibration in xDrip+, a BG in AndroidAPS): entry `manual`, so it never counts as an RPM
  transmission it may not be.
- Other types (`cal`, …) are kept as documents.
- An entry that is not stored (no time, not a number, outside the plausible range, a
  different value under a type and time already stored) is left out of the answer; the
  others are stored and answered, as Nightscout answers the entries it stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.db.models import Q

from interop.models import NightscoutCollection
from interop.nightscout.documents import (
    derived_uuid,
    epoch_ms,
    incoming_documents,
    iso_utc,
    keep_documents,
    local,
    new_document,
    number,
    object_id,
    offset_minutes,
    parse_iso,
    stored_documents,
)
from interop.nightscout.queries import TimeQuery
from monitoring.ingest import NIGHTSCOUT, ItemStatus, record_readings
from monitoring.models import Entry, Metric, Patient, Reading, ReadingSource

GLUCOSE_TYPES = {"sgv": Entry.DEVICE, "mbg": Entry.MANUAL}
# sgv below this is a CGM status code; 39 itself is the sensor's LOW, a glucose value
# (lib/client/index.js: `value < 39` an error code, `value < 40` "LOW").
SENSOR_CODE_LIMIT = 39
STORED = frozenset({ItemStatus.CREATED, ItemStatus.DUPLICATE})
DEVICE_LENGTH = 120  # Reading.device_serial
TREND_LENGTH = 24  # Reading.trend


def _instant(raw: dict) -> tuple[datetime, int] | None:
    """(the entry's instant, its clock's UTC offset in minutes), or None without a time."""
    parsed = parse_iso(raw.get("dateString"))
    milliseconds = number(raw.get("date"))
    try:
        if milliseconds is not None:
            instant = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
        elif parsed is not None:
            instant = parsed.astimezone(UTC)
        else:
            return None
    except (OverflowError, OSError, ValueError):
        return None
    return instant, offset_minutes(raw, parsed)


def _entry_type(raw: dict) -> str:
    kind = raw.get("type")
    if isinstance(kind, str) and kind:
        return kind[:16]
    return "sgv" if "sgv" in raw else "mbg" if "mbg" in raw else "sgv"


def _normalised(raw: dict, kind: str, instant: datetime, minutes: int) -> dict:
    """The entry as Nightscout stores it: `date` in ms, `sysTime` and `dateString` in UTC
    ISO with milliseconds, `utcOffset` (lib/server/entries.js create)."""
    document = dict(raw)
    document["type"] = kind
    document["date"] = epoch_ms(instant)
    document["sysTime"] = iso_utc(instant)
    document["utcOffset"] = minutes
    if "dateString" in raw:
        document["dateString"] = document["sysTime"]
    return document


def _glucose_item(
    raw: dict, kind: str, client_id: uuid.UUID, instant: datetime, minutes: int, value: float
) -> dict:
    item = {
        "id": str(client_id),
        "type": Metric.GLUCOSE,
        "measured_at": local(instant, minutes).isoformat(timespec="milliseconds"),
        "value": value,
        "unit": "mg/dL",  # Nightscout's entries are in mg/dL whatever the display unit
        "entry": GLUCOSE_TYPES[kind],
    }
    if isinstance(raw.get("device"), str) and raw["device"]:
        item["device"] = raw["device"][:DEVICE_LENGTH]
    if isinstance(raw.get("direction"), str) and raw["direction"]:
        item["trend"] = raw["direction"][:TREND_LENGTH]
    return item


def store_entries(*, patient: Patient, body: object) -> list[dict]:
    """Stores a POSTed body of entries for `patient`; returns the stored entries, in the
    order sent, each with its `_id`.

    Writes: Reading rows for sgv and mbg (through record_readings, which enqueues the
    evaluation after commit), NightscoutDocument rows for the rest.
    """
    answer: list[tuple[int, dict]] = []
    items: list[dict] = []
    pending: list[tuple[int, dict]] = []
    documents = []
    for position, raw in enumerate(incoming_documents(body)):
        when = _instant(raw)
        if when is None:
            continue
        instant, minutes = when
        kind = _entry_type(raw)
        document = _normalised(raw, kind, instant, minutes)
        value = number(raw.get(kind)) if kind in GLUCOSE_TYPES else None
        if value is not None and not (kind == "sgv" and value < SENSOR_CODE_LIMIT):
            client_id = derived_uuid(f"{kind}:{document['date']}")
            item = _glucose_item(raw, kind, client_id, instant, minutes, value)
            document["_id"] = object_id(client_id)
            items.append(item)
            pending.append((position, document))
            continue
        if kind in GLUCOSE_TYPES and value is None:
            continue  # an sgv or mbg without a number is nothing to keep
        kept = new_document(
            patient=patient,
            collection=NightscoutCollection.ENTRIES,
            key=f"{kind}:{document['date']}",
            occurred_at=instant,
            document=document,
        )
        if kept is not None:
            documents.append(kept)
            answer.append((position, document))
    if items:
        result = record_readings(patient=patient, items=items, channel=NIGHTSCOUT)
        answer += [
            pair
            for pair, outcome in zip(pending, result.results, strict=True)
            if outcome.status in STORED
        ]
    keep_documents(documents)
    return [document for _, document in sorted(answer, key=lambda pair: pair[0])]


# --- Out ----------------------------------------------------------------------------------

# A glucose reading is shown as an `sgv` when it is a CGM value uploaded through Nightscout;
# every other glucose reading of the patient (a meter through the app or a device key, an
# mbg) as an `mbg`, so a follower sees all of the patient's glucose.
SENSOR_GLUCOSE = Q(source=ReadingSource.NIGHTSCOUT, entry=Entry.DEVICE)
READING_FIELDS = ("client_id", "value", "measured_at", "utc_offset_minutes", "device_serial")


def _reading_entry(row: dict, kind: str) -> dict:
    instant = row["measured_at"]
    date = epoch_ms(instant)
    entry = {
        "_id": object_id(row["client_id"]),
        "type": kind,
        kind: round(row["value"]),  # integer mg/dL (clinical.yaml glucose display note)
        "date": date,
        "mills": date,
        "dateString": iso_utc(instant),
        "sysTime": iso_utc(instant),
        "utcOffset": row["utc_offset_minutes"],
        "device": row["device_serial"],
    }
    if kind == "sgv":
        entry["direction"] = row["trend"] or "NONE"
    return entry


def _readings(patient: Patient, kind: str | None, query: TimeQuery) -> list[dict]:
    rows = Reading.objects.filter(
        patient=patient, metric=Metric.GLUCOSE, **query.filters("measured_at")
    )
    if kind == "sgv":
        rows = rows.filter(SENSOR_GLUCOSE)
    elif kind == "mbg":
        rows = rows.exclude(SENSOR_GLUCOSE)
    rows = rows.order_by("-measured_at", "-id").values(*READING_FIELDS, "trend", "source", "entry")
    return [
        _reading_entry(
            row,
            "sgv"
            if row["source"] == ReadingSource.NIGHTSCOUT and row["entry"] == Entry.DEVICE
            else "mbg",
        )
        for row in rows[: query.count]
    ]


def list_entries(*, patient: Patient, kind: str | None, query: TimeQuery) -> list[dict]:
    """The patient's entries of `kind` (all kinds when None), newest first, at most count."""
    entries = []
    if kind in (None, *GLUCOSE_TYPES):
        entries += _readings(patient, kind, query)
    match = {"document__type": kind} if kind else {}
    entries += stored_documents(
        patient=patient, collection=NightscoutCollection.ENTRIES, query=query, **match
    )
    entries.sort(key=lambda entry: entry["date"], reverse=True)
    return entries[: query.count]
