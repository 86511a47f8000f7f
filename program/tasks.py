"""The program's periodic jobs (config/settings.py CELERY_BEAT_SCHEDULE). Each task takes
ids, calls one domain function and owns only its retry policy."""

from celery import shared_task

from program.care_time import cap_forgotten_timers


@shared_task
def cap_forgotten_timers_task() -> int:
    # No retry: beat runs it again in five minutes, and each timer is claimed once (locked,
    # skipped by a concurrent run, capped only while still running).
    return cap_forgotten_timers()
