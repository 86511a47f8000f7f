"""Whether anyone is paged about a patient's alert right now: silences, decided in one place.

A silence covers a patient (every rule) or one of their rules for [starts_at, ends_at). A
silenced alert is still recorded, raised, folded and escalated in the history; only the
paging is held back. Evaluation, routing and the reminder escalation all ask here.
"""

from datetime import datetime

from alerts.models import Silence
from config.statements import CompiledQuery


def active_silences(*, patient_id: int, at: datetime) -> list[Silence]:
    """The patient's silences in force at `at` (one query, for deciding several alerts)."""
    return _active_silences(patient_id, at)


# Asked by every evaluation that raises an alert: compiled once (config/statements.py).
_active_silences = CompiledQuery(
    lambda patient_id, at: Silence.objects.filter(
        patient_id=patient_id, starts_at__lte=at, ends_at__gt=at
    ),
    params=lambda patient_id, at: [at, patient_id, at],
)


def is_silenced(*, patient_id: int, rule_id: int | None, at: datetime) -> bool:
    """True when a silence covers this patient's rule (or all their rules) at `at`."""
    return covered(active_silences(patient_id=patient_id, at=at), rule_id=rule_id, at=at)


def covered(silences: list[Silence], *, rule_id: int | None, at: datetime) -> bool:
    return any(silence.covers(rule_id=rule_id, at=at) for silence in silences)
