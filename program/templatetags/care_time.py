"""The care-time boxes of the admin's patient and alert pages: the user's timer, and the
patient's time this month with the approve buttons. Template tags, so each page adds one
include and the pages' own code stays as it is:

    {% load care_time %}{% care_time_timer original %}       (the patient page)
    {% load care_time %}{% care_time_timer original.patient alert=original %}  (an alert's)
    {% care_time_section original %}

The buttons post to TimeEntryAdmin's views (program/admin/time_entries.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone

from alerts.teams import LOG_TIME, can
from monitoring.display import format_instant
from monitoring.models import Patient
from program.care_time import elapsed_minutes, may_approve, running_timer, timer_cap
from program.models import Activity, Episode, TimeEntry

register = template.Library()


@register.inclusion_tag("admin/program/care_time/timer.html", takes_context=True)
def care_time_timer(context, patient: Patient, alert=None) -> dict:
    """The user's timer: a start button, or the running timer (here or on another patient)
    with its elapsed time and the stop form."""
    request = context["request"]
    now = timezone.now()
    running = running_timer(request.user)
    elapsed = now - running.started_at if running is not None else None
    return {
        "csrf_token": context.get("csrf_token"),
        "patient": patient,
        "alert": alert,
        "running": running,
        "running_here": running is not None and running.patient_id == patient.pk,
        "running_since": format_instant(running.started_at, patient.zone) if running else "",
        "elapsed_minutes": elapsed_minutes(elapsed) if elapsed is not None else None,
        "past_cap": elapsed is not None and elapsed > timer_cap(),
        "cap_minutes": settings.VIGIL_TIMER_CAP_MINUTES,
        "may_log": can(request.user, LOG_TIME, team_id=patient.care_team_id),
        "activities": Activity.choices,
        "next": request.get_full_path(),
    }


@dataclass(frozen=True)
class EntryRow:
    entry: TimeEntry
    started: str
    may_approve: bool


def month_start(now: datetime, zone) -> datetime:
    local = now.astimezone(zone)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@register.inclusion_tag("admin/program/care_time/section.html", takes_context=True)
def care_time_section(context, patient: Patient) -> dict:
    """The patient's time entries this calendar month (the patient's zone), with totals
    and, for those who may approve each, its approve button."""
    request = context["request"]
    zone = patient.zone
    since = month_start(timezone.now(), zone)
    entries = list(
        TimeEntry.objects.filter(patient=patient, started_at__gte=since)
        .select_related("user", "approved_by")
        .order_by("-started_at", "-id")
    )
    episodes = list(Episode.objects.filter(patient=patient))
    for entry in entries:
        entry.patient = patient  # the approval rule reads its team and zone
    rows = [
        EntryRow(
            entry=entry,
            started=format_instant(entry.started_at, zone),
            may_approve=(
                not entry.is_approved
                and not entry.is_running
                and may_approve(user=request.user, entry=entry, episodes=episodes)
            ),
        )
        for entry in entries
    ]
    done = [entry for entry in entries if entry.minutes is not None]
    return {
        "csrf_token": context.get("csrf_token"),
        "patient": patient,
        "month": f"{since:%B %Y}",
        "rows": rows,
        "minutes": sum(entry.minutes for entry in done),
        "approved_minutes": sum(entry.minutes for entry in done if entry.is_approved),
        "interactive": any(entry.interactive for entry in done),
        "next": request.get_full_path(),
    }
