"""Clinical problems: which alert group a finding feeds, and which groups share a problem.

Declared as data in problems.yaml, beside the protocol definitions. Evaluation asks this
module three things: the group of a finding (a two-sided rule's finding goes to its side's
group), the problem of a group (inhibition stays inside one problem), and the direction of
a group (which way is worse, to order the findings folded into one alert).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PROBLEMS_PATH = Path(__file__).with_name("problems.yaml")
LOW, HIGH = "low", "high"
DIRECTIONS = (LOW, HIGH)


@dataclass(frozen=True)
class Problem:
    key: str
    metric: str
    direction: str
    label: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class ProblemTable:
    problems: dict[str, Problem]
    problem_of_group: dict[str, Problem]
    two_sided: dict[str, dict[str, str]]


@cache
def problem_table() -> ProblemTable:
    with PROBLEMS_PATH.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    problems = {
        key: Problem(
            key=key,
            metric=spec["metric"],
            direction=spec["direction"],
            label=spec["label"],
            groups=tuple(spec["groups"]),
        )
        for key, spec in raw["problems"].items()
    }
    problem_of_group = {group: p for p in problems.values() for group in p.groups}
    return ProblemTable(problems, problem_of_group, raw.get("two_sided_groups", {}))


def is_two_sided(group: str) -> bool:
    return group in problem_table().two_sided


def side_group(group: str, direction: str | None, *, two_sided: bool = False) -> str:
    """The alert group a finding of a rule in `group` feeds.

    A declared two-sided group, or a rule whose own conditions go both ways (`two_sided`),
    sends a finding to the group of the side it is on. Anything else stays in its group.
    """
    sides = problem_table().two_sided.get(group)
    if direction not in DIRECTIONS:
        return group
    if sides is not None:
        return sides[direction]
    if two_sided:
        return f"{group}_{direction}"
    return group


def groups_cleared_by(group: str, *, two_sided: bool = False) -> tuple[str, ...]:
    """The groups a clear reading of a rule in `group` clears: both sides of a two-sided
    rule (a reading inside the range is neither low nor high)."""
    sides = problem_table().two_sided.get(group)
    if sides is not None:
        return tuple(sides[d] for d in DIRECTIONS)
    if two_sided:
        return tuple(f"{group}_{d}" for d in DIRECTIONS)
    return (group,)


def problem_key(group: str) -> str:
    """The problem a group belongs to; a group no problem names is a problem of its own."""
    problem = problem_table().problem_of_group.get(group)
    return problem.key if problem is not None else group


def policy_notes(*, group: str, late_data_applies: bool, stale_hours: float) -> list[str]:
    """The alerting policy that applies to a rule of `group`, in sentences for its page."""
    notes = []
    sides = problem_table().two_sided.get(group)
    problem = problem_table().problem_of_group.get(group)
    if sides is not None:
        labels = [problem_table().problem_of_group[sides[d]].label for d in DIRECTIONS]
        notes.append(
            f"Two-sided: a reading below the range feeds the “{labels[0]}” alert, one above "
            f"it the “{labels[1]}” alert."
        )
    elif problem is not None:
        notes.append(
            f"Feeds the “{problem.label}” problem: a critical alert of that problem keeps its "
            "lesser findings from paging; other problems are never held back."
        )
    if late_data_applies:
        notes.append(
            f"A reading measured more than {stale_hours:g} hours before it arrives raises an "
            "alert only when it crosses a critical limit, titled as late with its measured "
            "time; otherwise it is stored and shown but raises nothing."
        )
    return notes


def direction_of(group: str) -> str | None:
    """Which way the group's problem goes wrong, when the table says; None otherwise."""
    problem = problem_table().problem_of_group.get(group)
    return problem.direction if problem is not None else None
