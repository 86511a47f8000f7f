"""Whether to nudge a patient now, and with which variant and channel: `nudge_patient`.

A nudge is written only when the patient may be messaged now (availability.py) and has not
already done what it would ask for; its variant is chosen per patient (policy.py) and the
whole decision is logged in `Nudge.decision`. Its delivery is enqueued after commit.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from config.celery import enqueue_on_commit
from monitoring.models import (
    Nudge,
    NudgePurpose,
    NudgeStatus,
    NudgeVariant,
    Patient,
    PushToken,
    Slot,
    VariantPosterior,
)
from monitoring.nudges import availability, policy, texts
from monitoring.nudges.keep_sending import PeriodDays, sent_device_data_on
from monitoring.nudges.outcomes import DUE_PURPOSES, OUTCOME_WINDOW, slot_done_at
from monitoring.nudges.streaks import streak_to_celebrate

logger = logging.getLogger(__name__)

# Nudges about no slot: a streak (about the days before), keep_sending (about the local day).
SLOTLESS_PURPOSES = {NudgePurpose.STREAK, NudgePurpose.KEEP_SENDING}


def nudge_patient(
    *,
    patient: Patient,
    purpose: str,
    slot: Slot | None,
    now: datetime,
    rng: random.Random | None = None,
    period_days: PeriodDays | None = None,
) -> Nudge | None:
    """Choose a variant and create the Nudge (status pending) with its decision log, or
    return None, writing nothing, when the patient must not be messaged now: quiet hours,
    daily cap, just messaged (the rails pace encouragement: the reminder of a critical plan's
    due dose passes the cap and the gap, availability.py), slot already done or dose already
    logged, a reminder for a slot already closed, no streak milestone to celebrate, device
    data already sent today (keep_sending), no active variant for the purpose.

    Slot purposes take a `slot`; streak and keep_sending take none, and keep_sending takes
    `period_days` (where the device period stands: keep_sending.py), which only it takes.
    Unique (slot, purpose): a second call for the same slot and purpose returns None; unique
    (patient, purpose, local day) for keep_sending: a second call on the patient's same
    local day returns None. Calls for one patient are serialised (transaction-scoped lock),
    so the cap, the gap and the decision count hold under concurrency.
    Writes: Nudge. Enqueues after commit: deliver_nudge_task(nudge.id).
    """
    if (slot is None) != (purpose in SLOTLESS_PURPOSES):
        raise ValueError(f"purpose {purpose!r} {'needs' if slot is None else 'takes no'} slot")
    if (period_days is None) == (purpose == NudgePurpose.KEEP_SENDING):
        raise ValueError(
            f"purpose {purpose!r} {'needs' if period_days is None else 'takes no'} period_days"
        )
    with transaction.atomic():
        _lock_nudges_of(patient.pk)
        streak = local_day = None
        if slot is not None:
            slot = _open_slot(slot, purpose, now)
            if slot is None:
                return None
        elif purpose == NudgePurpose.STREAK:
            streak = streak_to_celebrate(patient=patient, now=now)
            if streak is None:
                return None
        else:
            local_day = now.astimezone(patient.zone).date()
            if sent_device_data_on(patient_id=patient.pk, day=local_day):
                return None
        urgency = urgency_of(purpose, slot)
        if unavailable_reason(patient=patient, now=now, urgency=urgency, slot=slot) is not None:
            return None
        variants = variants_for(purpose=purpose, language=patient.language)
        if not variants:
            logger.warning(
                "no active nudge variant for purpose %s (patient %s)", purpose, patient.pk
            )
            return None
        nudge = _decide(
            patient,
            purpose,
            variants,
            now,
            rng or random.Random(),
            slot=slot,
            streak=streak,
            period_days=period_days,
            local_day=local_day,
        )
        try:
            with transaction.atomic():
                nudge.save()
        except IntegrityError:
            # (slot, purpose) written by a writer that did not take the lock, or this
            # patient's keep_sending nudge of the day already written (the constraint, not a
            # look-up, holds it to one).
            return None
        enqueue_on_commit("monitoring.tasks.deliver_nudge_task", nudge.pk)
    return nudge


def _lock_nudges_of(patient_id: int) -> None:
    """Serialise nudge decisions of one patient until the transaction ends (PostgreSQL);
    SQLite serialises writers already (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7302, patient_id])


def _open_slot(slot: Slot, purpose: str, now: datetime) -> Slot | None:
    """The slot, fresh, if it still needs this nudge; None when it does not."""
    if Nudge.objects.filter(slot_id=slot.pk, purpose=purpose).exists():
        return None
    slot = Slot.objects.select_related("schedule", "plan", "fulfilled_by").get(pk=slot.pk)
    if purpose in DUE_PURPOSES and now >= slot.closes_at:
        return None
    if slot_done_at(slot, until=slot.closes_at) is not None:
        return None
    return slot


def urgency_of(purpose: str, slot: Slot | None) -> availability.Urgency:
    """The reminder of a due dose of a critical plan is the prescribed schedule; anything
    else is encouragement (availability.py says which rails hold each back)."""
    if purpose == NudgePurpose.DOSE_DUE and slot is not None and slot.plan.critical:
        return availability.Urgency.CRITICAL_DOSE
    return availability.Urgency.ENCOURAGEMENT


def unavailable_reason(
    *,
    patient: Patient,
    now: datetime,
    urgency: availability.Urgency = availability.Urgency.ENCOURAGEMENT,
    slot: Slot | None = None,
) -> availability.Unavailable | None:
    """Why the patient must not be messaged now (availability.py), from their nudges of the
    last 26 hours (a local day is at most 25) that were or are being delivered; `slot`: the
    one a critical dose reminder is about."""
    nudged_at = (
        Nudge.objects.filter(
            patient=patient, created_at__gt=now - timedelta(hours=26), created_at__lte=now
        )
        .exclude(status=NudgeStatus.FAILED)
        .values_list("created_at", flat=True)
    )
    return availability.unavailable_reason(
        now=now,
        zone=patient.zone,
        quiet_start=patient.quiet_hours_start,
        quiet_end=patient.quiet_hours_end,
        daily_cap=patient.daily_nudge_cap,
        nudged_at=list(nudged_at),
        min_gap=timedelta(minutes=settings.VIGIL_NUDGE_MIN_GAP_MINUTES),
        urgency=urgency,
        due_at=slot.due_at if slot is not None else None,
    )


def variants_for(*, purpose: str, language: str) -> list[NudgeVariant]:
    """Active variants serving the purpose in the patient's language (exact tag, then its
    primary language, then English), ordered by key."""
    serving = [v for v in NudgeVariant.objects.filter(active=True) if purpose in v.purposes]
    tag = (language or "en").strip().lower()
    for code in (tag, tag.split("-")[0], "en"):
        chosen = [v for v in serving if v.language.strip().lower() == code]
        if chosen:
            return sorted(chosen, key=lambda v: v.key)
    return []


def candidates_for(*, patient: Patient, variants: list[NudgeVariant]) -> list[policy.Candidate]:
    """Each variant with the patient's record and the prior from every other patient's."""
    own = {
        row.variant_id: row
        for row in VariantPosterior.objects.filter(patient=patient, variant__in=variants)
    }
    totals = {
        row["variant_id"]: row
        for row in VariantPosterior.objects.filter(variant__in=variants)
        .values("variant_id")
        .annotate(successes=Sum("successes"), failures=Sum("failures"))
    }
    candidates = []
    for variant in variants:
        mine = own.get(variant.pk)
        successes, failures = (mine.successes, mine.failures) if mine else (0, 0)
        total = totals.get(variant.pk, {"successes": 0, "failures": 0})
        alpha, beta = policy.population_prior(
            successes=total["successes"] - successes,
            failures=total["failures"] - failures,
            strength=settings.VIGIL_NUDGE_PRIOR_STRENGTH,
        )
        candidates.append(
            policy.Candidate(
                key=variant.key,
                successes=successes,
                failures=failures,
                prior_alpha=alpha,
                prior_beta=beta,
            )
        )
    return candidates


def _decide(patient, purpose, variants, now, rng, *, slot, streak, period_days, local_day) -> Nudge:
    candidates = candidates_for(patient=patient, variants=variants)
    decisions_so_far = Nudge.objects.filter(patient=patient).count()
    decision = policy.choose_variant(
        candidates,
        decisions_so_far=decisions_so_far,
        rng=rng,
        warmup=settings.VIGIL_NUDGE_WARMUP_DECISIONS,
        min_probability=settings.VIGIL_NUDGE_MIN_PROBABILITY,
        max_probability=settings.VIGIL_NUDGE_MAX_PROBABILITY,
    )
    variant = next(v for v in variants if v.key == decision.chosen)
    log = {
        "policy": decision.policy,
        "candidates": [
            {
                "key": c.key,
                "successes": c.successes,
                "failures": c.failures,
                "prior_alpha": c.prior_alpha,
                "prior_beta": c.prior_beta,
            }
            for c in candidates
        ],
        "samples": decision.samples,
        "chosen": decision.chosen,
        "probability": decision.probability,
        "decisions_so_far": decisions_so_far,
    }
    if streak is not None:
        log["streak"] = streak
    if period_days is not None:
        log["period_days"] = {
            "with_data": period_days.with_data,
            "needed": period_days.needed,
            "left": period_days.left,
        }
    return Nudge(
        patient=patient,
        slot=slot,
        purpose=purpose,
        variant=variant,
        channel=channel_for(patient),
        text=texts.render(
            variant=variant,
            slot=slot,
            zone=patient.zone,
            now=now,
            streak=streak,
            period_days=period_days,
        ),
        decision=log,
        created_at=now,
        local_day=local_day,
        outcome_due_at=slot.closes_at if purpose in DUE_PURPOSES else now + OUTCOME_WINDOW,
    )


def channel_for(patient: Patient) -> str:
    """The patient's channel when it can reach them, else a fallback (availability.py)."""
    reachable = set()
    if patient.phone:
        reachable.add("sms")
    if patient.email:
        reachable.add("email")
    if PushToken.objects.filter(patient=patient, retired_at__isnull=True).exists():
        reachable.add("push")
    return availability.resolve_channel(preferred=patient.nudge_channel, reachable=reachable)
