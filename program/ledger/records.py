"""Loading what the plan reads, in a constant number of queries whatever the number of
patients: the episodes (locked, for a recomputation), their device days, the month's time
entries and the lines already exported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q

from program.codes import billing_reference
from program.ledger.months import Month
from program.models import Episode, LedgerLine, LineStatus, TimeEntry
from program.periods import device_days


def context_start(month: Month) -> date:
    """The first day a device period that matters to `month` may start on: the periods
    overlapping the month, and the periods of another episode whose 30 days they may share."""
    return month.first - timedelta(days=2 * billing_reference().period_days)


@dataclass
class Records:
    """Everything the plan reads, loaded in a constant number of queries."""

    patients: dict[int, str]  # id -> time zone
    episodes: list[Episode]
    days: dict[int, list[date]]
    entries: list[dict]
    exported: list[LedgerLine]


def scope_filter(
    *, patient_ids: Sequence[int] | None = None, team_ids: Sequence[int] | None = None
) -> Q:
    """The patients of `patient_ids` and of the teams `team_ids` (all when None)."""
    scope = Q()
    if patient_ids is not None:
        scope &= Q(patient_id__in=list(patient_ids))
    if team_ids is not None:
        scope &= Q(patient__care_team_id__in=list(team_ids))
    return scope


def load_episodes(month: Month, patient_filter: Q, *, lock: bool) -> list[Episode]:
    """The episodes of the scope's patients running at some point from two device periods
    before the month to its end; locked (FOR NO KEY UPDATE, in id order, so that two runs
    never deadlock) when `lock`. NO KEY: readings, alerts and ledger lines referencing the
    rows may still be inserted meanwhile."""
    episodes = (
        episode_scope(month, patient_filter)
        .select_related("patient", "billing_practitioner")
        .order_by("id")
    )
    if lock:
        episodes = episodes.select_for_update(no_key=True, of=("self",))
    return list(episodes)


def episode_scope(month: Month, scope: Q):
    start = context_start(month)
    return Episode.objects.filter(scope, start__lte=month.last).filter(
        Q(end__isnull=True) | Q(end__gte=start)
    )


def load_records(
    month: Month,
    episodes: list[Episode],
    *,
    setup_always: bool = False,
    patients: dict[int, str] | None = None,
) -> Records:
    """The records the plan of `episodes` reads: 3 queries (days, time entries, exported
    lines), whatever the number of episodes. `patients` adds patients without an episode
    (their time in the month still shows)."""
    ref = billing_reference()
    zones = {episode.patient_id: episode.patient.timezone for episode in episodes}
    zones |= patients or {}
    if not zones:
        return Records({}, [], {}, [], [])
    patient_ids = sorted(zones)
    first_day = context_start(month)
    if setup_always and episodes:
        first_day = min([first_day, *(episode.start for episode in episodes)])
    last_day = month.last + timedelta(days=ref.period_days)
    days = device_days(patient_ids, start=first_day, end=last_day) if episodes else {}
    # Every zone's local month lies within a day either side of the UTC month.
    entries = list(
        TimeEntry.objects.filter(
            patient_id__in=patient_ids,
            started_at__gte=datetime.combine(month.first - timedelta(days=1), time(), UTC),
            started_at__lt=datetime.combine(month.last + timedelta(days=2), time(), UTC),
            minutes__isnull=False,
        )
        .order_by("started_at", "id")
        .values("id", "patient_id", "started_at", "minutes", "interactive", "approved_at")
    )
    exported: list[LedgerLine] = []
    if episodes:
        exported_filter = Q(period_end__gte=first_day - timedelta(days=ref.period_days))
        if setup_always:
            exported_filter |= Q(code=ref.setup_code)
        exported = list(
            LedgerLine.objects.filter(
                exported_filter,
                episode_id__in=[episode.pk for episode in episodes],
                status=LineStatus.EXPORTED,
            ).select_related("practitioner", "episode__patient")
        )
    return Records(zones, episodes, days, entries, exported)
