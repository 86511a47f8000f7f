"""What every rule kind shares: conditions on a reading, findings, parameter errors.

A rule kind is a module with `validate(parameters) -> parameters` (raising
InvalidParameters with a reason per parameter), `lookback(parameters) -> timedelta` (how much
history evaluation needs) and `evaluate(rule, context) -> Evaluation`. Kinds are pure: they
read the readings they are given and return findings; they write nothing.
"""

from __future__ import annotations

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
