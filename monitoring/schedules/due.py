"""Slots falling due and closing: opening them, and claiming each one's reminder and miss.

The reminder sweep (monitoring/nudges/sweeps.py) acts on what this module claims; each claim
is a conditional UPDATE or a SKIP LOCKED row lock, so two sweeps at once, or a retried one,
claim each slot's reminder and miss once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from monitoring.models import MeasurementSchedule, MedicationPlan, Slot, SlotStatus
from monitoring.schedules.slots import INSTANT, Owner, first_due_at, new_slot, slots_of


def open_due_slots(*, now: datetime, batch: int) -> bool:
    """Create the Slot rows of the schedules and plans whose next slot is due, and move their
    deadline (`next_slot_at`) to the next one; returns whether a batch was full.

    Writes: Slot rows, MeasurementSchedule / MedicationPlan.next_slot_at.
    """
    full = [_open_due_slots(model, now, batch) for model in (MeasurementSchedule, MedicationPlan)]
    return any(full)


def _open_due_slots(model: type[Owner], now: datetime, batch: int) -> bool:
    """A slot whose window closed before any sweep saw it (beat was down) is not created:
    nobody reminded the patient, and the miss would not be theirs."""
    with transaction.atomic():
        # NO KEY UPDATE: a plain FOR UPDATE would block the foreign-key check of a slot that
        # an evaluation inserts for this schedule meanwhile (fulfil_slots), after that insert
        # took the unique entry this one then waits on: a deadlock (measured in
        # tests/monitoring/nudges/test_sweeps.py). Two sweeps still exclude each other.
        owners = list(
            model.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
            .select_related("patient")
            .filter(active=True, next_slot_at__lte=now)
            .order_by("next_slot_at")[:batch]
        )
        slots = []
        for owner in owners:
            zone = owner.patient.zone
            slots += [
                new_slot(owner, due_at, closes_at)
                for due_at, closes_at in slots_of(
                    owner, zone=zone, start=owner.next_slot_at, end=now + INSTANT
                )
                if closes_at > now
            ]
            owner.next_slot_at = first_due_at(owner, zone=zone, at_or_after=now + INSTANT)
        # (schedule, due_at) and (plan, due_at) are unique: a slot a reading opened stays.
        Slot.objects.bulk_create(slots, ignore_conflicts=True)
        model.objects.bulk_update(owners, ["next_slot_at"])
    return len(owners) == batch


def slots_to_remind(*, now: datetime, batch: int) -> list[Slot]:
    """Open slots inside their window whose reminder has not gone, oldest first. Open slots
    are few (those inside their window): the slot_open_closing index serves this."""
    return list(
        Slot.objects.filter(
            status=SlotStatus.OPEN, reminded_at__isnull=True, due_at__lte=now, closes_at__gt=now
        )
        .select_related("patient", "schedule", "plan")
        .order_by("due_at", "id")[:batch]
    )


def claim_reminder(*, slot: Slot, now: datetime) -> bool:
    """Claim the slot's reminder (Slot.reminded_at); False when another sweep has, or the
    slot is no longer open."""
    claimed = Slot.objects.filter(
        pk=slot.pk, status=SlotStatus.OPEN, reminded_at__isnull=True
    ).update(reminded_at=now)
    if claimed:
        slot.reminded_at = now
    return bool(claimed)


def closed_open_slots(*, now: datetime, batch: int) -> list[Slot]:
    """Slots whose window closed while still open (no reading or dose), oldest first."""
    return list(
        Slot.objects.filter(status=SlotStatus.OPEN, closes_at__lte=now)
        .select_related("patient", "schedule", "plan")
        .order_by("closes_at", "id")[:batch]
    )


def claim_miss(*, slot: Slot, now: datetime) -> bool:
    """Mark the slot missed and claim its miss (Slot.miss_handled_at); False when another
    sweep has, or a reading answered it meanwhile."""
    claimed = Slot.objects.filter(pk=slot.pk, status=SlotStatus.OPEN).update(
        status=SlotStatus.MISSED, miss_handled_at=now
    )
    if claimed:
        slot.status, slot.miss_handled_at = SlotStatus.MISSED, now
    return bool(claimed)
