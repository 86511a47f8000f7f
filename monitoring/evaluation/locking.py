"""The per-patient evaluation lock and the units evaluation shows values in."""

from __future__ import annotations

from django.db import connection

from config.statements import hot_cursor
from monitoring.units import metric_units


def lock_patient(patient_id: int) -> None:
    """Serialise evaluations of one patient until the transaction ends (PostgreSQL); SQLite
    already serialises writers (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        with hot_cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7301, patient_id])


def unit_of(metric: str) -> str:
    """The canonical unit as shown to clinicians (INR and doses have none)."""
    units = metric_units().get(metric)
    if units is None or units.canonical_unit == "{INR}":
        return ""
    return units.canonical_unit
