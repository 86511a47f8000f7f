"""Reading ingestion: validate, normalise, insert a batch in one statement, enqueue on commit.

Validation touches no database (docs/architecture.md, "Performance facts we measured":
per-item queries are what make the textbook endpoint slow); the batch is written by one
`INSERT … ON CONFLICT DO NOTHING RETURNING`,
rows sorted by key so concurrent retries of overlapping batches cannot deadlock, and the
database alone decides which request created a row.
"""

from monitoring.ingest.store import (
    APP,
    COLUMNS,
    DEVICE_KEY,
    FHIR,
    NIGHTSCOUT,
    PART_OF,
    PULSE_NAMESPACE,
    Channel,
    IngestResult,
    ItemResult,
    ItemStatus,
    _rows,
    record_readings,
)
from monitoring.ingest.validation import (
    MalformedBatch,
    ValidReading,
    echo_id,
    parse_batch,
    parse_timestamp,
    validate_item,
)

__all__ = [
    "APP",
    "COLUMNS",
    "DEVICE_KEY",
    "FHIR",
    "NIGHTSCOUT",
    "PART_OF",
    "PULSE_NAMESPACE",
    "Channel",
    "IngestResult",
    "ItemResult",
    "ItemStatus",
    "MalformedBatch",
    "ValidReading",
    "_rows",
    "echo_id",
    "parse_batch",
    "parse_timestamp",
    "record_readings",
    "validate_item",
]
