"""The sweeps that nudge patients, run by beat: the reminder sweep (remind each slot once
when due, handle each miss once) and the streak sweep.

Schedules keep the slots (monitoring/schedules/due.py opens them and claims each reminder
and miss); this module decides what the patient hears of them and when a miss goes further
(an adherence alert, escalation.py; the dose taking rate, monitoring.evaluation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from config.celery import enqueue_on_commit
from monitoring.evaluation import evaluate_dose_adherence
from monitoring.models import NudgePurpose, Patient, Slot, SlotStatus
from monitoring.nudges.decision import nudge_patient
from monitoring.nudges.escalation import escalate_nonresponse
from monitoring.nudges.outcomes import slot_done_at
from monitoring.schedules.due import (
    claim_miss,
    claim_reminder,
    closed_open_slots,
    open_due_slots,
    slots_to_remind,
)

logger = logging.getLogger(__name__)

STREAK_LOCAL_HOURS = (time(10), time(12))
STREAK_SWEEP_BATCH = 500


def run_reminder_sweep(*, now: datetime) -> int:
    """Open the slots that fell due, remind each open slot once at its due time, and mark
    each slot whose window closed without its reading or dose missed, once.

    Writes: Slot rows, MeasurementSchedule / MedicationPlan.next_slot_at, Slot.reminded_at,
    Slot.status and miss_handled_at (monitoring/schedules/due.py); through nudge_patient and
    handle_missed_slot, Nudge rows and, after commit, their deliveries. Two sweeps at once,
    or a retried one, act on each slot once: schedules are claimed with SKIP LOCKED and
    their deadline moved in the same transaction, and each reminder and each miss is claimed
    by a conditional UPDATE. Each step takes at most VIGIL_SWEEP_BATCH rows; when one was
    full, the sweep enqueues itself again after commit. Returns reminders + misses acted on.
    """
    batch = settings.VIGIL_SWEEP_BATCH
    full = open_due_slots(now=now, batch=batch)
    reminded, more_reminders = _remind_due_slots(now, batch)
    missed, more_misses = _close_missed_slots(now, batch)
    if full or more_reminders or more_misses:
        enqueue_on_commit("monitoring.tasks.run_reminder_sweep_task")
    return reminded + missed


def _remind_due_slots(now: datetime, batch: int) -> tuple[int, bool]:
    due = slots_to_remind(now=now, batch=batch)

    def remind(slot: Slot) -> bool:
        if not claim_reminder(slot=slot, now=now):
            return False
        purpose = NudgePurpose.DOSE_DUE if slot.plan_id else NudgePurpose.MEASUREMENT_DUE
        nudge_patient(patient=slot.patient, purpose=purpose, slot=slot, now=now)
        return True

    return _each_claimed(due, remind, "reminder"), len(due) == batch


def _close_missed_slots(now: datetime, batch: int) -> tuple[int, bool]:
    closed = closed_open_slots(now=now, batch=batch)

    def miss(slot: Slot) -> bool:
        if not claim_miss(slot=slot, now=now):
            return False
        handle_missed_slot(slot=slot, now=now)
        return True

    return _each_claimed(closed, miss, "miss"), len(closed) == batch


def _each_claimed(slots: list[Slot], act: Callable[[Slot], bool], what: str) -> int:
    """Claim and act on each slot in its own transaction: a claim whose action fails is
    rolled back for the next sweep to try again, and one failing slot (always first in the
    order) does not hold up the others for good."""
    acted = 0
    for slot in slots:
        try:
            with transaction.atomic():
                acted += act(slot)
        except Exception:
            logger.exception("%s for slot %s failed; the next sweep tries again", what, slot.pk)
    return acted


def handle_missed_slot(*, slot: Slot, now: datetime) -> None:
    """A slot closed without its reading/dose: a supportive 'missed' nudge (through
    nudge_patient) and, after N consecutive misses of the same schedule or watched
    medication plan, an adherence alert (escalation.py). Nothing of that when the slot was
    answered after all. A plan's slot closed without a dose taken (missed, or answered by a
    dose logged as skipped) re-evaluates the dose taking rate
    (monitoring.evaluation.evaluate_dose_adherence).

    Call once per missed slot: the reminder sweep claims Slot.miss_handled_at first (the
    nudge is once per slot by itself; each call counts the miss towards escalation).
    Writes: Nudge; Rule, Alert, AlertEvent. Enqueues after commit: delivery, alert routing.
    """
    slot = Slot.objects.select_related("patient", "schedule", "plan", "fulfilled_by").get(
        pk=slot.pk
    )
    if slot_done_at(slot, until=slot.closes_at) is None:
        purpose = NudgePurpose.DOSE_MISSED if slot.plan_id else NudgePurpose.MEASUREMENT_MISSED
        nudge_patient(patient=slot.patient, purpose=purpose, slot=slot, now=now)
        escalate_nonresponse(slot=slot, now=now)
    elif slot.plan_id is None or slot_done_at(slot, until=slot.closes_at, taken_only=True):
        return
    if slot.plan_id is not None:
        # A dose not taken (never logged, or logged as skipped) lowers the taking rate now
        # that its window closed; no reading arrives to evaluate it. A dose taken but not
        # yet evaluated is left to its own evaluation, which counts it.
        evaluate_dose_adherence(patient_id=slot.patient_id, now=now)


def nudge_streaks(
    *, now: datetime, after_patient_id: int | None = None, limit: int = STREAK_SWEEP_BATCH
) -> tuple[int, int | None]:
    """Streak nudges for patients whose local time is in STREAK_LOCAL_HOURS and who did a
    slot lately; returns (nudges written, last patient id when the batch was full).

    Writes and enqueues what nudge_patient does.
    """
    start, end = STREAK_LOCAL_HOURS
    zones = [
        name
        for name in Patient.objects.order_by().values_list("timezone", flat=True).distinct()
        if start <= now.astimezone(ZoneInfo(name)).time() < end
    ]
    patients = list(
        Patient.objects.filter(
            timezone__in=zones,
            pk__gt=after_patient_id or 0,
            slots__status=SlotStatus.DONE,
            slots__due_at__gte=now - timedelta(hours=48),
        )
        .distinct()
        .order_by("pk")[:limit]
    )
    written = sum(
        nudge_patient(patient=patient, purpose=NudgePurpose.STREAK, slot=None, now=now) is not None
        for patient in patients
    )
    return written, patients[-1].pk if len(patients) == limit else None
