"""What the patient page shows beside the patient's details: computed summaries (CGM time in
ranges, CV and GMI; INR time in therapeutic range; dose taking adherence) and the data of one
chart per metric. Read-only, a few bounded queries per page.

One computation per summary: each figure comes from the function its rule computes with
(monitoring.rules.cgm_summary's sufficiency and observe, inr_ttr.time_in_range,
adherence.count_taken_doses, over monitoring.summaries' formulas), on the readings the rule's
evaluation would load, so the page and the rule cannot disagree. The ranges come from the
clinical reference and the windows, targets and data-sufficiency limits from the patient's own
rules (or, for a patient without such a rule, the protocol default the rule would have
started from). Where a figure rests on too little data the page says so instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.utils.safestring import SafeString

from alerts.models import Alert
from monitoring.charts import Band, bands_from_rules, line_chart, multi_line_chart
from monitoring.evaluation import unit_of
from monitoring.evaluation.scheduled import window_history
from monitoring.models import Metric, Reading, Rule
from monitoring.protocols import protocol_templates, resolve
from monitoring.rules import cgm_summary, inr_ttr, kind_of
from monitoring.rules.adherence import TakingRate, count_taken_doses
from monitoring.rules.base import (
    SUMMARY_CGM,
    SUMMARY_DOSE_TAKING,
    SUMMARY_INR_TIME_IN_RANGE,
    SYMBOLS,
)
from monitoring.schedules import planned_doses
from monitoring.summaries import (
    CgmSufficiency,
    TimeInRange,
    coefficient_of_variation,
    gmi_percent,
    percent_in_band,
)
from monitoring.units import format_number

# Display periods of the page (the "last 14/30 days"), not clinical numbers.
CHART_DAYS = 30
INR_TTR_DAYS = 30
ADHERENCE_DAYS = (7, 14, 30)
# Doses have no value to draw; their adherence is summarised instead.
CHARTED_METRICS = [metric for metric in Metric.values if metric != Metric.DOSE]


def _feeds(rule, section: str) -> bool:
    """Whether the rule's (or a protocol template's) kind feeds this section of the page."""
    return kind_of(rule).summary == section


def _windows(rules: Sequence[Rule], section: str) -> set[int]:
    """The windows (days) the section's active rules ask it to show besides its own."""
    return {
        round(days)
        for rule in rules
        if rule.active and _feeds(rule, section)
        for days in kind_of(rule).summary_windows(rule.parameters)
    }


def _floor_tenth(number: float) -> float:
    """Shown to one decimal without rounding up: 69.99 % active is not "70.0 %" next to
    a ≥ 70 % limit it misses."""
    return math.floor(number * 10) / 10


# --- CGM ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeShare:
    key: str
    label: str
    percent: float


@dataclass(frozen=True)
class TargetCheck:
    """One of the patient's CGM summary rules against its observed value, over its own
    window (None: the rule's data are not sufficient, so it has no verdict either)."""

    title: str
    observed: float | None
    target: str  # "< 4 %"
    met: bool | None


@dataclass(frozen=True)
class CgmSummary:
    window_days: float
    sufficiency: CgmSufficiency
    # Only when the data are sufficient (the reference's rule): never a number from thin data.
    ranges: tuple[RangeShare, ...] = ()
    targets: tuple[TargetCheck, ...] = ()
    mean_mg_dl: float | None = None
    gmi_percent: float | None = None
    cv_percent: float | None = None

    @property
    def sufficient(self) -> bool:
        return self.sufficiency.sufficient

    @property
    def readings(self) -> int:
        return self.sufficiency.readings

    @property
    def possible_readings(self) -> int:
        return round(self.sufficiency.possible_readings)

    @property
    def percent_active(self) -> float:
        return _floor_tenth(self.sufficiency.percent_active)

    @property
    def whole_days(self) -> int:
        return math.floor(self.sufficiency.days)


def cgm_parameters(rules: Sequence[Rule]) -> dict:
    """Window and sufficiency limits: the patient's first active CGM summary rule, else the
    diabetes protocol's default for it."""
    for rule in _active_cgm_rules(rules):
        return rule.parameters
    return next(
        template.parameters
        for template in protocol_templates()["diabetes"]
        if _feeds(template, SUMMARY_CGM)
    )


def _active_cgm_rules(rules: Sequence[Rule]) -> list[Rule]:
    return [rule for rule in rules if _feeds(rule, SUMMARY_CGM) and rule.active]


def cgm_ranges() -> list[tuple[str, str, dict]]:
    """(key, label, band) of each consensus range, very low to very high."""
    ranges = resolve("blood_glucose.cgm_targets.ranges_mg_dL")
    return [
        (key, entry["label"], entry)
        for key, entry in ranges.items()
        if isinstance(entry, dict) and {"lower", "upper"} & set(entry)
    ]


def summarise_cgm(*, readings: Sequence, rules: Sequence[Rule], now: datetime) -> CgmSummary | None:
    """The CGM summary over the window of cgm_parameters, and each CGM rule's target check
    over its own; None without a glucose reading in the window. `readings`: glucose readings
    (measured_at, value) covering every CGM rule's window."""
    params = cgm_parameters(rules)
    window = cgm_summary.window_readings(params, readings, now=now)
    if not window:
        return None
    sufficiency = cgm_summary.sufficiency(params, window)
    targets = tuple(_target_checks(readings, rules, now))
    if not sufficiency.sufficient:
        return CgmSummary(params["window_days"], sufficiency, targets=targets)
    values = [reading.value for reading in window]
    mean = sum(values) / len(values)
    return CgmSummary(
        params["window_days"],
        sufficiency,
        ranges=tuple(
            RangeShare(key, label, percent_in_band(values, band))
            for key, label, band in cgm_ranges()
        ),
        targets=targets,
        mean_mg_dl=mean,
        gmi_percent=gmi_percent(mean),
        cv_percent=coefficient_of_variation(values),
    )


def _target_checks(readings: Sequence, rules: Sequence[Rule], now: datetime):
    for rule in _active_cgm_rules(rules):
        observation = cgm_summary.observe(rule.parameters, readings, now=now)
        target = rule.parameters["target"]
        yield TargetCheck(
            title=rule.title,
            observed=observation.observed,
            target=f"{SYMBOLS[target['op']]} {format_number(target['value'])} %",
            met=observation.met,
        )


def _cgm_lookback(rules: Sequence[Rule]) -> timedelta:
    """The longest window of the page's CGM summary and the patient's CGM rules."""
    return max(
        cgm_summary.lookback(parameters)
        for parameters in [cgm_parameters(rules)] + [r.parameters for r in _active_cgm_rules(rules)]
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
    ttr: TimeInRange

    @property
    def too_few_results(self) -> bool:
        """Rosendaal needs two INR results: an interval to interpolate."""
        return self.ttr.results < 2

    @property
    def percent_below(self) -> float | None:
        return 100 * self.ttr.days_below / self.ttr.days_total if self.ttr.days_total else None

    @property
    def percent_above(self) -> float | None:
        return 100 * self.ttr.days_above / self.ttr.days_total if self.ttr.days_total else None


def inr_target(rules: Sequence[Rule]) -> InrTarget | None:
    """The patient's INR target range: their TTR rule's, else their target-range rule's
    (with the anticoagulation protocol's interpolation gap); None without either."""
    ttr_rules = [rule for rule in rules if _feeds(rule, SUMMARY_INR_TIME_IN_RANGE)]
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
        if _feeds(template, SUMMARY_INR_TIME_IN_RANGE)
    )
    return InrTarget(max(lows), min(highs), default_gap, range_rule.key)


def inr_ttr_windows(rules: Sequence[Rule]) -> list[int]:
    """The page's 30 days, and the window the patient's TTR rule alerts on (NICE: 6 months)."""
    return sorted({INR_TTR_DAYS} | _windows(rules, SUMMARY_INR_TIME_IN_RANGE))


def summarise_inr(
    *, readings: Sequence, target: InrTarget, window_days: int, zone, now: datetime
) -> TtrSummary:
    """As the inr_ttr rule computes it (inr_ttr.time_in_range). `readings`: INR readings
    (measured_at, value) of the window and the latest one before it."""
    ttr = inr_ttr.time_in_range(
        readings,
        low=target.low,
        high=target.high,
        max_gap_days=target.max_gap_days,
        window_days=window_days,
        now=now,
        zone=zone,
    )
    return TtrSummary(window_days=window_days, ttr=ttr)


# --- Dose adherence -----------------------------------------------------------------------


@dataclass(frozen=True)
class Adherence:
    window_days: int
    rate: TakingRate

    @property
    def percent(self) -> float | None:
        return self.rate.percent

    @property
    def logged(self) -> int:
        """Doses of medications without a plan, counted as logged."""
        return self.rate.scheduled - self.rate.planned


def adherence_windows(rules: Sequence[Rule]) -> list[int]:
    """The page's 7, 14 and 30 days, and the window of each taking-rate rule."""
    return sorted(set(ADHERENCE_DAYS) | _windows(rules, SUMMARY_DOSE_TAKING))


def summarise_adherence(
    *, planned: Sequence, doses: Sequence, window_days: int, now: datetime
) -> Adherence:
    """Taking adherence as the taking-rate rule counts it (adherence.count_taken_doses):
    a plan's scheduled doses, and logged doses only of medications without a plan."""
    rate = count_taken_doses(
        planned_doses=planned, doses=doses, since=now - timedelta(days=window_days)
    )
    return Adherence(window_days=window_days, rate=rate)


# --- The whole summary ----------------------------------------------------------------------


@dataclass(frozen=True)
class PatientSummary:
    cgm_window_days: float
    cgm: CgmSummary | None  # None: no glucose readings in the window
    inr_target: InrTarget | None
    inr: tuple[TtrSummary, ...]
    adherence: tuple[Adherence, ...]


def summarise_patient(*, patient, now: datetime, rules: Sequence[Rule] | None = None):
    """Six bounded queries, each on reading_patient_metric_time or slot_patient_due: glucose
    over the longest CGM window; INR over the longest TTR window and the latest INR before
    it; the plans' decided slots and the doses over the longest adherence window."""
    rules = list(patient.rules.all()) if rules is None else rules
    glucose = _readings(patient, Metric.GLUCOSE, now - _cgm_lookback(rules), now)
    target = inr_target(rules)
    return PatientSummary(
        cgm_window_days=cgm_parameters(rules)["window_days"],
        cgm=summarise_cgm(readings=glucose, rules=rules, now=now),
        inr_target=target,
        inr=() if target is None else _inr_periods(patient, rules, target, now),
        adherence=_adherence_periods(patient, rules, now),
    )


def _inr_periods(patient, rules: Sequence[Rule], target: InrTarget, now: datetime):
    windows = inr_ttr_windows(rules)
    # The readings the TTR rule's evaluation loads: the window's, and the INR before it.
    results = window_history(
        patient_id=patient.pk,
        metric=Metric.INR,
        since=now - timedelta(days=windows[-1]),
        now=now,
        reading_before=inr_ttr.READING_BEFORE_WINDOW,
    )
    return tuple(
        summarise_inr(readings=results, target=target, window_days=w, zone=patient.zone, now=now)
        for w in windows
    )


def _adherence_periods(patient, rules: Sequence[Rule], now: datetime):
    windows = adherence_windows(rules)
    since = now - timedelta(days=windows[-1])
    planned = planned_doses(patient_id=patient.pk, since=since, now=now)
    # As the rule's evaluation loads them (monitoring/evaluation/readings.py): by measured
    # time, counted by scheduled time.
    doses = list(
        Reading.objects.filter(
            patient=patient, metric=Metric.DOSE, measured_at__gte=since
        ).values_list("medication", "dose_status", "scheduled_for", "measured_at", named=True)
    )
    return tuple(
        summarise_adherence(planned=planned, doses=doses, window_days=w, now=now) for w in windows
    )


def _readings(patient, metric: str, since: datetime, until: datetime) -> list:
    """(measured_at, value) rows, oldest first: what the rule kinds read of a reading."""
    return list(
        Reading.objects.filter(
            patient=patient, metric=metric, measured_at__gte=since, measured_at__lte=until
        )
        .order_by("measured_at", "id")
        .values_list("measured_at", "value", named=True)
    )


# --- Charts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricChart:
    """What monitoring.charts draws for one metric."""

    metric: str
    title: str
    unit: str
    # One series, or two for blood pressure (systolic, diastolic): (at, value, reading id).
    series: tuple[tuple[str, list[tuple[datetime, float, int]]], ...]
    bands: tuple[Band, ...]
    marks: tuple[int, ...]  # the ids of the readings that fired an alert
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
    # By id, not by time: another reading at the same instant did not fire anything.
    marks = tuple(reading.id for reading in readings if reading.id in alerted)
    if metric == Metric.BLOOD_PRESSURE:
        # The names monitoring.charts gives blood-pressure bands' series.
        series = (
            ("Systolic", [(r.measured_at, r.systolic, r.id) for r in readings]),
            ("Diastolic", [(r.measured_at, r.diastolic, r.id) for r in readings]),
        )
    else:
        series = (("", [(r.measured_at, r.value, r.id) for r in readings]),)
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
