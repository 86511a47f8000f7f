"""What every rule kind shares: the Kind it declares, conditions on a reading, findings,
parameter errors.

A rule kind is one module that ends with `KIND = Kind(...)`: everything the rest of Vigil
asks about the kind (its parameters' JSON Schema and validation, how much history it needs,
when it runs, how it evaluates, the bands it draws on a chart, the sentence describing its
parameters, the patient-page summary it feeds). The registry (monitoring/rules/__init__.py)
lists the kinds; evaluation, charts and pages ask it, never a kind's name. Kinds are pure:
they read the readings they are given and return findings; they write nothing.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from monitoring.problems import HIGH, LOW, direction_of
from monitoring.units import format_number

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
SYMBOLS = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}
# Which way a condition looks: "below a limit" is a low problem, "above" a high one.
DIRECTION_OF_OP = {"lt": LOW, "le": LOW, "gt": HIGH, "ge": HIGH}
# A target "below x" is missed by going above it, and the other way round: the sign that
# makes "further past the target" larger.
DIRECTION_SIGN = {"lt": 1, "le": 1, "gt": -1, "ge": -1}
COMPONENTS = ("value", "systolic", "diastolic")
SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


class InvalidParameters(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


class ReadingLike(Protocol):
    id: int
    metric: str
    measured_at: datetime
    value: float | None
    systolic: float | None
    diastolic: float | None


class RuleLike(Protocol):
    id: int
    kind: str
    metric: str
    group: str
    severity: str
    parameters: dict
    title: str


def _single(values: set[str]) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


@dataclass(frozen=True)
class Placement:
    """Where a finding lies within its problem, both numbers signed so that larger is worse.

    `tier`: the rule's own limit in the problem's direction (INR ≥ 5 is tier 5, INR > 10
    tier 10; glucose < 70 is tier −70, < 54 tier −54). `extremity`: how far the reading went
    past that limit, relative to it (so systolic and diastolic compare). None: not known
    (a rule kind without a limit on a value, such as missing data).
    """

    direction: str | None = None
    tier: float | None = None
    extremity: float | None = None


@dataclass(frozen=True)
class Condition:
    component: str
    op: str
    value: float

    def matches(self, reading: ReadingLike) -> bool:
        observed = getattr(reading, self.component)
        return observed is not None and OPERATORS[self.op](observed, self.value)

    def describe(self, unit: str = "") -> str:
        name = "" if self.component == "value" else f"{self.component} "
        return f"{name}{SYMBOLS[self.op]} {format_number(self.value)} {unit}".strip()

    @property
    def direction(self) -> str:
        return DIRECTION_OF_OP[self.op]


@dataclass(frozen=True)
class Conditions:
    """Conditions joined by 'any' (blood pressure: systolic > 180 or diastolic > 120) or 'all'
    (a band such as 54 ≤ glucose < 70)."""

    items: tuple[Condition, ...]
    match: str = "any"

    def matches(self, reading: ReadingLike) -> bool:
        results = (condition.matches(reading) for condition in self.items)
        return any(results) if self.match == "any" else all(results)

    def describe(self, unit: str = "") -> str:
        joiner = " or " if self.match == "any" else " and "
        return joiner.join(condition.describe(unit) for condition in self.items)

    def side(self, direction: str) -> Conditions:
        """The conditions looking one way (a two-sided rule's low or high side)."""
        return Conditions(tuple(c for c in self.items if c.direction == direction), "any")

    @property
    def goes_both_ways(self) -> bool:
        """Outside a range (INR < 2.0 or > 3.0): a reading is off on one side or the other."""
        return self.match == "any" and len({c.direction for c in self.items}) == 2

    def placement(self, reading: ReadingLike, *, group: str) -> Placement:
        """Where a matching reading lies: its side, the rule's tier, how far past it is."""
        if self.goes_both_ways:
            sides = {c.direction for c in self.items if c.matches(reading)}
            direction = sides.pop() if len(sides) == 1 else None
        else:
            direction = direction_of(group) or _single({c.direction for c in self.items})
        if direction is None:
            return Placement()
        sign = 1 if direction == HIGH else -1
        facing = [c for c in self.items if c.direction == direction]
        if not facing:
            return Placement(direction)
        past = [
            sign * (getattr(reading, c.component) - c.value) / (abs(c.value) or 1)
            for c in facing
            if c.matches(reading)
        ]
        return Placement(direction, sign * facing[0].value, max(past, default=None))

    @classmethod
    def from_parameters(cls, parameters: dict) -> Conditions:
        return cls(
            tuple(
                Condition(c.get("component", "value"), c["op"], float(c["value"]))
                for c in parameters["conditions"]
            ),
            parameters.get("match", "any"),
        )


@dataclass(frozen=True)
class Finding:
    """One rule's verdict that something needs attention."""

    rule_id: int
    severity: str
    title: str
    detail: str
    triggered_at: datetime
    reading_ids: tuple[int, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    placement: Placement = Placement()
    # When what it found began, if before `triggered_at`: a run of missed slots began with
    # the first miss (the alert's first trigger), and was found when the last one closed.
    since: datetime | None = None


@dataclass
class Evaluation:
    """A rule's findings, and since when its condition has been clear (None: it holds, or
    nothing says). A rule on both sides of a range says it per side (`cleared_sides`): a low
    reading clears the high side while the low one holds."""

    findings: list[Finding] = field(default_factory=list)
    cleared_at: datetime | None = None
    cleared_sides: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedDose:
    """One scheduled dose of a medication plan, decided: taken (a dose logged as taken
    answered its slot) or not (its window closed without one; skipped or never logged)."""

    medication: str
    due_at: datetime
    taken: bool
    at: datetime  # when it was decided: the dose's time, or the window's close


@dataclass(frozen=True)
class Context:
    """What a rule kind may look at: the patient's readings of the rule's metric."""

    now: datetime
    zone: ZoneInfo
    unit: str
    new: Sequence[ReadingLike]  # not yet evaluated, oldest first
    history: Sequence[ReadingLike]  # within the lookback, including `new`, oldest first
    # Dose rules only: the decided scheduled doses of the patient's plans within the lookback.
    planned_doses: Sequence[PlannedDose] = ()
    # Every limit the patient's rules set on this metric: a value is shown with the precision
    # that keeps it on its own side of each (53.9 mg/dL is not "54" next to "< 54").
    limits: Sequence[Condition] = ()
    # On a slot closing only: the run of missed slots of one schedule or plan that ends with
    # the slot just closed, newest first (misses before the alert's last resolution left out).
    missed: Sequence[ClosedSlot] = ()


@dataclass(frozen=True)
class ClosedSlot:
    """A measurement schedule's or medication plan's slot that closed with nothing logged, as
    a kind reads it: `subject` names what was due ("Warfarin 5 mg", "Blood glucose"),
    `owner` the schedule or plan for the alert's values."""

    id: int
    due_at: datetime
    closes_at: datetime
    subject: str
    of_plan: bool
    owner: dict[str, Any] = field(default_factory=dict)


# --- Parameter validation helpers ---------------------------------------------------------


class Checker:
    """Collects a reason per parameter, so a 400 names every wrong one at once."""

    def __init__(self, parameters: object):
        self.errors: dict[str, list[str]] = {}
        self.parameters = parameters if isinstance(parameters, dict) else {}
        if not isinstance(parameters, dict):
            self.add("parameters", "Must be an object.")

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def number(self, name: str, *, minimum: float | None = None, required: bool = True):
        value = self.parameters.get(name)
        if value is None:
            if required:
                self.add(name, "This parameter is required.")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(name, "Must be a number.")
            return None
        if minimum is not None and value < minimum:
            self.add(name, f"Must be at least {format_number(minimum)}.")
            return None
        return value

    def integer(self, name: str, *, minimum: int = 1, required: bool = True):
        value = self.number(name, minimum=minimum, required=required)
        if value is not None and value != int(value):
            self.add(name, "Must be a whole number.")
        return value

    def choice(self, name: str, options: Iterable[str], *, required: bool = True):
        value = self.parameters.get(name)
        options = list(options)
        if value is None and not required:
            return None
        if value not in options:
            self.add(name, f"Must be one of: {', '.join(options)}.")
        return value

    def conditions(self, *, components: Iterable[str] = COMPONENTS) -> None:
        raw = self.parameters.get("conditions")
        if not isinstance(raw, list) or not raw:
            self.add("conditions", "Must be a non-empty list of {component, op, value}.")
            return
        allowed = list(components)
        for position, condition in enumerate(raw):
            name = f"conditions[{position}]"
            if not isinstance(condition, dict):
                self.add(name, "Must be an object {component, op, value}.")
                continue
            if condition.get("component", "value") not in allowed:
                self.add(f"{name}.component", f"Must be one of: {', '.join(allowed)}.")
            if condition.get("op") not in OPERATORS:
                self.add(f"{name}.op", f"Must be one of: {', '.join(OPERATORS)}.")
            value = condition.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.add(f"{name}.value", "Must be a number.")
        if self.parameters.get("match", "any") not in ("any", "all"):
            self.add("match", "Must be 'any' or 'all'.")

    def unknown(self, known: Iterable[str]) -> None:
        for name in sorted(set(self.parameters) - set(known)):
            self.add(name, "Not a parameter of this rule kind.")

    def done(self) -> dict:
        if self.errors:
            raise InvalidParameters(self.errors)
        return self.parameters


def components_for(metric: str) -> tuple[str, ...]:
    return ("systolic", "diastolic") if metric == "blood_pressure" else ("value",)


def window(parameters: dict, name: str = "window_days") -> timedelta:
    return timedelta(days=parameters[name])


# --- Describing parameters ------------------------------------------------------------------


def describe_parameters(parameters: dict, *, unit: str) -> str:
    """Parameters as a clinician reads them: "≥ 54 mg/dL and < 70 mg/dL",
    "band < 70; target < 4; window_days 14; …". The exact JSON is on the rule's page."""
    parts = []
    rest = parameters
    if parameters.get("conditions"):
        try:
            parts.append(Conditions.from_parameters(parameters).describe(unit))
            rest = {k: v for k, v in parameters.items() if k not in ("conditions", "match")}
        except (KeyError, TypeError, ValueError):
            pass
    parts += [f"{name} {_compact(value)}" for name, value in rest.items()]
    return "; ".join(parts)


def _compact(value) -> str:
    if isinstance(value, dict) and {"op", "value"} <= set(value) and value["op"] in SYMBOLS:
        return f"{SYMBOLS[value['op']]} {_compact(value['value'])}"
    if isinstance(value, dict) and {"lower", "upper"} & set(value):
        bounds = []
        for side, (inclusive, exclusive) in (("lower", ("≥", ">")), ("upper", ("≤", "<"))):
            bound = value.get(side)
            if isinstance(bound, dict) and "value" in bound:
                symbol = inclusive if bound.get("inclusive") else exclusive
                bounds.append(f"{symbol} {_compact(bound['value'])}")
        return " and ".join(bounds)
    if isinstance(value, list):
        return "[" + ", ".join(_compact(item) for item in value) + "]"
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value, ensure_ascii=False)
    return format_number(value)


# --- The kind itself ------------------------------------------------------------------------

# When a kind runs. A kind may run on more than one (adherence: its taking rate on a dose,
# its runs of misses when a slot closes).
ON_READING = "on_reading"  # when readings of the rule's metric arrive (evaluation.readings)
ON_SCHEDULE = "on_schedule"  # by the scheduled-rules sweep at Rule.next_check_at
ON_SLOT_CLOSING = "on_slot_closing"  # when a schedule's or plan's slot closes unanswered

# The patient-page sections a kind's rules feed (monitoring/patient_summary.py).
SUMMARY_CGM = "cgm"
SUMMARY_INR_TIME_IN_RANGE = "inr_time_in_range"
SUMMARY_DOSE_TAKING = "dose_taking"


def _never(parameters: dict) -> bool:
    return False


def _no_bands(rule: RuleLike, *, unit: str) -> list:
    return []


def _no_windows(parameters: dict) -> list[float]:
    return []


def _not_averaged(parameters: dict) -> float | None:
    return None


def _nothing_on_slots(rule: RuleLike, context: Context) -> Evaluation:
    return Evaluation()


def _describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    return describe_parameters(parameters, unit=unit)


@dataclass(frozen=True)
class Kind:
    """Everything Vigil knows about one rule kind. Required: what every kind has; the rest
    default to "does not apply" (no bands, no deadline of its own, no summary)."""

    name: str
    label: str  # as the admin lists it (RuleKind's choices hold the same)
    # JSON Schema of the rule's `parameters`: API input is checked against it, the OpenAPI
    # document shows it and the tailoring form explains it. validate() then adds what a
    # schema cannot say (target_high above target_low) with a reason per parameter.
    parameters_schema: dict
    validate: Callable[..., dict]  # (parameters, *, metric) -> parameters | InvalidParameters
    lookback: Callable[[dict], timedelta]  # how much history evaluation loads
    evaluate: Callable[[RuleLike, Context], Evaluation]
    triggers: frozenset[str]
    # Its findings are about single readings, and so about stale data when the reading is
    # old (a phone that was offline): late findings are reviewed (review_late_findings).
    about_single_readings: bool = False
    # Evaluating new readings needs the lookback's history. Missing data does not: it looks
    # only at the latest reading, which the new readings hold; its lookback (48 h: ~576 rows
    # for a CGM) is for the scheduled check (benchmarks/evaluate_profile.py --shape cgm).
    history_on_readings: bool = True
    # Scheduled evaluation also loads the latest reading before the window (Rosendaal
    # interpolates from it into the window).
    reading_before_window: bool = False
    # Evaluation loads the decided scheduled doses of the patient's medication plans.
    wants_planned_doses: Callable[[dict], bool] = _never
    # Scheduled kinds: the deadline the kind sets itself from the latest reading,
    # (parameters, latest_reading_at | None, now) -> datetime; None: a summary checked
    # again every VIGIL_SUMMARY_CHECK_INTERVAL, first at once.
    next_check: Callable | None = None
    # After new readings: (parameters, current deadline, latest_reading_at, now) ->
    # datetime, or None to keep the current deadline. None: readings move no deadline.
    moved_check: Callable | None = None
    # On a slot closing: the evaluation from Context.missed (and the planned doses).
    evaluate_slot: Callable[[RuleLike, Context], Evaluation] = _nothing_on_slots
    # Which rules of the kind a closed plan slot re-evaluates (a taking rate falls with it).
    runs_on_missed_dose: Callable[[dict], bool] = _never
    # The bands a rule draws on a chart of its metric: (rule, *, unit) -> [Band].
    bands: Callable[..., list] = _no_bands
    # Its bands are a region of single readings, drawn on an alert's chart for every rule of
    # the metric (averages, rates and summaries alert on something else: only the alert's
    # own rule is drawn then).
    bands_mark_readings: bool = False
    # Its bands' limits apply to the mean of this many days' readings (parameters -> days),
    # not to single readings: charts draw and label them as averages. None: single readings.
    bands_averaged_over_days: Callable[[dict], float | None] = _not_averaged
    # Its findings are about an average of readings, not one reading (the queue says so).
    alerts_on_an_average: bool = False
    # The parameters as a clause of a sentence, every number the rule's own:
    # (parameters, *, unit, metric) -> "glucose is below 54 mg/dL" (monitoring/rules/words.py).
    describe: Callable[..., str] = _describe
    # How the tailoring form asks for a parameter where the kind says it its own way:
    # {parameter: (label, unit)}, unit "unit" for the metric's (monitoring/patient_forms.py).
    parameter_labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The key of its findings' values holding the value it saw, shown where no reading is
    # at hand (the triage queue's latest value).
    shown_value: str | None = None
    # The patient-page section its rules feed (SUMMARY_*), and the windows (days) a rule
    # asks that section to show besides the page's own.
    summary: str | None = None
    summary_windows: Callable[[dict], list[float]] = _no_windows

    def runs(self, trigger: str) -> bool:
        return trigger in self.triggers

    def first_check_at(self, parameters: dict, now: datetime) -> datetime | None:
        """A scheduled kind's first deadline for the sweep; reading-driven kinds none."""
        if not self.runs(ON_SCHEDULE):
            return None
        if self.next_check is not None:
            return self.next_check(parameters, None, now)
        return now


# --- Parameter schemas (JSON Schema pieces the kinds compose) -------------------------------


def number_schema(minimum: float | None = None, *, whole: bool = False) -> dict:
    schema: dict[str, Any] = {"type": "integer" if whole else "number"}
    if minimum is not None:
        schema["minimum"] = minimum
    return schema


CONDITION_SCHEMA = {
    "type": "object",
    "description": "One condition on a reading (blood pressure names its component).",
    "properties": {
        "component": {"enum": list(COMPONENTS), "default": "value"},
        "op": {"enum": list(OPERATORS)},
        "value": {"type": "number"},
    },
    "required": ["op", "value"],
}
CONDITIONS_PROPERTIES = {
    "conditions": {"type": "array", "minItems": 1, "items": CONDITION_SCHEMA},
    "match": {"enum": ["any", "all"], "default": "any"},
}


def object_schema(title: str, properties: dict, *, required: Iterable[str] = (), **more) -> dict:
    """An object of exactly these parameters (a parameter the kind does not read is refused:
    a misspelt limit must not be silently ignored)."""
    return {
        "type": "object",
        "title": title,
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
        **more,
    }
