"""Replaying a rule over a stretch of readings: how many alerts it would have raised.

The tailoring form's preview ("over the last 30 days this would have fired N times"). The
replay runs the kind's own evaluate() — no second implementation of any rule — as live
evaluation would have run it, and folds the findings into alerts as the lifecycle does.
Pure: it reads the readings it is given (monitoring/evaluation/preview.py loads them).

How alerts are counted (alerts.lifecycle, monitoring/evaluation/outcomes.py):
- A rule's findings go to its alert group; a rule on both sides of a range (INR < 2 or > 3)
  has one group per side. A finding while the group's alert is open folds into it (one more
  occurrence, not another alert); a finding with no open alert opens one: one alert counted.
- An alert is open until its condition clears: the kind's own Evaluation says since when
  (cleared_at, or cleared_sides per side), and a clearing counts only when it is after the
  alert's last finding, as mark_condition_cleared decides. In the lifecycle a cleared alert
  waits for a person to resolve it, and a finding before that re-opens the same alert; the
  replay cannot know when the team would have resolved it and assumes it was resolved once
  its condition cleared, so a condition that comes back after clearing is a new alert. It
  is an assumption, named in the docstring and on the page ("separate episodes").
- An info alert expires VIGIL_INFO_ALERT_TTL after its last finding (expire_info_alerts): a
  finding after that opens a new one.
- What other rules do is left out: another rule of the group folding into the same alert,
  and a critical alert of the problem keeping this rule's findings from paging
  (inhibition) — the preview is about this rule alone. Late data is not re-judged: the
  readings are replayed as if each arrived when measured.

When the replay evaluates:
- Kinds that run on readings: each reading of the stretch in measured order, as if it had
  just arrived (Context.new = that reading), with the history of the kind's lookback before
  it — as many evaluations as readings, each reading the part of the one loaded window it
  needs (bisect, no query). When that would hand the evaluations more than
  MAX_HISTORY_WALKED readings in all, runs of consecutive readings are evaluated together,
  as one upload of them would be (the kinds find the same findings either way); a clearing
  and a new finding within one run then count as one alert.
- Scheduled kinds (summaries, missing data): at the sweep's checks, every `step` from the
  stretch's start, and for a kind with a deadline of its own (missing data: silence becomes
  a finding `silent_hours` after the last reading) at each deadline a reading sets.
Kinds run when a schedule's slot closes (dose adherence) need the slots and planned doses
of the past: not replayed (replayable() says so, and the page says there is no preview).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitoring.rules.base import (
    ON_READING,
    ON_SCHEDULE,
    ON_SLOT_CLOSING,
    Conditions,
    Context,
    Evaluation,
    Kind,
    ReadingLike,
)

# The most readings one replay hands its evaluations in all (the sum of their histories): a
# bound on the preview's time (under a second), not a clinical number. A threshold over a
# month of CGM walks 8,640; a rule reading 30 days at every reading would walk ~100 million.
MAX_HISTORY_WALKED = 500_000


@dataclass(frozen=True)
class CandidateRule:
    """The rule as it would be with the candidate parameters and severity (a RuleLike)."""

    id: int
    kind: str
    metric: str
    group: str
    severity: str
    parameters: dict
    title: str
    version: int = 0


def replayable(kind: Kind) -> bool:
    """Whether a rule of this kind can be replayed from readings alone."""
    return not kind.runs(ON_SLOT_CLOSING) and (kind.runs(ON_READING) or kind.runs(ON_SCHEDULE))


def evaluation_times(
    kind: Kind, parameters: dict, readings: Sequence[ReadingLike], *, since, now, step
) -> list[datetime]:
    """When a scheduled kind would have been checked within (since, now]."""
    times = set()
    at = since + step
    while at <= now:
        times.add(at)
        at += step
    if kind.next_check is not None:
        for reading in readings:
            deadline = kind.next_check(parameters, reading.measured_at, reading.measured_at)
            if since < deadline <= now:
                times.add(deadline)
    return sorted(times)


def replay(
    kind: Kind,
    rule: CandidateRule,
    readings: Sequence[ReadingLike],
    *,
    since: datetime,
    now: datetime,
    zone: ZoneInfo,
    unit: str,
    step: timedelta,
    info_ttl: timedelta,
) -> int:
    """How many alerts `rule` would have raised between `since` and `now` (see the module's
    docstring for the counting). `readings`: the metric's readings from `since` minus the
    kind's lookback (and the one before, for a kind that interpolates from it) to `now`,
    oldest first."""
    lookback = kind.lookback(rule.parameters)
    times = [reading.measured_at for reading in readings]
    counter = AlertCounter(rule, info_ttl=info_ttl)
    if kind.runs(ON_SCHEDULE):
        for at in evaluation_times(
            kind, rule.parameters, readings, since=since, now=now, step=step
        ):
            start = bisect_left(times, at - lookback)
            if kind.reading_before_window and start > 0:
                start -= 1
            history = readings[start : bisect_right(times, at)]
            context = Context(now=at, zone=zone, unit=unit, new=[], history=history)
            counter.add(kind.evaluate(rule, context))
        return counter.alerts
    first, last = bisect_left(times, since), bisect_right(times, now)
    starts = [bisect_left(times, times[position] - lookback) for position in range(first, last)]
    # Readings one by one, unless that would walk too much history (a kind that reads its
    # whole lookback at every reading, over a CGM's 8,640 readings a month): then in runs of
    # consecutive readings, each run one evaluation, as an upload of them would be.
    work = sum(
        position - start + 1 for position, start in zip(range(first, last), starts, strict=True)
    )
    size = max(1, -(-work // MAX_HISTORY_WALKED))
    for offset in range(0, last - first, size):
        run = readings[first + offset : min(first + offset + size, last)]
        history = readings[starts[offset] : first + offset + len(run)]
        context = Context(now=run[-1].measured_at, zone=zone, unit=unit, new=run, history=history)
        counter.add(kind.evaluate(rule, context))
    return counter.alerts


class AlertCounter:
    """Folds one rule's evaluations, in time order, into the alerts they would have raised."""

    def __init__(self, rule: CandidateRule, *, info_ttl: timedelta):
        self.severity = rule.severity
        self.info_ttl = info_ttl
        parameters = rule.parameters
        self.both_ways = bool(parameters.get("conditions")) and (
            Conditions.from_parameters(parameters).goes_both_ways
        )
        self.last_found: dict[str | None, datetime] = {}  # open alerts: their last finding
        self.alerts = 0

    def add(self, evaluation: Evaluation) -> None:
        for finding in sorted(evaluation.findings, key=lambda finding: finding.triggered_at):
            group = finding.placement.direction if self.both_ways else None
            last = self.last_found.get(group)
            if last is None or self._expired(last, finding.triggered_at):
                self.alerts += 1
                last = finding.triggered_at
            self.last_found[group] = max(last, finding.triggered_at)
        for group, at in self._clearings(evaluation):
            last = self.last_found.get(group)
            if last is not None and at > last:
                del self.last_found[group]

    def _expired(self, last: datetime, at: datetime) -> bool:
        return self.severity == "info" and at - last > self.info_ttl

    def _clearings(self, evaluation: Evaluation):
        if self.both_ways and evaluation.cleared_sides:
            yield from evaluation.cleared_sides.items()
        elif evaluation.cleared_at is not None:
            groups = list(self.last_found) if self.both_ways else [None]
            for group in groups:
                yield group, evaluation.cleared_at
