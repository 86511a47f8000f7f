"""What Nightscout's collections have in common: a body of one document or many, `_id`s,
times as Nightscout writes them, and keeping documents that are not readings."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

from interop.models import NightscoutDocument
from monitoring.models import Patient

# Readings and documents from Nightscout get ids derived from Nightscout's identity keys,
# so a re-post derives the same id (and the database sees the duplicate).
NAMESPACE = uuid.UUID("0c7d3b2e-5f1a-4c8e-9b6d-2e4f8a1c3d57")
# The UTC offsets places use run from -12:00 to +14:00 (monitoring.ingest.validation).
MAX_OFFSET_MINUTES = 14 * 60
# Nightscout reads credentials from these and deletes them from the body
# (lib/authorization/index.js): never kept in a stored document.
CREDENTIAL_KEYS = ("secret", "token")


def incoming_documents(body: object) -> list[dict]:
    """The documents of a POST body: one object or an array of them (non-objects skipped,
    as Nightscout's stream skips them)."""
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        return []
    documents = []
    for raw in body:
        if isinstance(raw, dict):
            documents.append({k: v for k, v in raw.items() if k not in CREDENTIAL_KEYS})
    return documents


def derived_uuid(key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, key)


def object_id(client_id: uuid.UUID) -> str:
    """A Nightscout `_id`: 24 hex digits, as a MongoDB ObjectId is written."""
    return client_id.hex[:24]


def iso_utc(instant: datetime) -> str:
    """As JavaScript's Date.toISOString(): UTC, milliseconds, `Z`."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)


def number(value: object) -> float | None:
    """A finite number, from a number or a numeric string ("140", as legacy uploaders send)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def offset_minutes(raw: dict, parsed: datetime | None) -> int:
    """The UTC offset of the document's own clock: its ISO string's, else `utcOffset`, else 0."""
    if parsed is not None and parsed.utcoffset() is not None:
        minutes = int(parsed.utcoffset() / timedelta(minutes=1))
    else:
        minutes = raw.get("utcOffset")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float):
            return 0
        minutes = int(minutes)
    return minutes if abs(minutes) <= MAX_OFFSET_MINUTES else 0


def local(instant: datetime, minutes: int) -> datetime:
    return instant.astimezone(timezone(timedelta(minutes=minutes)))


def keep_documents(documents: list[NightscoutDocument]) -> None:
    """Writes the documents not yet kept; one already kept under the same key stays as it
    was (Nightscout replaces it; a record a clinician may have seen is not rewritten)."""
    if documents:
        NightscoutDocument.objects.bulk_create(documents, ignore_conflicts=True)


def new_document(
    *, patient: Patient, collection: str, key: str, occurred_at: datetime, document: dict
) -> NightscoutDocument | None:
    """The row keeping `document` (its `_id` set), or None for one PostgreSQL's jsonb cannot
    hold: a NUL character anywhere in it would fail the whole request's insert."""
    if "\\u0000" in json.dumps(document):
        return None
    document_id = object_id(derived_uuid(f"{collection}:{key}"))
    document["_id"] = document_id
    return NightscoutDocument(
        patient=patient,
        collection=collection,
        key=key[:200],
        document_id=document_id,
        occurred_at=occurred_at,
        document=document,
    )


def stored_documents(*, patient: Patient, collection: str, query, **match) -> list[dict]:
    rows = (
        NightscoutDocument.objects.filter(
            patient=patient, collection=collection, **query.filters("occurred_at"), **match
        )
        .order_by("-occurred_at", "-id")
        .values_list("document", flat=True)[: query.count]
    )
    return list(rows)
