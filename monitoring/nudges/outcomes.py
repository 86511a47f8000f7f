"""Did the patient act after a nudge? Outcomes settle once their window closes and feed the
patient's record with the variant (VariantPosterior), which the policy learns from.

What "acted" means, by purpose:
- a reminder (measurement or dose due): the slot got done before it closed
  (`outcome_due_at` = the slot's `closes_at`);
- after a miss: within OUTCOME_WINDOW the patient logged the missed one after all, or did the
  next slot of the same schedule or plan; no such slot closed in the window → no outcome;
- a streak: every slot due in the OUTCOME_WINDOW after it was done; none due → no outcome;
- keep sending (days with data at risk): a physiologic reading measured by a device within
  the OUTCOME_WINDOW after it (what the period's days count; keep_sending.py).
"No outcome" leaves `acted` empty and clears `outcome_due_at`: nothing is learned from it.

Only nudges that reached the patient (status sent) count for the variant; the rest still get
their outcome recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from monitoring.models import (
    DoseStatus,
    Metric,
    Nudge,
    NudgePurpose,
    NudgeStatus,
    Reading,
    Slot,
    SlotStatus,
    VariantPosterior,
)
from monitoring.nudges.keep_sending import first_device_reading

# How long after a slotless nudge (streak, keep sending) or a nudge after a miss its outcome
# is watched.
OUTCOME_WINDOW = timedelta(hours=24)
# Nudges settled per run; the task runs again at once when there were more.
SETTLE_BATCH = 500

DUE_PURPOSES = {NudgePurpose.MEASUREMENT_DUE, NudgePurpose.DOSE_DUE}
MISSED_PURPOSES = {NudgePurpose.MEASUREMENT_MISSED, NudgePurpose.DOSE_MISSED}


def slot_done_at(slot: Slot, *, until: datetime, taken_only: bool = False) -> datetime | None:
    """When the patient answered the slot, if by `until`; else None. `taken_only`: a plan's
    slot counts as answered only by a dose taken.

    A slot marked done counts (its reading's time). So does a reading that answers it but
    has not been given to it yet (evaluation runs moments after the upload), with the bounds
    fulfil_slots uses: measured (a dose: scheduled for, or taken) from VIGIL_SLOT_LEAD before
    the slot's time; a measurement of the schedule's metric, or a dose of the plan's
    medication, taken or skipped: a patient who logged a skipped dose has answered and is not
    reminded of it, nor counted as missing it (clinical.yaml's missed_dose_flag: "not
    confirmed taken (and not explicitly skipped)"; the taking rate still counts it as not
    taken). A reading that fulfilled another slot does not count twice.
    """
    if slot.status == SlotStatus.DONE:
        reading = slot.fulfilled_by
        done = reading.measured_at if reading is not None else slot.due_at
        return done if done <= until else None
    start = slot.due_at - settings.VIGIL_SLOT_LEAD
    readings = Reading.objects.filter(patient_id=slot.patient_id, measured_at__lte=until).exclude(
        Exists(Slot.objects.filter(fulfilled_by=OuterRef("pk")).exclude(pk=slot.pk))
    )
    if slot.plan_id is not None:
        readings = readings.filter(metric=Metric.DOSE, medication=slot.plan.medication).filter(
            Q(scheduled_for__gte=start, scheduled_for__lte=until) | Q(measured_at__gte=start)
        )
        if taken_only:
            readings = readings.filter(dose_status=DoseStatus.TAKEN)
    else:
        readings = readings.filter(metric=slot.schedule.metric, measured_at__gte=start)
    return readings.order_by("measured_at").values_list("measured_at", flat=True).first()


def settle_nudge_outcomes(*, now: datetime, limit: int = SETTLE_BATCH) -> int:
    """Record the outcome of nudges whose window has closed; return how many were taken.

    Writes: Nudge.acted / acted_at (or clears outcome_due_at: no outcome), and one success
    or failure on the patient's VariantPosterior of a delivered nudge's variant, counted
    with F(). Each nudge is claimed by a conditional UPDATE on `acted IS NULL`, in the same
    transaction as its count, so a re-run or a second worker counts nothing twice.
    """
    due = list(
        Nudge.objects.filter(acted__isnull=True, outcome_due_at__lte=now)
        .select_related("slot__schedule", "slot__plan", "slot__fulfilled_by")
        .order_by("outcome_due_at", "id")[:limit]
    )
    for nudge in due:
        _settle(nudge)
    return len(due)


def _settle(nudge: Nudge) -> None:
    acted, acted_at = outcome(nudge)
    with transaction.atomic():
        claim = Nudge.objects.filter(pk=nudge.pk, acted__isnull=True)
        if acted is None:
            claim.filter(outcome_due_at=nudge.outcome_due_at).update(outcome_due_at=None)
            return
        if not claim.update(acted=acted, acted_at=acted_at):
            return
        status = Nudge.objects.values_list("status", flat=True).get(pk=nudge.pk)
        if nudge.variant_id is not None and status == NudgeStatus.SENT:
            count_outcome(patient_id=nudge.patient_id, variant_id=nudge.variant_id, acted=acted)


def count_outcome(*, patient_id: int, variant_id: int, acted: bool) -> None:
    """One more success or failure on the patient's record with the variant."""
    VariantPosterior.objects.bulk_create(
        [VariantPosterior(patient_id=patient_id, variant_id=variant_id)], ignore_conflicts=True
    )
    field = "successes" if acted else "failures"
    VariantPosterior.objects.filter(patient_id=patient_id, variant_id=variant_id).update(
        **{field: F(field) + 1}
    )


def outcome(nudge: Nudge) -> tuple[bool | None, datetime | None]:
    """(acted, when) for a nudge whose window has closed; (None, None) when there is none."""
    until = nudge.outcome_due_at
    if nudge.purpose == NudgePurpose.STREAK:
        slots = Slot.objects.filter(
            patient_id=nudge.patient_id, due_at__gte=nudge.created_at, closes_at__lte=until
        )
        return _all_done(list(_with_related(slots)))
    if nudge.purpose == NudgePurpose.KEEP_SENDING:
        at = first_device_reading(patient_id=nudge.patient_id, start=nudge.created_at, until=until)
        return at is not None, at
    if nudge.slot is None:  # the slot was deleted with its schedule: nothing to learn
        return None, None
    if nudge.purpose in MISSED_PURPOSES:
        late = slot_done_at(nudge.slot, until=until)
        if late is not None:
            return True, late
        owner = {"plan_id": nudge.slot.plan_id, "schedule_id": nudge.slot.schedule_id}
        later = Slot.objects.filter(**owner, due_at__gte=nudge.created_at, closes_at__lte=until)
        slots = list(_with_related(later))
        done = [(at, slot) for slot in slots if (at := slot_done_at(slot, until=slot.closes_at))]
        if done:
            return True, min(at for at, _ in done)
        return (False, None) if slots else (None, None)
    done = slot_done_at(nudge.slot, until=until)
    return done is not None, done


def _with_related(slots):
    return slots.select_related("schedule", "plan", "fulfilled_by").order_by("due_at")


def _all_done(slots: list[Slot]) -> tuple[bool | None, datetime | None]:
    if not slots:
        return None, None
    times = [slot_done_at(slot, until=slot.closes_at) for slot in slots]
    if any(at is None for at in times):
        return False, None
    return True, max(times)
