"""The program's Celery tasks: each takes ids, calls one domain function, owns its retry
policy (docs/architecture.md)."""

from celery import shared_task
from django.utils import timezone

from config.celery import enqueue_on_commit
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
