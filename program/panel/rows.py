"""The panel's second phase: the page's rows, each watched metric's last reading and the
main metric's trend (program.panel says which). Two queries whatever the page's size."""

from __future__ import annotations

import json
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, F, JSONField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce, JSONObject

from monitoring.models import Metric, Patient, ProtocolCode, Reading
from monitoring.protocols import protocol_templates
from program.outreach import keep_sending_nudges_on
from program.panel.standings import RECENT, PatientStanding, local_today

# How many of the main metric's last values the trend shows: a display choice.
TREND_POINTS = 10


# --- Protocols: which metrics a patient's panel row shows -------------------------------


def watched_metrics(protocol_codes: list[str]) -> list[str]:
    """The physiologic metrics the rules of these protocols watch, protocol by protocol in
    ProtocolCode order, each rule's metric in the order protocols.yaml lists them."""
    templates = protocol_templates()
    metrics: list[str] = []
    for code in ProtocolCode.values:
        if code not in protocol_codes:
            continue
        for template in templates.get(code, ()):
            if template.metric != Metric.DOSE and template.metric not in metrics:
                metrics.append(template.metric)
    return metrics


# --- Phase 2: the page's rows -------------------------------------------------------------


@dataclass(frozen=True)
class LastReading:
    metric: str
    value: float | None
    systolic: float | None
    diastolic: float | None
    unit: str
    measured_at: datetime

    def age(self, now: datetime) -> timedelta:
        return max(now - self.measured_at, timedelta(0))


@dataclass
class PanelRow:
    standing: PatientStanding
    # Each watched metric, in order, with its last reading (None: never measured).
    last_readings: dict[str, LastReading | None] = field(default_factory=dict)
    main_metric: str | None = None
    trend: list[float] = field(default_factory=list)  # oldest first
    # The outreach job's keep-sending nudge of the patient's local today (item 6), by its
    # status (pending, sent, failed, cancelled); None: not nudged today.
    keep_sending_nudge: str | None = None


class ValuesArray(Subquery):
    """A subquery's `v` column as one JSON array, newest (`n`) first, as the subquery orders
    its rows: one value per row of the outer query, on PostgreSQL or SQLite."""

    output_field = JSONField()

    def as_sql(self, compiler, connection, template=None, **extra):
        if connection.vendor == "postgresql":
            template = (
                "(SELECT COALESCE(jsonb_agg(t.v ORDER BY t.n DESC), '[]') FROM (%(subquery)s) t)"
            )
        else:
            template = "(SELECT json_group_array(t.v) FROM (%(subquery)s) t)"
        return super().as_sql(compiler, connection, template=template, **extra)


def _last_reading(metric: str, *, now: datetime) -> Coalesce:
    """The newest reading of `metric` as a JSON object: within RECENT first, and in the
    whole history only when there is none that recent (COALESCE runs the second subquery
    only then). Each one descent of reading_patient_metric_time per partition: ordered by
    measured_at alone, as that index is (with the id too, PostgreSQL walked
    reading_patient_time and filtered on the metric, EXPLAIN-measured: every reading of the
    other metrics newer than this one's is read). Two readings of a metric measured at the
    same instant: either may be shown."""
    newest = (
        Reading.objects.filter(patient_id=OuterRef("pk"), metric=metric)
        .order_by("-measured_at")
        .values(
            data=JSONObject(
                value="value",
                systolic="systolic",
                diastolic="diastolic",
                unit="unit",
                measured_at="measured_at",
            )
        )
    )
    recent = newest.filter(measured_at__gte=now - RECENT)
    return Coalesce(
        Subquery(recent[:1], output_field=JSONField()),
        Subquery(newest[:1], output_field=JSONField()),
        output_field=JSONField(),
    )


def _trend(metric: str, *, now: datetime) -> ValuesArray:
    shown = "systolic" if metric == Metric.BLOOD_PRESSURE else "value"
    newest = (
        Reading.objects.filter(
            patient_id=OuterRef("pk"), metric=metric, measured_at__gte=now - RECENT
        )
        .order_by("-measured_at")
        .values(v=F(shown), n=F("measured_at"))[:TREND_POINTS]
    )
    return ValuesArray(newest)


def _json(value: Any) -> Any:
    # SQLite hands JSON back as text where PostgreSQL's driver has decoded it.
    return json.loads(value) if isinstance(value, str) else value


def _moment(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))


def panel_rows(standings: list[PatientStanding], *, now: datetime) -> list[PanelRow]:
    """The page's rows: each patient's last reading of every watched metric, the trend of
    the main one, and today's keep-sending nudge (program.outreach). Three queries whatever
    the page's size (none for an empty page)."""
    if not standings:
        return []
    ids = [row.patient_id for row in standings]
    codes: dict[int, list[str]] = defaultdict(list)
    through = Patient.protocols.through.objects.filter(patient_id__in=ids)
    for patient_id, code in through.values_list("patient_id", "protocol__code"):
        codes[patient_id].append(code)
    watched = {patient_id: watched_metrics(codes[patient_id]) for patient_id in ids}
    # Only the watched (patient, metric) pairs are looked up: CASE runs a subquery only
    # where its condition holds.
    annotations: dict[str, Any] = {}
    for metric in Metric.values:
        watching = [pk for pk in ids if metric in watched[pk]]
        if watching:
            annotations[f"last_{metric}"] = Case(
                When(pk__in=watching, then=_last_reading(metric, now=now)),
                default=Value(None, output_field=JSONField()),
                output_field=JSONField(),
            )
    mains: dict[str, list[int]] = defaultdict(list)
    for pk in ids:
        if watched[pk]:
            mains[watched[pk][0]].append(pk)
    if mains:
        annotations["trend"] = Case(
            *(When(pk__in=pks, then=_trend(metric, now=now)) for metric, pks in mains.items()),
            default=Value(None, output_field=JSONField()),
            output_field=JSONField(),
        )
    found = {
        values["pk"]: values
        for values in Patient.objects.filter(pk__in=ids)
        .annotate(**annotations)
        .values("pk", *annotations)
    }
    nudged = keep_sending_nudges_on(
        local_days={row.patient_id: local_today(row, now) for row in standings}
    )
    rows = []
    for standing_row in standings:
        values = found.get(standing_row.patient_id, {})
        metrics = watched[standing_row.patient_id]
        row = PanelRow(standing=standing_row, main_metric=metrics[0] if metrics else None)
        for metric in metrics:
            data = _json(values.get(f"last_{metric}"))
            row.last_readings[metric] = (
                LastReading(
                    metric=metric,
                    value=data["value"],
                    systolic=data["systolic"],
                    diastolic=data["diastolic"],
                    unit=data["unit"] or "",
                    measured_at=_moment(data["measured_at"]),
                )
                if data
                else None
            )
        row.trend = list(reversed(_json(values.get("trend")) or []))
        row.keep_sending_nudge = nudged.get(standing_row.patient_id)
        rows.append(row)
    return rows
