"""Nudges to the patient: choosing, timing and delivering them.

A nudge is written only when the patient may be messaged now (availability.py: quiet hours,
daily cap, minimum gap, which pace encouragement; a critical plan's due dose is reminded of
every time) and has not already done what it would ask for. Its variant is chosen
per patient (policy.py: Thompson sampling over the patient's record with each variant, from a
population prior, with warm-up and probability bounds), and the whole decision is logged in
`Nudge.decision`. Delivery is enqueued after commit (delivery.py); the outcome settles once
its window closes (outcomes.py) and feeds the patient's record. Misses may escalate to the
care team (escalation.py).

Streaks (streaks.py): the run of consecutive local days, ending yesterday, on which the patient
had slots and did every one (days without slots neither count nor break it). At 3, 7, 14, 30,
60 and 90 days it earns a streak nudge, once per milestone of one streak, in the patient's
late morning (STREAK_LOCAL_HOURS) of the day after: `nudge_streaks`, run by beat, looks at
patients whose local time is in that window and retries on each run while they are unavailable.
"""

from __future__ import annotations

import logging
import random
import string
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from config.celery import enqueue_on_commit
from monitoring.evaluation import evaluate_dose_adherence
from monitoring.models import (
    Metric,
    Nudge,
    NudgePurpose,
    NudgeStatus,
    NudgeVariant,
    Patient,
    PushToken,
    Slot,
    SlotStatus,
    VariantPosterior,
)
from monitoring.nudges import availability, policy
from monitoring.nudges.escalation import escalate_nonresponse
from monitoring.nudges.outcomes import (
    DUE_PURPOSES,
    MISSED_PURPOSES,
    OUTCOME_WINDOW,
    settle_nudge_outcomes,
    slot_done_at,
)
from monitoring.nudges.streaks import streak_to_celebrate

__all__ = [
    "MISSED_PURPOSES",
    "PLACEHOLDERS",
    "handle_missed_slot",
    "nudge_patient",
    "nudge_streaks",
    "placeholders_of",
    "settle_nudge_outcomes",
]

logger = logging.getLogger(__name__)

STREAK_LOCAL_HOURS = (time(10), time(12))
STREAK_SWEEP_BATCH = 500

PLACEHOLDERS = {"what", "time", "streak"}
# {what} in the variant's language: a noun phrase that reads the same as subject or object
# (German: feminine nouns, so "Ihre" in nominative and accusative alike).
MEASUREMENT_WHAT = {
    "en": {
        Metric.GLUCOSE: "your blood glucose check",
        Metric.BLOOD_PRESSURE: "your blood pressure check",
        Metric.WEIGHT: "your weight check",
        Metric.INR: "your INR check",
        Metric.HEART_RATE: "your heart rate check",
        Metric.SPO2: "your oxygen saturation check",
        Metric.TEMPERATURE: "your temperature check",
    },
    "de": {
        Metric.GLUCOSE: "Ihre Blutzuckermessung",
        Metric.BLOOD_PRESSURE: "Ihre Blutdruckmessung",
        Metric.WEIGHT: "Ihre Gewichtsmessung",
        Metric.INR: "Ihre INR-Messung",
        Metric.HEART_RATE: "Ihre Pulsmessung",
        Metric.SPO2: "Ihre Messung der Sauerstoffsättigung",
        Metric.TEMPERATURE: "Ihre Temperaturmessung",
    },
}
DOSE_WHAT = {"en": "your {name} dose", "de": "Ihre Dosis {name}"}
SOMETHING = {"en": "your check", "de": "Ihre Messung"}


def nudge_patient(
    *,
    patient: Patient,
    purpose: str,
    slot: Slot | None,
    now: datetime,
    rng: random.Random | None = None,
) -> Nudge | None:
    """Choose a variant and create the Nudge (status pending) with its decision log, or
    return None, writing nothing, when the patient must not be messaged now: quiet hours,
    daily cap, just messaged (the rails pace encouragement: the reminder of a critical plan's
    due dose passes the cap and the gap, availability.py), slot already done or dose already
    logged, a reminder for a slot already closed, no streak milestone to celebrate, no active
    variant for the purpose.

    Unique (slot, purpose): a second call for the same slot and purpose returns None. Calls
    for one patient are serialised (transaction-scoped lock), so the cap, the gap and the
    decision count hold under concurrency.
    Writes: Nudge. Enqueues after commit: deliver_nudge_task(nudge.id).
    """
    if (slot is None) != (purpose == NudgePurpose.STREAK):
        raise ValueError(f"purpose {purpose!r} {'needs' if slot is None else 'takes no'} slot")
    with transaction.atomic():
        _lock_nudges_of(patient.pk)
        streak = None
        if slot is not None:
            slot = _open_slot(slot, purpose, now)
            if slot is None:
                return None
        else:
            streak = streak_to_celebrate(patient=patient, now=now)
            if streak is None:
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
        nudge = _decide(patient, purpose, slot, streak, variants, now, rng or random.Random())
        try:
            with transaction.atomic():
                nudge.save()
        except IntegrityError:  # (slot, purpose) written by a writer that did not take the lock
            return None
        from monitoring.tasks import deliver_nudge_task

        enqueue_on_commit(deliver_nudge_task, nudge.pk)
    return nudge


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


def _decide(patient, purpose, slot, streak, variants, now, rng) -> Nudge:
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
    return Nudge(
        patient=patient,
        slot=slot,
        purpose=purpose,
        variant=variant,
        channel=channel_for(patient),
        text=render(variant=variant, slot=slot, zone=patient.zone, now=now, streak=streak),
        decision=log,
        created_at=now,
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


def render(
    *, variant: NudgeVariant, slot: Slot | None, zone: ZoneInfo, now: datetime, streak: int | None
) -> str:
    """The variant's text with {what}, {time} (local, of the slot) and {streak} filled in; a
    placeholder the text should not have stays as written."""
    language = variant.language.strip().lower().split("-")[0]
    language = language if language in MEASUREMENT_WHAT else "en"
    at = slot.due_at if slot is not None else now
    values = {"time": at.astimezone(zone).strftime("%H:%M"), "streak": streak or 0}
    if slot is not None and slot.plan_id is not None:
        values["what"] = DOSE_WHAT[language].format(name=slot.plan.name)
    elif slot is not None:
        values["what"] = MEASUREMENT_WHAT[language].get(slot.schedule.metric, SOMETHING[language])
    try:
        return string.Formatter().vformat(variant.text, (), _KeepUnknown(values))
    except (ValueError, IndexError, KeyError, AttributeError):  # a malformed text: as written
        return variant.text


class _KeepUnknown(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


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


def placeholders_of(text: str) -> set[str]:
    """The placeholder names a variant text uses; raises ValueError on a malformed one."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
