"""What the patient page shows beside the patient's details: computed summaries (CGM time in
ranges, CV, GMI and the AGP; home blood pressure; INR time in therapeutic range; dose taking
adherence) over the period the page's selector chose, only for what the patient is monitored
for, and the data of one chart per metric. Read-only, a few bounded queries per page.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from types import SimpleNamespace

from django.db.models import BooleanField, ExpressionWrapper
from django.utils.safestring import SafeString

from alerts.models import Alert
from monitoring.charts import Band, bands_from_rules, line_chart, multi_line_chart
from monitoring.charts.agp import RangeBar, agp_chart, time_in_ranges_bar
from monitoring.display import display_unit, format_date
from monitoring.evaluation import unit_of
from monitoring.evaluation.scheduled import window_history
from monitoring.models import Metric, Reading, Rule
from monitoring.protocols import protocol_templates, resolve
from monitoring.rules import cgm_summary, inr_ttr, kind_of
from monitoring.rules.adherence import TakingRate, count_taken_doses
from monitoring.rules.base import (
    OPERATORS,
    SUMMARY_CGM,
    SUMMARY_DOSE_TAKING,
    SUMMARY_INR_TIME_IN_RANGE,
    SYMBOLS,
)
from monitoring.schedules import planned_doses
from monitoring.summaries import (
    BloodPressureStats,
    CgmSufficiency,
    ProfileBin,
    TimeInRange,
    blood_pressure_stats,
    cgm_sufficiency,
    coefficient_of_variation,
    glucose_profile,
    gmi_percent,
    percent_in_band,
    sensor_glucose,
)
from monitoring.units import format_number

# How far back the page looks for its "Recent readings" first (a display count, not clinical).
CHART_DAYS = 30
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


# --- The period shown (issue 14.3: the date-range selector) --------------------------------

# The periods the page offers (days back from now) and the one it opens on: 14 days, the
# period of the consensus AGP (blood_glucose.cgm_targets.data_sufficiency.min_days). Display
# choices, not clinical numbers.
PERIOD_CHOICES = (7, 14, 30, 90)
DEFAULT_PERIOD_DAYS = 14
# Engineering choices bounding a custom period: the page reads every reading in it.
MAX_CUSTOM_DAYS = 366
OLDEST_CUSTOM_DAYS = 3660  # a custom period starts at most ten years back


@dataclass(frozen=True)
class Period:
    """[start, end] of the page's summaries and charts; the local days it covers."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date
    preset: int | None  # one of PERIOD_CHOICES, None for a custom period

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)

    @property
    def label(self) -> str:
        if self.preset is not None:
            return f"last {self.preset} days"
        return f"{format_date(self.first_day)} – {format_date(self.last_day)}"


def preset_period(days: int, *, zone: tzinfo, now: datetime) -> Period:
    start = now - timedelta(days=days)
    return Period(
        start=start,
        end=now,
        first_day=start.astimezone(zone).date(),
        last_day=now.astimezone(zone).date(),
        preset=days,
    )


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _day(raw: str | None) -> date | None:
    """A YYYY-MM-DD date, or None for anything else (short input only: hostile strings)."""
    if not raw or len(raw) != 10:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def period_from_query(
    query: Mapping[str, str], *, zone: tzinfo, now: datetime
) -> tuple[Period, str | None]:
    """The period the page's GET parameters ask for: `days` (one of PERIOD_CHOICES), or
    `from` and `to` (the patient's local dates, YYYY-MM-DD, both included). Anything else
    falls back to the last DEFAULT_PERIOD_DAYS days, with the reason to show (never an error
    page)."""
    fallback = preset_period(DEFAULT_PERIOD_DAYS, zone=zone, now=now)
    shown = f"showing the last {DEFAULT_PERIOD_DAYS} days instead."
    if query.get("from") or query.get("to"):
        first, last = _day(query.get("from")), _day(query.get("to"))
        today = now.astimezone(zone).date()
        if first is None or last is None:
            return fallback, f"A custom period needs both dates as YYYY-MM-DD: {shown}"
        if first > last:
            return fallback, f"The period's first day is after its last: {shown}"
        if last > today:
            return fallback, f"The period ends after today: {shown}"
        if (today - first).days > OLDEST_CUSTOM_DAYS:
            return fallback, f"The page goes back at most {OLDEST_CUSTOM_DAYS} days: {shown}"
        if (last - first).days + 1 > MAX_CUSTOM_DAYS:
            return fallback, f"A custom period spans at most {MAX_CUSTOM_DAYS} days: {shown}"
        start = _local_midnight(first, zone)
        end = min(_local_midnight(last + timedelta(days=1), zone), now)
        if end <= start:  # today, at the very stroke of midnight: an empty period
            return fallback, f"The period has no time in it yet: {shown}"
        return Period(start, end, first, last, preset=None), None
    raw = query.get("days")
    if raw is None or raw == "":
        return fallback, None
    if raw not in {str(days) for days in PERIOD_CHOICES}:
        choices = ", ".join(str(days) for days in PERIOD_CHOICES)
        return fallback, f"The period can be {choices} days or custom dates: {shown}"
    return preset_period(int(raw), zone=zone, now=now), None


# --- CGM ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeShare:
    key: str
    label: str
    percent: float
    bounds: str = ""  # "54–69 mg/dL", from the reference's band

    @property
    def name(self) -> str:
        """ "Very low" … "Very high": the consensus report's words for its ranges."""
        return self.key.replace("_", " ").capitalize()


def range_bounds(band: dict, unit: str) -> str:
    """A consensus range's bounds as the AGP report writes them: "< 54", "54–69", "70–180",
    "181–250", "> 250" mg/dL — whole mg/dL (the reference: glucose shown as integer mg/dL),
    so an exclusive bound is the next whole value inside it."""
    lower, upper = band.get("lower"), band.get("upper")

    def inner(bound: dict, step: int) -> float:
        return bound["value"] if bound["inclusive"] else bound["value"] + step

    if lower is None:
        text = f"{'≤' if upper['inclusive'] else '<'} {format_number(upper['value'])}"
    elif upper is None:
        text = f"{'≥' if lower['inclusive'] else '>'} {format_number(lower['value'])}"
    else:
        text = f"{format_number(inner(lower, 1))}–{format_number(inner(upper, -1))}"
    return f"{text} {unit}"


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
    sufficiency: CgmSufficiency  # of the sensor readings only (monitoring.summaries)
    # Only when the data are sufficient (the reference's rule): never a number from thin data.
    ranges: tuple[RangeShare, ...] = ()
    targets: tuple[TargetCheck, ...] = ()
    mean_mg_dl: float | None = None
    gmi_percent: float | None = None
    cv_percent: float | None = None
    # Issue 14.3: glucose readings of the period that are not a sensor's (fingersticks),
    # left out of wear, ranges and the profile; the AGP's bins, when the data are sufficient.
    fingersticks: int = 0
    profile: tuple[ProfileBin, ...] = ()

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


# Engineering choices of the AGP (the consensus report draws smoothed percentile curves and
# names no bin width): the local day in 30-minute bins, a bin drawn when it holds at least
# AGP_MIN_BIN_READINGS values (14 days of a 5-minute sensor give 84 a bin; a percentile of
# fewer than five values says little).
AGP_BIN_MINUTES = 30
AGP_MIN_BIN_READINGS = 5
# The consensus ranges and the AGP are in mg/dL, the canonical unit the readings are stored in.
GLUCOSE_UNIT = "mg/dL"


def target_range() -> tuple[float, float]:
    """The AGP's shaded target: the reference's in-range band (70–180 mg/dL)."""
    band = dict((key, band) for key, _label, band in cgm_ranges())["in_range"]
    return band["lower"]["value"], band["upper"]["value"]


def render_agp(cgm: CgmSummary, *, period: Period, zone) -> SafeString:
    """The AGP of a sufficient CGM summary (monitoring.charts.agp)."""
    return agp_chart(
        profile=cgm.profile,
        bin_minutes=AGP_BIN_MINUTES,
        target=target_range(),
        unit=GLUCOSE_UNIT,
        title=f"Ambulatory glucose profile, {period.label}",
        zone_name=getattr(zone, "key", str(zone)),
    )


def render_time_in_ranges(cgm: CgmSummary, *, period: Period) -> SafeString:
    return time_in_ranges_bar(
        shares=[RangeBar(s.key, s.name, s.bounds, s.percent) for s in cgm.ranges],
        title=f"Time in ranges, {period.label}",
        heading="Time in ranges",
    )


def summarise_cgm(
    *, readings: Sequence, rules: Sequence[Rule], period: Period, zone: tzinfo, now: datetime
) -> CgmSummary | None:
    """The consensus CGM summary of the period, from sensor readings only (wear, ranges, mean,
    GMI, CV and the AGP), and each CGM rule's target check over its own window ending now;
    None without a glucose reading in the period. `readings`: glucose readings (measured_at,
    value, sensor) covering the period and every CGM rule's window."""
    params = cgm_parameters(rules)
    window = [r for r in readings if period.start <= r.measured_at <= period.end]
    if not window:
        return None
    sensor = [r for r in window if r.sensor]
    sufficiency = cgm_sufficiency(
        [r.measured_at for r in sensor],
        window_days=period.days,
        min_days=params["min_days"],
        min_percent_active=params["min_percent_active"],
        sensor_interval_minutes=params["sensor_interval_minutes"],
    )
    targets = tuple(_target_checks(readings, rules, now))
    fingersticks = len(window) - len(sensor)
    if not sufficiency.sufficient:
        return CgmSummary(period.days, sufficiency, targets=targets, fingersticks=fingersticks)
    values = [reading.value for reading in sensor]
    mean = sum(values) / len(values)
    return CgmSummary(
        period.days,
        sufficiency,
        ranges=tuple(
            RangeShare(key, label, percent_in_band(values, band), range_bounds(band, GLUCOSE_UNIT))
            for key, label, band in cgm_ranges()
        ),
        targets=targets,
        mean_mg_dl=mean,
        gmi_percent=gmi_percent(mean),
        cv_percent=coefficient_of_variation(values),
        fingersticks=fingersticks,
        profile=tuple(
            glucose_profile(
                [(r.measured_at, r.value) for r in sensor],
                zone=zone,
                bin_minutes=AGP_BIN_MINUTES,
                min_readings_per_bin=AGP_MIN_BIN_READINGS,
            )
        ),
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


# Engineering choices (the reference names no minimum for a TTR): a figure from fewer than
# INR_MIN_RESULTS results, or whose interpolated days cover less than INR_MIN_COVERED_SHARE
# of its period, is shown with a caveat naming what it rests on ("from 3 results over 4
# days"): issue 14 saw a 183-day TTR from 3 results over 4 days.
INR_MIN_RESULTS = 3
INR_MIN_COVERED_SHARE = 0.5


@dataclass(frozen=True)
class TtrSummary:
    window_days: float
    ttr: TimeInRange
    label: str = ""  # "last 14 days"; "1 Feb 2026 – 28 Feb 2026"
    rule_window: bool = False  # the window the patient's TTR rule alerts on

    @property
    def too_few_results(self) -> bool:
        """Rosendaal needs two INR results: an interval to interpolate."""
        return self.ttr.results < 2

    @property
    def thin(self) -> bool:
        """A figure resting on few results, or on a short part of its period."""
        return self.ttr.results < INR_MIN_RESULTS or (
            self.ttr.days_total < INR_MIN_COVERED_SHARE * self.window_days
        )

    @property
    def min_covered_percent(self) -> int:
        return round(100 * INR_MIN_COVERED_SHARE)

    @property
    def min_results(self) -> int:
        return INR_MIN_RESULTS

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


def inr_rule_windows(rules: Sequence[Rule]) -> list[int]:
    """The windows the patient's TTR rules alert on (NICE: 6 months), shown beside the
    page's period."""
    return sorted(_windows(rules, SUMMARY_INR_TIME_IN_RANGE))


def summarise_inr(
    *,
    readings: Sequence,
    target: InrTarget,
    window_days: float,
    zone,
    now: datetime,
    label: str = "",
    rule_window: bool = False,
) -> TtrSummary:
    """As the inr_ttr rule computes it (inr_ttr.time_in_range), over the window_days before
    `now` (a custom period's end). `readings`: INR readings (measured_at, value) of the
    window and the latest one before it."""
    ttr = inr_ttr.time_in_range(
        readings,
        low=target.low,
        high=target.high,
        max_gap_days=target.max_gap_days,
        window_days=window_days,
        now=now,
        zone=zone,
    )
    return TtrSummary(window_days=window_days, ttr=ttr, label=label, rule_window=rule_window)


# --- Dose adherence -----------------------------------------------------------------------


@dataclass(frozen=True)
class Adherence:
    window_days: float
    rate: TakingRate
    label: str = ""
    rule_window: bool = False

    @property
    def percent(self) -> float | None:
        return self.rate.percent

    @property
    def logged(self) -> int:
        """Doses of medications without a plan, counted as logged."""
        return self.rate.scheduled - self.rate.planned


def adherence_rule_windows(rules: Sequence[Rule]) -> list[int]:
    """The window of each taking-rate rule, shown beside the page's period."""
    return sorted(_windows(rules, SUMMARY_DOSE_TAKING))


def summarise_adherence(
    *,
    planned: Sequence,
    doses: Sequence,
    window_days: float,
    now: datetime,
    label: str = "",
    rule_window: bool = False,
) -> Adherence:
    """Taking adherence as the taking-rate rule counts it (adherence.count_taken_doses):
    a plan's scheduled doses, and logged doses only of medications without a plan, over the
    window_days before `now` (a custom period's end: what came after it is left out)."""
    rate = count_taken_doses(
        planned_doses=[p for p in planned if p.due_at <= now],
        doses=[d for d in doses if d.measured_at <= now],
        since=now - timedelta(days=window_days),
    )
    return Adherence(window_days=window_days, rate=rate, label=label, rule_window=rule_window)


# --- Home blood pressure (issue 14.3) -------------------------------------------------------

# The goal a reading is held to: the patient's own "above goal" rule (tailored or not), else
# the clinical reference's home equivalent of office 140/90 that rule starts from. Never a
# number written here.
BP_GOAL_REFERENCE = "blood_pressure.thresholds.bp_home_avg_above_goal"
# Engineering choices (the reference names no morning/evening windows and no minimum for a
# home summary; its home_bp_average note: "duplicate morning + evening readings for ~7
# days", unverified): morning and evening are [from, to) hours of the patient's own clock,
# and fewer than BP_MIN_READINGS readings (three days of duplicate morning and evening
# readings) get a caveat, as does a morning or evening mean of fewer than BP_MIN_PART_READINGS.
MORNING_HOURS = (4, 12)
EVENING_HOURS = (18, 24)
BP_MIN_READINGS = 12
BP_MIN_PART_READINGS = 3


@dataclass(frozen=True)
class BpGoal:
    """Above goal when the conditions hold (any or all, as the rule matches them)."""

    conditions: tuple[tuple[str, str, float], ...]  # (component, op, value)
    match_all: bool
    source: str

    def above(self, systolic: float, diastolic: float) -> bool:
        values = {"systolic": systolic, "diastolic": diastolic}
        held = [OPERATORS[op](values[component], value) for component, op, value in self.conditions]
        return all(held) if self.match_all else any(held)

    @property
    def text(self) -> str:
        """The goal as the negation of the conditions: "systolic < 135 and diastolic < 85 mmHg"."""
        negated = {"ge": "<", "gt": "≤", "le": ">", "lt": "≥"}
        joiner = " or " if self.match_all else " and "
        unit = display_unit(unit_of(Metric.BLOOD_PRESSURE))
        parts = [f"{c} {negated[op]} {format_number(v)}" for c, op, v in self.conditions]
        return f"{joiner.join(parts)} {unit}"


def bp_goal(rules: Sequence[Rule]) -> BpGoal:
    candidates = [
        rule
        for rule in rules
        if rule.reference == BP_GOAL_REFERENCE and rule.metric == Metric.BLOOD_PRESSURE
    ]
    candidates.sort(key=lambda rule: not rule.active)
    if candidates:
        rule = candidates[0]
        conditions = tuple(
            (c["component"], c["op"], c["value"]) for c in rule.parameters["conditions"]
        )
        return BpGoal(
            conditions,
            match_all=rule.parameters.get("match") == "all",
            source=f"the patient's rule “{rule.title}”",
        )
    entry = resolve(BP_GOAL_REFERENCE)
    conditions = tuple(
        (component, limit["op"], limit["value"]) for component, limit in entry["limits"].items()
    )
    return BpGoal(
        conditions,
        match_all=entry.get("logic") == "and",
        source=f"the clinical reference ({entry['basis']})",
    )


@dataclass(frozen=True)
class BpSummary:
    stats: BloodPressureStats
    goal: BpGoal

    @property
    def few_readings(self) -> bool:
        return self.stats.readings < BP_MIN_READINGS

    @property
    def min_readings(self) -> int:
        return BP_MIN_READINGS

    @property
    def min_part_readings(self) -> int:
        return BP_MIN_PART_READINGS

    @property
    def morning_hours(self) -> str:
        return _hours(MORNING_HOURS)

    @property
    def evening_hours(self) -> str:
        return _hours(EVENING_HOURS)


def _hours(hours: tuple[int, int]) -> str:
    return f"{hours[0]:02d}:00–{hours[1] - 1:02d}:59"


def summarise_blood_pressure(*, readings: Sequence, rules: Sequence[Rule], zone) -> BpSummary:
    """`readings`: (measured_at, systolic, diastolic) of the period."""
    goal = bp_goal(rules)
    stats = blood_pressure_stats(
        [(r.measured_at, r.systolic, r.diastolic) for r in readings],
        above_goal=goal.above,
        zone=zone,
        morning_hours=MORNING_HOURS,
        evening_hours=EVENING_HOURS,
    )
    return BpSummary(stats=stats, goal=goal)


# --- What the patient is monitored for (issue 14.3) -----------------------------------------


@dataclass(frozen=True)
class Monitored:
    """The summaries the page shows: those of the metrics the patient's rules (copied from
    their protocols) and medication plans watch, not every summary for everyone."""

    cgm: bool
    blood_pressure: bool
    inr: bool
    adherence: bool


def monitored_for(rules: Sequence[Rule], *, has_plans: bool) -> Monitored:
    return Monitored(
        cgm=any(_feeds(rule, SUMMARY_CGM) for rule in rules),
        blood_pressure=any(rule.metric == Metric.BLOOD_PRESSURE for rule in rules),
        inr=inr_target(rules) is not None,
        adherence=has_plans or any(rule.metric == Metric.DOSE for rule in rules),
    )


# --- The whole summary ----------------------------------------------------------------------


@dataclass(frozen=True)
class PatientSummary:
    period: Period
    monitored: Monitored
    cgm: CgmSummary | None  # None: no glucose readings in the period (or not monitored)
    inr_target: InrTarget | None
    inr: tuple[TtrSummary, ...]
    adherence: tuple[Adherence, ...]
    blood_pressure: BpSummary | None

    @property
    def cgm_window_days(self) -> float:
        """The CGM summary's window: the period's days (its name before the selector)."""
        return self.period.days


def summarise_patient(
    *,
    patient,
    now: datetime,
    rules: Sequence[Rule] | None = None,
    period: Period | None = None,
):
    """The summaries of what the patient is monitored for, over `period` (default: the last
    DEFAULT_PERIOD_DAYS days) and their rules' own windows. Bounded queries, each on
    reading_patient_metric_time or slot_patient_due, one per summary shown (glucose; INR and
    the latest before; plans' slots and doses; blood pressure), and one for the plans."""
    rules = list(patient.rules.all()) if rules is None else rules
    zone = patient.zone
    period = period or preset_period(DEFAULT_PERIOD_DAYS, zone=zone, now=now)
    monitored = monitored_for(rules, has_plans=patient.medication_plans.exists())
    target = inr_target(rules)
    cgm = None
    if monitored.cgm:
        since = min(period.start, now - _cgm_lookback(rules))
        glucose = _glucose_readings(patient, since, now)
        cgm = summarise_cgm(readings=glucose, rules=rules, period=period, zone=zone, now=now)
    blood_pressure = None
    if monitored.blood_pressure:
        blood_pressure = summarise_blood_pressure(
            readings=_blood_pressure_readings(patient, period), rules=rules, zone=zone
        )
    return PatientSummary(
        period=period,
        monitored=monitored,
        cgm=cgm,
        inr_target=target,
        inr=() if target is None else _inr_periods(patient, rules, target, period, now),
        adherence=_adherence_periods(patient, rules, period, now) if monitored.adherence else (),
        blood_pressure=blood_pressure,
    )


def _inr_periods(patient, rules, target: InrTarget, period: Period, now: datetime):
    windows = inr_rule_windows(rules)
    since = min([period.start] + [now - timedelta(days=w) for w in windows])
    # The readings the TTR rule's evaluation loads: the window's, and the INR before it.
    results = window_history(
        patient_id=patient.pk,
        metric=Metric.INR,
        since=since,
        now=now,
        reading_before=inr_ttr.READING_BEFORE_WINDOW,
    )
    zone = patient.zone
    return (
        summarise_inr(
            readings=results,
            target=target,
            window_days=period.days,
            zone=zone,
            now=period.end,
            label=period.label,
        ),
        *(
            summarise_inr(
                readings=results,
                target=target,
                window_days=w,
                zone=zone,
                now=now,
                label=f"last {w} days",
                rule_window=True,
            )
            for w in windows
        ),
    )


def _adherence_periods(patient, rules, period: Period, now: datetime):
    windows = adherence_rule_windows(rules)
    since = min([period.start] + [now - timedelta(days=w) for w in windows])
    planned = planned_doses(patient_id=patient.pk, since=since, now=now)
    # As the rule's evaluation loads them (monitoring/evaluation/readings.py): by measured
    # time, counted by scheduled time.
    doses = list(
        Reading.objects.filter(
            patient=patient, metric=Metric.DOSE, measured_at__gte=since
        ).values_list("medication", "dose_status", "scheduled_for", "measured_at", named=True)
    )
    return (
        summarise_adherence(
            planned=planned,
            doses=doses,
            window_days=period.days,
            now=period.end,
            label=period.label,
        ),
        *(
            summarise_adherence(
                planned=planned,
                doses=doses,
                window_days=w,
                now=now,
                label=f"last {w} days",
                rule_window=True,
            )
            for w in windows
        ),
    )


def _glucose_readings(patient, since: datetime, until: datetime) -> list:
    """(measured_at, value, sensor) rows, oldest first: what the rule kinds read of a reading,
    and whether a CGM sensor measured it (monitoring.summaries.sensor_glucose)."""
    return list(
        Reading.objects.filter(
            patient=patient, metric=Metric.GLUCOSE, measured_at__gte=since, measured_at__lte=until
        )
        .annotate(sensor=ExpressionWrapper(sensor_glucose(), output_field=BooleanField()))
        .order_by("measured_at", "id")
        .values_list("id", "measured_at", "value", "sensor", named=True)
    )


def _blood_pressure_readings(patient, period: Period) -> list:
    return list(
        Reading.objects.filter(
            patient=patient,
            metric=Metric.BLOOD_PRESSURE,
            measured_at__gte=period.start,
            measured_at__lte=period.end,
        )
        .order_by("measured_at", "id")
        .values_list("measured_at", "systolic", "diastolic", named=True)
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


def chart_data(
    *, patient, now: datetime, rules: Sequence[Rule] | None = None, period: Period | None = None
):
    """One chart per metric the patient has readings of in the period (default: the last
    DEFAULT_PERIOD_DAYS days; issue 14.3's range selector): the
    readings, the patient's active rules as bands, and the readings that fired the
    period's alerts as marks. (Not every reading inside a band: a month of CGM has hundreds
    above 180 mg/dL, and the bands show those already.) Two queries: the readings, and the
    alerts' reading ids."""
    rules = list(patient.rules.all()) if rules is None else rules
    period = period or preset_period(DEFAULT_PERIOD_DAYS, zone=patient.zone, now=now)
    start, now = period.start, period.end
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
        _chart(metric, by_metric[metric], rules, alerted, start, now, period.label)
        for metric in CHARTED_METRICS
        if by_metric[metric]
    ]


def _chart(metric, readings, rules, alerted, start, end, period_label: str) -> MetricChart:
    unit = display_unit(unit_of(metric))
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
        title=f"{Metric(metric).label}, {period_label}",
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
