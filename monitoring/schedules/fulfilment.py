"""Fulfilling slots from readings, and the planned doses a taking rate is computed over.

A reading that answers a slot marks it done (opening it first when it came before the sweep
opened it); the reminder sweep (monitoring/nudges/sweeps.py) leaves done slots alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Q, Value, When

from config.statements import CompiledQuery
from monitoring.models import (
    DoseStatus,
    MeasurementSchedule,
    MedicationPlan,
    Metric,
    Reading,
    Slot,
    SlotStatus,
)
from monitoring.rules.base import PlannedDose
from monitoring.schedules.slots import INSTANT, Owner, new_slot, slots_of


def fulfil_slots(
    *, patient_id: int, readings: list[Reading], owners: list[Owner] | None = None
) -> int:
    """Mark done the patient's slots these readings answer; returns how many.

    A reading of a schedule's metric answers a slot when measured_at is within
    [due_at - VIGIL_SLOT_LEAD, closes_at] (measuring a little early counts); a 'taken' dose
    of a plan's medication when its scheduled_for, or else its measured_at, is. Each reading
    answers at most one slot of a schedule, the earliest open one it can. A missed slot that
    an in-time reading answers (uploaded late, after days offline) becomes done: the record
    follows what the patient did; the miss nudge has gone and stays sent.

    `owners`: the patient's active schedules and plans as active_owners_of loaded them in
    this transaction (several patients evaluated together), or None to load them here.

    Writes: Slot rows for slots answered before the sweep opened them, Slot.status and
    fulfilled_by. Called inside the patient's evaluation transaction.
    """
    lead = settings.VIGIL_SLOT_LEAD
    answers = _within_a_window(_answers(patient_id, readings, owners), lead)
    if not answers:
        return 0
    _open_answered_slots(answers, lead)
    candidates = _answerable_slots(answers, lead)
    chosen: dict[int, int] = {}  # slot id -> reading id
    for owner, pairs in answers.items():
        slots = candidates.get((type(owner), owner.pk), [])
        for reading, moments in sorted(pairs, key=lambda pair: pair[0].measured_at):
            slot = _first_answered(slots, moments, lead, chosen)
            if slot is not None:
                chosen[slot.pk] = reading.pk
    if not chosen:
        return 0
    reading_of = Case(*(When(pk=slot, then=Value(reading)) for slot, reading in chosen.items()))
    return Slot.objects.filter(
        pk__in=chosen, status__in=[SlotStatus.OPEN, SlotStatus.MISSED]
    ).update(status=SlotStatus.DONE, fulfilled_by_id=reading_of)


def _answers(patient_id: int, readings: list[Reading], loaded: list[Owner] | None) -> dict:
    """{active schedule or plan: [(reading, [the times it may answer a slot at])]}."""
    metrics, medications = _asked(readings)
    doses = [r for r in readings if r.metric == Metric.DOSE and r.dose_status == DoseStatus.TAKEN]
    owners: list[Owner] = []
    if loaded is not None:
        owners = [
            owner
            for owner in loaded
            if (
                owner.medication in medications
                if isinstance(owner, MedicationPlan)
                else owner.metric in metrics
            )
        ]
    elif metrics or medications:
        owners = active_owners_of({patient_id: readings})[patient_id]
    answers = {}
    for owner in owners:
        if isinstance(owner, MedicationPlan):
            # scheduled_for first: it names the dose the patient answers.
            answers[owner] = [
                (dose, [t for t in (dose.scheduled_for, dose.measured_at) if t is not None])
                for dose in doses
                if dose.medication == owner.medication
            ]
        else:
            answers[owner] = [(r, [r.measured_at]) for r in readings if r.metric == owner.metric]
    return answers


def _asked(readings: list[Reading]) -> tuple[list[str], list[str]]:
    """The metrics (but doses) and the medications of taken doses these readings may answer
    slots of, sorted."""
    metrics = {r.metric for r in readings if r.metric != Metric.DOSE}
    medications = {
        r.medication
        for r in readings
        if r.metric == Metric.DOSE and r.dose_status == DoseStatus.TAKEN
    }
    return sorted(metrics), sorted(medications)


def active_owners_of(readings_of: dict[int, list[Reading]]) -> dict[int, list[Owner]]:
    """The active schedules and plans each patient's readings may answer, for several
    patients in one query per kind: {patient id: its schedules and plans}."""
    return send_active_owners(readings_of)()


def send_active_owners(
    readings_of: dict[int, list[Reading]],
) -> Callable[[], dict[int, list[Owner]]]:
    """active_owners_of, its queries sent (CompiledQuery.send: with the others of an
    enclosing sent_together() block); call the result after the block for the owners."""
    metrics, medications = set(), set()
    for readings in readings_of.values():
        asked_metrics, asked_medications = _asked(readings)
        metrics.update(asked_metrics)
        medications.update(asked_medications)
    patient_ids = sorted(readings_of)
    sent = []
    if metrics:
        sent.append(_active_schedules_of_patients.send(patient_ids, sorted(metrics)))
    if medications:
        sent.append(_active_plans_of_patients.send(patient_ids, sorted(medications)))

    def owners() -> dict[int, list[Owner]]:
        found: dict[int, list[Owner]] = {patient_id: [] for patient_id in patient_ids}
        for query in sent:
            for owner in query.rows():
                found[owner.patient_id].append(owner)
        return found

    return owners


# On every reading's evaluation: compiled once per number of metrics or medications; the
# patients' ids as one array parameter (config/statements.py AnyOf), one patient or several.
_active_schedules_of_patients = CompiledQuery(
    lambda patient_ids, metrics: (
        MeasurementSchedule.objects.filter(
            patient_id__any=patient_ids,
            active=True,
            metric__in=metrics,
        )
        .select_related("patient")
        .order_by("patient_id", "id")
    ),
    params=lambda patient_ids, metrics: [*metrics, patient_ids],
    shape=lambda patient_ids, metrics: len(metrics),
)
_active_plans_of_patients = CompiledQuery(
    lambda patient_ids, medications: (
        MedicationPlan.objects.filter(
            patient_id__any=patient_ids,
            active=True,
            medication__in=medications,
        )
        .select_related("patient")
        .order_by("patient_id", "id")
    ),
    params=lambda patient_ids, medications: [*medications, patient_ids],
    shape=lambda patient_ids, medications: len(medications),
)


def _within_a_window(answers: dict, lead: timedelta) -> dict:
    """Keep the readings that fall in one of their schedule's windows, computed from its
    times (no query). Most readings — a CGM's, every five minutes — answer no slot, and then
    cost no slot query. (A slot opened before its schedule's times were edited keeps its old
    window; a reading answering only that old window is not matched.)"""
    kept = {}
    for owner, pairs in answers.items():
        start, end = _span(owner, pairs, lead)
        windows = slots_of(owner, zone=owner.patient.zone, start=start, end=end + INSTANT)
        inside = [
            (reading, moments)
            for reading, moments in pairs
            if any(due - lead <= m <= closes for m in moments for due, closes in windows)
        ]
        if inside:
            kept[owner] = inside
    return kept


def _moments(pairs) -> list[datetime]:
    return [moment for _, moments in pairs for moment in moments]


def _span(owner: Owner, pairs, lead: timedelta) -> tuple[datetime, datetime]:
    """The due times of the slots these readings could answer."""
    moments = _moments(pairs)
    return min(moments) - timedelta(minutes=owner.window_minutes), max(moments) + lead


def _open_answered_slots(answers: dict, lead: timedelta) -> None:
    """Create the slots readings answer before the sweep opened them (measured early). Only
    at or after `next_slot_at`: the sweep has opened the earlier ones, or chose not to."""
    slots = []
    for owner, pairs in answers.items():
        if owner.next_slot_at is None:
            continue
        start, end = _span(owner, pairs, lead)
        moments = _moments(pairs)
        slots += [
            new_slot(owner, due_at, closes_at)
            for due_at, closes_at in slots_of(
                owner,
                zone=owner.patient.zone,
                start=max(start, owner.next_slot_at),
                end=end + INSTANT,
            )
            if any(due_at - lead <= moment <= closes_at for moment in moments)
        ]
    Slot.objects.bulk_create(slots, ignore_conflicts=True)


def _answerable_slots(answers: dict, lead: timedelta) -> dict:
    """The open or missed slots the readings may answer, by (model, owner id): one query."""
    spans = [_span(owner, pairs, lead) for owner, pairs in answers.items()]
    schedules = [owner.pk for owner in answers if isinstance(owner, MeasurementSchedule)]
    plans = [owner.pk for owner in answers if isinstance(owner, MedicationPlan)]
    slots = Slot.objects.filter(
        Q(schedule_id__in=schedules) | Q(plan_id__in=plans),
        status__in=[SlotStatus.OPEN, SlotStatus.MISSED],
        due_at__gte=min(start for start, _ in spans),
        due_at__lte=max(end for _, end in spans),
    ).order_by("due_at", "id")
    grouped: dict = {}
    for slot in slots:
        if slot.plan_id:
            grouped.setdefault((MedicationPlan, slot.plan_id), []).append(slot)
        else:
            grouped.setdefault((MeasurementSchedule, slot.schedule_id), []).append(slot)
    return grouped


def _first_answered(slots: list[Slot], moments, lead: timedelta, chosen: dict) -> Slot | None:
    for moment in moments:
        for slot in slots:
            if slot.pk not in chosen and slot.due_at - lead <= moment <= slot.closes_at:
                return slot
    return None


def planned_doses(*, patient_id: int, since: datetime, now: datetime) -> list[PlannedDose]:
    """The patient's scheduled doses due after `since` that are decided by `now`: answered
    by a dose taken, or closed (skipped or never logged). Open slots still in their window are
    not decided yet (clinical.yaml taking_adherence: "only doses whose scheduled time has
    passed the grace window")."""
    rows = (
        Slot.objects.filter(patient_id=patient_id, plan__isnull=False, due_at__gt=since)
        .filter(Q(status=SlotStatus.DONE) | Q(closes_at__lte=now))
        .order_by("due_at")
        .values_list(
            "plan__medication", "due_at", "status", "closes_at", "fulfilled_by__measured_at"
        )
    )
    return [
        PlannedDose(
            medication=medication,
            due_at=due_at,
            taken=status == SlotStatus.DONE,
            at=(taken_at or due_at) if status == SlotStatus.DONE else closes_at,
        )
        for medication, due_at, status, closes_at, taken_at in rows
    ]
