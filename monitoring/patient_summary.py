"""What the patient page shows beside the patient's details: computed summaries (CGM time in
ranges, CV and GMI; INR time in therapeutic range; dose taking adherence) and the data of one
chart per metric. Read-only, a few bounded queries per page.

The formulas are monitoring.summaries'; the ranges come from the clinical reference and the
windows, targets and data-sufficiency limits from the patient's own rules (or, for a patient
without such a rule, the protocol default the rule would have started from), so the page
shows the numbers the scheduled rules alert on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.utils.safestring import SafeString

from alerts.models import Alert
from monitoring.charts import Band, bands_from_rules, line_chart, multi_line_chart
from monitoring.evaluation import unit_of
from monitoring.models import Metric, Reading, Rule, RuleKind
from monitoring.protocols import protocol_templates, resolve
from monitoring.rules.base import OPERATORS, SYMBOLS
from monitoring.summaries import (
    TimeInRange,
    cgm_data_sufficient,
    coefficient_of_variation,
    gmi_percent,
    percent_in_band,
    rosendaal_ttr,
)
from monitoring.units import format_number

# Display periods of the page (the "last 14/30 days"), not clinical numbers.
CHART_DAYS = 30
INR_TTR_DAYS = 30
ADHERENCE_DAYS = (7, 14, 30)
# Doses have no value to draw; their adherence is summarised instead.
CHARTED_METRICS = [metric for metric in Metric.values if metric != Metric.DOSE]


# --- CGM ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeShare:
    key: str
    label: str
    percent: float


@dataclass(frozen=True)
class TargetCheck:
    """One of the patient's CGM summary rules against the observed value."""

    title: str
    observed: float
    target: str  # "< 4 %"
    met: bool


@dataclass(frozen=True)
class CgmSummary:
    window_days: float
    readings: int
    possible_readings: int
    min_days: float
    min_percent_active: float
    sufficient: bool
    # Only when the data are sufficient (the reference's rule): never a number from thin data.
    ranges: tuple[RangeShare, ...] = ()
    targets: tuple[TargetCheck, ...] = ()
    mean_mg_dl: float | None = None
    gmi_percent: float | None = None
    cv_percent: float | None = None

    @property
    def percent_active(self) -> float:
        return 100 * self.readings / self.possible_readings if self.possible_readings else 0.0


def cgm_parameters(rules: Sequence[Rule]) -> dict:
    """Window and sufficiency limits: the patient's first active CGM summary rule, else the
    diabetes protocol's default for it."""
    for rule in rules:
        if rule.kind == RuleKind.CGM_SUMMARY and rule.active:
            return rule.parameters
    return next(
        template.parameters
        for template in protocol_templates()["diabetes"]
        if template.kind == RuleKind.CGM_SUMMARY
    )


def cgm_ranges() -> list[tuple[str, str, dict]]:
    """(key, label, band) of each consensus range, very low to very high."""
    ranges = resolve("blood_glucose.cgm_targets.ranges_mg_dL")
    return [
        (key, entry["label"], entry)
        for key, entry in ranges.items()
        if isinstance(entry, dict) and {"lower", "upper"} & set(entry)
    ]


def summarise_cgm(
    *, times: Sequence[datetime], values: Sequence[float], rules: Sequence[Rule], now: datetime
) -> CgmSummary:
    params = cgm_parameters(rules)
    possible = round(params["window_days"] * 24 * 60 / params["sensor_interval_minutes"])
    sufficient = cgm_data_sufficient(
        times,
        now=now,
        window_days=params["window_days"],
        min_days=params["min_days"],
        min_percent_active=params["min_percent_active"],
        sensor_interval_minutes=params["sensor_interval_minutes"],
    )
    summary = CgmSummary(
        window_days=params["window_days"],
        readings=len(values),
        possible_readings=possible,
        min_days=params["min_days"],
        min_percent_active=params["min_percent_active"],
        sufficient=sufficient,
    )
    if not sufficient:
        return summary
    mean = sum(values) / len(values)
    return replace(
        summary,
        ranges=tuple(
            RangeShare(key, label, percent_in_band(values, band))
            for key, label, band in cgm_ranges()
        ),
        targets=tuple(_target_checks(values, rules)),
        mean_mg_dl=mean,
        gmi_percent=gmi_percent(mean),
        cv_percent=coefficient_of_variation(values),
    )


def _target_checks(values: Sequence[float], rules: Sequence[Rule]):
    for rule in rules:
        if rule.kind != RuleKind.CGM_SUMMARY or not rule.active:
            continue
        params = rule.parameters
        if params["measure"] == "cv":
            observed = coefficient_of_variation(values)
        else:
            observed = percent_in_band(values, params["band"])
        target = params["target"]
        yield TargetCheck(
            title=rule.title,
            observed=observed,
            target=f"{SYMBOLS[target['op']]} {format_number(target['value'])} %",
            met=OPERATORS[target["op"]](observed, target["value"]),
        )


# --- INR time in therapeutic range ----------------------------------------------------------


@dataclass(frozen=True)
class InrTarget:
    low: float
    high: float
    max_gap_days: int
    rule_key: str  # which of the patient's rules the range comes from


@dataclass(frozen=True)
class TtrSummary:
    window_days: int
    results: int  # INR results in the window
    ttr: TimeInRange

    @property
    def percent_below(self) -> float | None:
        return 100 * self.ttr.days_below / self.ttr.days_total if self.ttr.days_total else None

    @property
    def percent_above(self) -> float | None:
        return 100 * self.ttr.days_above / self.ttr.days_total if self.ttr.days_total else None


def inr_target(rules: Sequence[Rule]) -> InrTarget | None:
    """The patient's INR target range: their TTR rule's, else their target-range rule's
    (with the anticoagulation protocol's interpolation gap); None without either."""
    ttr_rules = [rule for rule in rules if rule.kind == RuleKind.INR_TTR]
    ttr_rules.sort(key=lambda rule: not rule.active)
    if ttr_rules:
        params = ttr_rules[0].parameters
        return InrTarget(
            params["target_low"], params["target_high"], params["max_gap_days"], ttr_rules[0].key
        )
    range_rule = next((rule for rule in rules if rule.key == "inr_target_range"), None)
    if range_rule is None:
        return None
    conditions = range_rule.parameters["conditions"]
    lows = [c["value"] for c in conditions if c["op"] in ("lt", "le")]
    highs = [c["value"] for c in conditions if c["op"] in ("gt", "ge")]
    if not lows or not highs:
        return None
    default_gap = next(
        template.parameters["max_gap_days"]
        for template in protocol_templates()["anticoagulation"]
        if template.kind == RuleKind.INR_TTR
    )
    return InrTarget(max(lows), min(highs), default_gap, range_rule.key)


def inr_ttr_windows(rules: Sequence[Rule]) -> list[int]:
    """The page's 30 days, and the window the patient's TTR rule alerts on (NICE: 6 months)."""
    windows = [INR_TTR_DAYS]
    for rule in rules:
        if rule.kind == RuleKind.INR_TTR and rule.active:
            windows.append(round(rule.parameters["window_days"]))
    return sorted(set(windows))


def summarise_inr(
    *,
    results: Sequence[tuple[datetime, float]],
    target: InrTarget,
    window_days: int,
    zone,
    now: datetime,
) -> TtrSummary:
    """As the inr_ttr rule computes it: the results within the window, one per local day."""
    since = now - timedelta(days=window_days)
    points = [(at.astimezone(zone).date(), value) for at, value in results if since <= at <= now]
    ttr = rosendaal_ttr(points, low=target.low, high=target.high, max_gap_days=target.max_gap_days)
    return TtrSummary(window_days=window_days, results=len(points), ttr=ttr)


# --- Dose adherence -----------------------------------------------------------------------


@dataclass(frozen=True)
class Adherence:
    window_days: int
    taken: int
    doses: int

    @property
    def percent(self) -> float | None:
        return 100 * self.taken / self.doses if self.doses else None


def summarise_adherence(
    *, doses: Sequence[tuple[str, datetime]], window_days: int, now: datetime
) -> Adherence:
    """Taking adherence as the adherence rule counts it: doses taken ÷ doses logged (taken or
    skipped) whose time (scheduled, else logged) falls in the window."""
    since = now - timedelta(days=window_days)
    in_window = [status for status, at in doses if since < at <= now]
    return Adherence(
        window_days=window_days,
        taken=sum(1 for status in in_window if status == "taken"),
        doses=len(in_window),
    )


# --- The whole summary ----------------------------------------------------------------------


@dataclass(frozen=True)
class PatientSummary:
    cgm_window_days: float
    cgm: CgmSummary | None  # None: no glucose readings in the window
    inr_target: InrTarget | None
    inr: tuple[TtrSummary, ...]
    adherence: tuple[Adherence, ...]


def summarise_patient(*, patient, now: datetime, rules: Sequence[Rule] | None = None):
    """Three bounded queries: glucose over the CGM window, INR over the longest TTR window,
    doses over the longest adherence window (each on reading_patient_metric_time)."""
    rules = list(patient.rules.all()) if rules is None else rules
    cgm_window_days = cgm_parameters(rules)["window_days"]
    cgm_window = timedelta(days=cgm_window_days)
    glucose = list(_readings(patient, Metric.GLUCOSE, now - cgm_window, now, "value"))
    cgm = None
    if glucose:
        cgm = summarise_cgm(
            times=[at for at, _ in glucose], values=[v for _, v in glucose], rules=rules, now=now
        )

    target = inr_target(rules)
    inr: list[TtrSummary] = []
    if target is not None:
        windows = inr_ttr_windows(rules)
        results = list(_readings(patient, Metric.INR, now - timedelta(days=windows[-1]), now))
        inr = [
            summarise_inr(results=results, target=target, window_days=w, zone=patient.zone, now=now)
            for w in windows
        ]

    longest = timedelta(days=max(ADHERENCE_DAYS))
    doses = [
        (status, scheduled_for or measured_at)
        for status, scheduled_for, measured_at in Reading.objects.filter(
            patient=patient, metric=Metric.DOSE, measured_at__gte=now - longest
        ).values_list("dose_status", "scheduled_for", "measured_at")
    ]
    adherence = [summarise_adherence(doses=doses, window_days=d, now=now) for d in ADHERENCE_DAYS]
    return PatientSummary(cgm_window_days, cgm, target, tuple(inr), tuple(adherence))


def _readings(patient, metric: str, since: datetime, until: datetime, *fields: str):
    return (
        Reading.objects.filter(
            patient=patient, metric=metric, measured_at__gte=since, measured_at__lte=until
        )
        .order_by("measured_at", "id")
        .values_list("measured_at", *(fields or ("value",)))
    )


# --- Charts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricChart:
    """What monitoring.charts draws for one metric."""

    metric: str
    title: str
    unit: str
    # One series, or two for blood pressure (systolic, diastolic).
    series: tuple[tuple[str, list[tuple[datetime, float]]], ...]
    bands: tuple[Band, ...]
    marks: tuple[datetime, ...]
    start: datetime
    end: datetime

    @property
    def readings(self) -> int:
        return len(self.series[0][1])


def chart_data(*, patient, now: datetime, rules: Sequence[Rule] | None = None):
    """One chart per metric the patient has readings of in the last CHART_DAYS days: the
    readings, the patient's active rules as bands, and the readings that fired the
    period's alerts as marks. (Not every reading inside a band: a month of CGM has hundreds
    above 180 mg/dL, and the bands show those already.) Two queries: the readings, and the
    alerts' reading ids."""
    rules = list(patient.rules.all()) if rules is None else rules
    start = now - timedelta(days=CHART_DAYS)
    rows = (
        Reading.objects.filter(
            patient=patient,
            metric__in=CHARTED_METRICS,
            measured_at__gte=start,
            measured_at__lte=now,
        )
        .order_by("metric", "measured_at", "id")
        .values_list("id", "metric", "measured_at", "value", "systolic", "diastolic")
    )
    by_metric: dict[str, list[SimpleNamespace]] = defaultdict(list)
    for pk, metric, measured_at, value, systolic, diastolic in rows:
        by_metric[metric].append(
            SimpleNamespace(
                id=pk, measured_at=measured_at, value=value, systolic=systolic, diastolic=diastolic
            )
        )
    alerted = {
        reading_id
        for ids in Alert.objects.filter(patient=patient, last_triggered_at__gte=start).values_list(
            "reading_ids", flat=True
        )
        for reading_id in ids
    }
    return [
        _chart(metric, by_metric[metric], rules, alerted, start, now)
        for metric in CHARTED_METRICS
        if by_metric[metric]
    ]


def _chart(metric, readings, rules, alerted, start, end) -> MetricChart:
    unit = unit_of(metric)
    active = [rule for rule in rules if rule.metric == metric and rule.active]
    marks = tuple(reading.measured_at for reading in readings if reading.id in alerted)
    if metric == Metric.BLOOD_PRESSURE:
        # The names monitoring.charts gives blood-pressure bands' series.
        series = (
            ("Systolic", [(r.measured_at, r.systolic) for r in readings]),
            ("Diastolic", [(r.measured_at, r.diastolic) for r in readings]),
        )
    else:
        series = (("", [(r.measured_at, r.value) for r in readings]),)
    return MetricChart(
        metric=metric,
        title=f"{Metric(metric).label}, last {CHART_DAYS} days",
        unit=unit,
        series=series,
        bands=tuple(bands_from_rules(active, unit=unit)),
        marks=marks,
        start=start,
        end=end,
    )


def render_chart(chart: MetricChart, *, zone) -> SafeString:
    """The chart as inline SVG (monitoring.charts)."""
    common = {
        "unit": chart.unit,
        "zone": zone,
        "bands": list(chart.bands),
        "marks": list(chart.marks),
        "start": chart.start,
        "end": chart.end,
        "title": chart.title,
    }
    if len(chart.series) > 1:
        return multi_line_chart(series=[(n, p) for n, p in chart.series], **common)
    return line_chart(points=chart.series[0][1], **common)
