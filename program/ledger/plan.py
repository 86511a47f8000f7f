"""The plan: what the records earn for a month, patient by patient (no writes)."""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from datetime import datetime

from program.ledger.device import device_lines, setup_lines
from program.ledger.lines import PatientContext, Plan, group_of
from program.ledger.management import management_lines, month_minutes
from program.ledger.months import Month
from program.ledger.records import Records
from program.models import Episode, LedgerLine


def plan_ledger(
    *, month: Month, records: Records, now: datetime, setup_always: bool = False
) -> Plan:
    """The lines the records earn for `month` (device periods overlapping it and the two
    periods before, set-up lines of episodes whose first period is among them — of every
    episode with `setup_always` — and the month's management lines), exported lines in
    place of their groups. Writes nothing."""
    plan = Plan(month)
    episodes: dict[int, list[Episode]] = defaultdict(list)
    for episode in records.episodes:
        episodes[episode.patient_id].append(episode)
    entries: dict[int, list[dict]] = defaultdict(list)
    for entry in records.entries:
        entries[entry["patient_id"]].append(entry)
    exported: dict[int, list[LedgerLine]] = defaultdict(list)
    for line in records.exported:
        exported[line.patient_id].append(line)
    for patient_id, zone_name in records.patients.items():
        zone = zoneinfo.ZoneInfo(zone_name)
        today = now.astimezone(zone).date()
        if today > month.last:
            plan.closed_patients.add(patient_id)
        context = PatientContext(
            patient_id=patient_id,
            episodes=sorted(episodes[patient_id], key=lambda e: (e.start, e.pk)),
            days=records.days.get(patient_id, []),
            entries=entries[patient_id],
            exported=exported[patient_id],
            zone=zone,
            today=today,
            now=now,
            setup_always=setup_always,
        )
        frozen: dict[tuple, list[LedgerLine]] = defaultdict(list)
        for line in context.exported:
            frozen[group_of(line)].append(line)
        plan.lines.extend(device_lines(month, context, frozen))
        plan.lines.extend(setup_lines(month, context, frozen))
        plan.lines.extend(management_lines(month, context, frozen))
        month_minutes(plan, context)
    return plan
