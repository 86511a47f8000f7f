"""Lightweight readings, rules and contexts for the pure rule kinds (no database).

A rule kind reads what a Context gives it and returns findings; these stand-ins have the
attributes the kinds read (monitoring.rules.base.ReadingLike / RuleLike) and nothing else.
Rules are built from the product's protocol templates, so a test of a default exercises the
numbers the product took from the clinical reference.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from monitoring.protocols import protocol_templates
from monitoring.rules.base import Context
from monitoring.units import UNIT_ALIASES, metric_units

REFERENCE_PATH = Path(__file__).resolve().parents[3] / "monitoring" / "clinical.yaml"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")

_ids = itertools.count(1)


@cache
def _reference() -> dict:
    with REFERENCE_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def reference(path: str) -> object:
    """An entry of the clinical reference by dotted path; list items by `id` or position.

    Read here, independently of monitoring.protocols, so that tests compare the product
    with the file rather than with the product's own reading of it.
    """
    node: object = _reference()
    for part in path.split("."):
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() else next(e for e in node if e["id"] == part)
        else:
            node = node[part]
    return node


@dataclass(frozen=True)
class FakeReading:
    measured_at: datetime
    metric: str = "glucose"
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    medication: str = ""
    dose_status: str = ""
    scheduled_for: datetime | None = None
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True, eq=False)
class FakeRule:
    kind: str
    metric: str
    severity: str
    parameters: dict
    title: str = "A rule"
    group: str = "a_group"
    version: int = 1
    created_at: datetime | None = None
    id: int = field(default_factory=lambda: next(_ids))


def template(key: str):
    """The protocol default with this key (the same in every protocol that has it)."""
    for templates in protocol_templates().values():
        for candidate in templates:
            if candidate.key == key:
                return candidate
    raise LookupError(key)


def default_rule(key: str, *, parameters: dict | None = None, **overrides) -> FakeRule:
    """A patient's copy of a protocol default, optionally tailored."""
    source = template(key)
    return FakeRule(
        kind=source.kind,
        metric=source.metric,
        severity=source.severity,
        parameters=source.parameters if parameters is None else parameters,
        title=source.title,
        group=source.group,
        **overrides,
    )


def reading(metric: str, at: datetime, value: float | None = None, **fields) -> FakeReading:
    return FakeReading(measured_at=at, metric=metric, value=value, **fields)


def bp(at: datetime, systolic: float, diastolic: float) -> FakeReading:
    return FakeReading(
        measured_at=at, metric="blood_pressure", systolic=systolic, diastolic=diastolic
    )


def dose(at: datetime, status: str, medication: str = "warfarin-5mg") -> FakeReading:
    return FakeReading(
        measured_at=at, metric="dose", medication=medication, dose_status=status, scheduled_for=at
    )


def context(
    new: Iterable[FakeReading],
    *,
    history: Iterable[FakeReading] = (),
    now: datetime = NOW,
    zone: ZoneInfo = NEW_YORK,
    unit: str = "",
) -> Context:
    """`new` are the readings not yet evaluated; `history` the evaluated ones before them.
    The kind sees history + new, oldest first, as evaluation loads them."""
    new = sorted(new, key=lambda r: (r.measured_at, r.id))
    everything = sorted([*history, *new], key=lambda r: (r.measured_at, r.id))
    return Context(now=now, zone=zone, unit=unit, new=new, history=everything)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def stated_limit(path: str, pattern: str = r"(?:<=|>=|<|>) (\d+(?:\.\d+)?)") -> float:
    """The number a reference entry states in its `rule` sentence ('INR >= 5.0' -> 5.0)."""
    match = re.search(pattern, reference(path)["rule"])
    assert match, f"no limit in {path}"
    return float(match[1])


def to_canonical(metric: str, value: float, unit: str) -> float:
    """A value as ingestion stores it (conversion factors from the clinical reference)."""
    return metric_units()[metric].units[UNIT_ALIASES.get(unit, unit)].to_canonical(value)
