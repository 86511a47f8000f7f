"""Protocol default schedules (schedules.yaml) and adding or changing a patient's schedules
and medication plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import yaml
from django.db import transaction
from django.utils import timezone

from monitoring.models import MeasurementSchedule, MedicationPlan, Metric, Patient, Protocol
from monitoring.schedules.slots import (
    Owner,
    clean_clock_times,
    clean_days_of_week,
    clean_window_minutes,
    reschedule,
)

DEFAULTS_PATH = Path(__file__).resolve().parents[1] / "schedules.yaml"
TIMING_FIELDS = {"times", "dose_times", "days_of_week", "window_minutes", "active"}


@dataclass(frozen=True)
class ScheduleTemplate:
    key: str
    protocol: str
    metric: str
    times: tuple[str, ...]
    days_of_week: tuple[int, ...]
    window_minutes: int


def _template(protocol: str, spec: dict) -> ScheduleTemplate:
    if spec["metric"] not in Metric.values or spec["metric"] == Metric.DOSE:
        raise ValueError(f"{protocol}.{spec['key']}: {spec['metric']!r} is not a measurement")
    return ScheduleTemplate(
        key=spec["key"],
        protocol=protocol,
        metric=spec["metric"],
        times=tuple(clean_clock_times(spec["times"])),
        days_of_week=tuple(clean_days_of_week(spec.get("days_of_week", []))),
        window_minutes=clean_window_minutes(spec["window_minutes"]),
    )


@cache
def schedule_templates() -> dict[str, tuple[ScheduleTemplate, ...]]:
    with DEFAULTS_PATH.open(encoding="utf-8") as handle:
        definitions = yaml.safe_load(handle)
    return {
        protocol: tuple(_template(protocol, spec) for spec in specs)
        for protocol, specs in definitions.items()
    }


def apply_protocol_schedules(
    *, patient: Patient, codes: list[str], now: datetime | None = None
) -> int:
    """Give the patient their own copy of each protocol's default measurement schedules.

    Writes: MeasurementSchedule rows, each with its first `next_slot_at`. A schedule the
    patient already has (same key, e.g. from another protocol) is kept as it is; two
    concurrent calls copy it once ((patient, key) is unique). Returns how many were added.
    """
    now = now or timezone.now()
    protocols = {p.code: p for p in Protocol.objects.for_codes(codes)}
    existing = set(patient.measurement_schedules.values_list("key", flat=True))
    new = []
    for code in codes:
        for template in schedule_templates().get(code, ()):
            if template.key in existing:
                continue
            existing.add(template.key)
            schedule = MeasurementSchedule(
                patient=patient,
                key=template.key,
                protocol=protocols.get(code),
                metric=template.metric,
                times=list(template.times),
                days_of_week=list(template.days_of_week),
                window_minutes=template.window_minutes,
            )
            reschedule(schedule, zone=patient.zone, now=now)
            new.append(schedule)
    MeasurementSchedule.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def add_measurement_schedule(
    *,
    patient: Patient,
    key: str,
    metric: str,
    times: list[str],
    window_minutes: int,
    days_of_week: list[int] | None = None,
    active: bool = True,
    now: datetime | None = None,
) -> MeasurementSchedule:
    """Writes a MeasurementSchedule with its first `next_slot_at`. A key the patient already
    has raises IntegrityError (the unique constraint decides, not a pre-check)."""
    schedule = MeasurementSchedule(
        patient=patient,
        key=key,
        metric=metric,
        times=times,
        days_of_week=days_of_week or [],
        window_minutes=window_minutes,
        active=active,
    )
    reschedule(schedule, zone=patient.zone, now=now or timezone.now())
    schedule.save()
    return schedule


def add_medication_plan(
    *,
    patient: Patient,
    medication: str,
    name: str,
    dose_times: list[str],
    window_minutes: int,
    days_of_week: list[int] | None = None,
    critical: bool = False,
    active: bool = True,
    now: datetime | None = None,
) -> MedicationPlan:
    """Writes a MedicationPlan with its first `next_slot_at`. A medication the patient
    already has a plan for raises IntegrityError."""
    plan = MedicationPlan(
        patient=patient,
        medication=medication,
        name=name,
        dose_times=dose_times,
        days_of_week=days_of_week or [],
        window_minutes=window_minutes,
        critical=critical,
        active=active,
    )
    reschedule(plan, zone=patient.zone, now=now or timezone.now())
    plan.save()
    return plan


def change_schedule(*, owner: Owner, now: datetime | None = None, **changes: object) -> Owner:
    """Change a measurement schedule or medication plan under a row lock (the sweep may be
    opening its slot at this moment).

    Writes: the row, and `next_slot_at` again when its timing changed. Slots already opened
    keep the times they were opened with.
    """
    with transaction.atomic():
        current = (
            type(owner)
            .objects.select_for_update(no_key=True, of=("self",))
            .select_related("patient")
            .get(pk=owner.pk)
        )
        for field, value in changes.items():
            setattr(current, field, value)
        if TIMING_FIELDS & set(changes):
            reschedule(current, zone=current.patient.zone, now=now or timezone.now())
        current.save()
    return current
