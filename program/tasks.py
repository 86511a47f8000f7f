"""The program's periodic jobs (config/settings.py CELERY_BEAT_SCHEDULE). Each task takes
ids, calls one domain function and owns only its retry policy."""

from celery import shared_task
from django.utils import timezone

from program.ledger import Month, recompute_ledger


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
