"""Nightscout treatments and device status: kept as sent; a BG Check is also a reading.

Treatments are identified by eventType and created_at (lib/server/treatments.js
upsertQueryFor); a treatment without created_at gets the time it arrived, as Nightscout
gives it. Device status documents (loop/openaps/pump/uploader state) are identified here by
created_at and device: Nightscout inserts every one (lib/server/devicestatus.js), so a
client's retry would add a copy there; here it adds nothing.

A `BG Check` with `glucose` is a fingerstick glucose: besides the treatment (which
followers expect back from /treatments), a glucose reading through record_readings, in the
treatment's `units` (`mmol` → mmol/L, otherwise mg/dL, Nightscout's default), entry
`manual` (the careportal's and AndroidAPS's BG check is typed in), its id derived from
eventType and created_at so a re-post is a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

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
    offset_minutes,
    parse_iso,
    stored_documents,
)
from interop.nightscout.queries import TimeQuery
from monitoring.ingest import NIGHTSCOUT, record_readings
from monitoring.models import Entry, Metric, Patient

BG_CHECK = "BG Check"
MMOL_SPELLINGS = frozenset({"mmol", "mmol/l", "mmol/L"})


def _created_at(raw: dict, now: datetime) -> tuple[datetime, int]:
    parsed = parse_iso(raw.get("created_at"))
    if parsed is None:
        milliseconds = number(raw.get("date")) or number(raw.get("mills"))
        if milliseconds is not None:
            try:
                parsed = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
            except (OverflowError, OSError, ValueError):
                parsed = None
    if parsed is None:
        return now, 0
    return parsed.astimezone(UTC), offset_minutes(raw, parsed)


def _bg_check_item(raw: dict, instant: datetime, minutes: int) -> dict | None:
    value = number(raw.get("glucose"))
    if raw.get("eventType") != BG_CHECK or value is None:
        return None
    units = raw.get("units")
    item = {
        "id": str(derived_uuid(f"treatment:{BG_CHECK}:{epoch_ms(instant)}")),
        "type": Metric.GLUCOSE,
        "measured_at": local(instant, minutes).isoformat(timespec="milliseconds"),
        "value": value,
        "unit": "mmol/L" if units in MMOL_SPELLINGS else "mg/dL",
        "entry": Entry.MANUAL,
    }
    device = raw.get("enteredBy") or raw.get("device")
    if isinstance(device, str) and device:
        item["device"] = device[:120]
    return item


def store_treatments(*, patient: Patient, body: object) -> list[dict]:
    """Keeps a POSTed body of treatments; returns them as stored, each with `_id`.

    Writes: NightscoutDocument rows; Reading rows for BG Checks (record_readings, which
    enqueues the evaluation after commit).
    """
    now = timezone.now()
    answer, documents, items = [], [], []
    for raw in incoming_documents(body):
        instant, minutes = _created_at(raw, now)
        document = dict(raw, created_at=iso_utc(instant), utcOffset=minutes)
        event = raw.get("eventType") if isinstance(raw.get("eventType"), str) else ""
        kept = new_document(
            patient=patient,
            collection=NightscoutCollection.TREATMENTS,
            key=f"{event}:{document['created_at']}",
            occurred_at=instant,
            document=document,
        )
        if kept is None:
            continue
        documents.append(kept)
        answer.append(document)
        item = _bg_check_item(raw, instant, minutes)
        if item is not None:
            items.append(item)
    keep_documents(documents)
    if items:
        record_readings(patient=patient, items=items, channel=NIGHTSCOUT)
    return answer


def store_device_statuses(*, patient: Patient, body: object) -> list[dict]:
    """Keeps a POSTed body of device status documents; returns them with `_id`.
    Writes: NightscoutDocument rows."""
    now = timezone.now()
    answer, documents = [], []
    for raw in incoming_documents(body):
        instant, minutes = _created_at(raw, now)
        document = dict(raw, created_at=iso_utc(instant), utcOffset=minutes)
        device = raw.get("device") if isinstance(raw.get("device"), str) else ""
        kept = new_document(
            patient=patient,
            collection=NightscoutCollection.DEVICESTATUS,
            key=f"{document['created_at']}:{device}",
            occurred_at=instant,
            document=document,
        )
        if kept is not None:
            documents.append(kept)
            answer.append(document)
    keep_documents(documents)
    return answer


def list_documents(*, patient: Patient, collection: str, query: TimeQuery) -> list[dict]:
    """A patient's treatments or device status, newest first, at most count."""
    return stored_documents(patient=patient, collection=collection, query=query)
