"""The per-patient evaluation lock and the units evaluation shows values in."""

from __future__ import annotations

from django.db import connection

from config.statements import hot_cursor
from monitoring.units import metric_units

# The first key of a patient's evaluation lock (pg_advisory_xact_lock(key, patient id)).
PATIENT_LOCK = 7301


def lock_patient(patient_id: int) -> None:
    """Serialise evaluations of one patient until the transaction ends (PostgreSQL); SQLite
    already serialises writers (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        with hot_cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PATIENT_LOCK, patient_id])


def lock_patients(patient_ids: list[int]) -> None:
    """lock_patient for several patients in one statement, in id order (two callers locking
    overlapping patients wait for each other instead of each holding what the other wants)."""
    if connection.vendor == "postgresql":
        with hot_cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s::integer, patient_id) "
                "FROM unnest(%s::integer[]) WITH ORDINALITY AS locked (patient_id, position) "
                "ORDER BY position",
                [PATIENT_LOCK, sorted(patient_ids)],
            )


def unit_of(metric: str) -> str:
    """The canonical unit as shown to clinicians (INR and doses have none)."""
    units = metric_units().get(metric)
    if units is None or units.canonical_unit == "{INR}":
        return ""
    return units.canonical_unit
