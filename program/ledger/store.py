"""Writing the ledger: recomputing a month's lines in place, and exporting them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from program.codes import billing_reference
from program.ledger.lines import device_code_set, management_code_set
from program.ledger.months import Month
from program.ledger.plan import plan_ledger
from program.ledger.records import (
    context_start,
    episode_scope,
    load_episodes,
    load_records,
    scope_filter,
)
from program.models import LedgerLine, LineStatus

# Patients recomputed per transaction: bounds how long their episodes stay locked (an
# episode's end cannot be changed meanwhile) while keeping the queries per patient near zero.
CHUNK_PATIENTS = 250


# What a recomputation rewrites of a line it finds stored (the key stays).
UPDATED_FIELDS = [
    "patient", "practitioner", "units", "period_end", "status", "reason", "evidence",
    "computed_at", "exported_at",
]  # fmt: skip


@dataclass
class LedgerRun:
    """What a recomputation wrote: the month's lines (stored) and those it marked exported."""

    month: Month
    lines: list[LedgerLine] = field(default_factory=list)
    exported: list[LedgerLine] = field(default_factory=list)
    patients: int = 0


def recompute_ledger(
    *,
    month: Month,
    team_ids: Sequence[int] | None = None,
    now: datetime | None = None,
    export: bool = False,
) -> LedgerRun:
    """Recomputes the month's ledger for the teams' patients (all patients without
    `team_ids`) and returns the month's stored lines.

    Writes: per chunk of patients, in one transaction with the chunk's episodes locked, the
    plan's lines — of the device periods overlapping the month and the two before, the
    set-ups of episodes whose first period is among them, the month's management lines —
    are upserted by key and the other lines not exported of that range deleted; exported
    lines stay as they are. With `export`, the month's billable lines of the patients
    whose month is over in their zone are then marked exported (status, exported_at), in the
    same transaction. Idempotent: a second run changes nothing but computed_at (the lines
    keep their ids).
    """
    now = now or timezone.now()
    scope = episode_scope(month, scope_filter(team_ids=team_ids))
    patient_ids = sorted(set(scope.values_list("patient_id", flat=True)))
    run = LedgerRun(month, patients=len(patient_ids))
    for offset in range(0, len(patient_ids), CHUNK_PATIENTS):
        chunk = patient_ids[offset : offset + CHUNK_PATIENTS]
        lines, exported = _recompute_chunk(month, chunk, now=now, export=export)
        run.lines.extend(lines)
        run.exported.extend(exported)
    run.lines.sort(
        key=lambda line: (line.patient_id, line.period_start, line.code, line.episode_id)
    )
    return run


def _recompute_chunk(
    month: Month, patient_ids: list[int], *, now: datetime, export: bool
) -> tuple[list[LedgerLine], list[LedgerLine]]:
    ref = billing_reference()
    with transaction.atomic():
        # The lock first: what is read below (exported lines above all) cannot change
        # under the plan until it is written.
        episodes = load_episodes(month, Q(patient_id__in=patient_ids), lock=True)
        records = load_records(month, episodes, setup_always=False)
        plan = plan_ledger(month=month, records=records, now=now)
        start = context_start(month)
        replaced = (
            Q(code__in=device_code_set(ref), period_start__gte=start, period_start__lte=month.last)
            | Q(code=ref.setup_code, period_start__gte=start, period_start__lte=month.last)
            | Q(code__in=management_code_set(ref), period_start=month.first)
        )
        # An upsert keeps a recomputed line's id (no computed line shares a key with an
        # exported one: an exported group is not recomputed), then what the plan no longer
        # has goes (an episode's end moved, a period's code changed).
        new = [p.line for p in plan.lines if p.line.pk is None]
        LedgerLine.objects.bulk_create(
            new,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["episode", "code", "period_start"],
            update_fields=UPDATED_FIELDS,
        )
        LedgerLine.objects.filter(replaced, patient_id__in=patient_ids).exclude(
            status=LineStatus.EXPORTED
        ).exclude(pk__in=[line.pk for line in new]).delete()
        marked: list[LedgerLine] = []
        if export:
            marked = [
                line
                for line in plan.month_lines()
                if line.status == LineStatus.BILLABLE and line.patient_id in plan.closed_patients
            ]
            LedgerLine.objects.filter(
                pk__in=[line.pk for line in marked], status=LineStatus.BILLABLE
            ).update(status=LineStatus.EXPORTED, exported_at=now)
            for line in marked:
                line.status, line.exported_at = LineStatus.EXPORTED, now
    return plan.month_lines(), marked


def export_ledger(
    *, month: Month, team_ids: Sequence[int], now: datetime | None = None
) -> LedgerRun:
    """The month's ledger of the teams for the billing system: recomputed, then its billable
    lines marked exported where the month is over in the patient's zone (see
    recompute_ledger). Lines of a month still running are returned and not marked."""
    return recompute_ledger(month=month, team_ids=team_ids, now=now, export=True)
