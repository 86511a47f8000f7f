"""The program's Celery tasks: each takes ids, calls one domain function, owns its retry
policy (docs/architecture.md)."""

from celery import shared_task
from django.utils import timezone

from config.celery import enqueue_on_commit
from program.care_time import cap_forgotten_timers
from program.ledger import Month, recompute_ledger
from program.outreach import OUTREACH_BATCH, nudge_patients_at_risk


@shared_task
def nudge_patients_at_risk_task(after_episode_id: int | None = None) -> int:
    # No retry: beat runs it again in 15 minutes while patients are in their window, and each
    # patient gets at most one keep-sending nudge a local day (a unique constraint), so a
    # rerun or a second worker writes nothing twice. A full batch continues at once.
    written, last_episode_id = nudge_patients_at_risk(
        now=timezone.now(), after_episode_id=after_episode_id, limit=OUTREACH_BATCH
    )
    if last_episode_id is not None:
        enqueue_on_commit(nudge_patients_at_risk_task, last_episode_id)
    return written


@shared_task
def recompute_ledger_task() -> int:
    """Keeps the stored ledger current: recomputes the previous and the current month (UTC)
    for every patient, so periods and months that closed since the last run turn from
    accruing to billable (or not) without anyone opening the ledger. Returns the number of
    the two months' lines. Idempotent (program.ledger.recompute_ledger): exported lines are
    frozen, the others are recomputed in place; a run that overlaps another waits on the
    episodes' locks. No retry: beat runs it again."""
    current = Month.of(timezone.now().date())
    lines = 0
    for month in (current.previous(), current):
        lines += len(recompute_ledger(month=month).lines)
    return lines


@shared_task
def cap_forgotten_timers_task() -> int:
    # No retry: beat runs it again in five minutes, and each timer is claimed once (locked,
    # skipped by a concurrent run, capped only while still running).
    return cap_forgotten_timers()
