"""The tailoring preview: what a rule with candidate parameters would have done over the
last days, beside what it did.

"Over the last 30 days this would have fired N times (it fired M times)": N replays the
candidate over the patient's readings with the kind's own evaluation
(monitoring/rules/preview.py says how alerts are counted); M counts the alerts this rule
raised: alerts naming the rule, first triggered in the same days (as the rule's statistics
count them, program/rule_statistics.py; an alert names the rule of the worst finding it
absorbed). Reads only.

Cost: one query for the readings (the widest window the replay needs: the days plus the
kind's lookback, by reading_patient_metric_time), one count of alerts; the replay itself
runs in memory on that one load.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from alerts.models import Alert
from monitoring.evaluation.locking import unit_of
from monitoring.evaluation.scheduled import window_history
from monitoring.models import Rule
from monitoring.rules import kind_of
from monitoring.rules.preview import CandidateRule, replay, replayable

# The days the preview replays: a display choice (a month of the patient's readings).
PREVIEW_DAYS = 30
# How often the replay checks a scheduled summary (CGM metrics, INR time in range). Not the
# sweep's interval (VIGIL_SUMMARY_CHECK_INTERVAL, an hour): checking a 14-day summary every
# hour of 30 days is 720 evaluations of ~4,000 readings; every 6 hours is 120, and a summary
# over days moves little in 6 hours. An engineering choice, not a clinical number.
SUMMARY_STEP = timedelta(hours=6)


@dataclass(frozen=True)
class Preview:
    days: int
    since: datetime
    would_fire: int | None  # None: the kind cannot be replayed from readings
    fired: int
    readings: int  # readings of the metric within the days

    @property
    def text(self) -> str:
        if self.would_fire is None:
            return (
                f"This kind of rule is evaluated from closed schedule slots: there is no "
                f"preview. Over the last {self.days} days it fired {_times(self.fired)}."
            )
        return (
            f"Over the last {self.days} days this would have fired {_times(self.would_fire)} "
            f"(it fired {_times(self.fired)})."
        )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def preview_rule(
    *,
    rule: Rule,
    parameters: dict,
    severity: str | None = None,
    now: datetime,
    days: int = PREVIEW_DAYS,
) -> Preview:
    """Replay `rule` with `parameters` (already validated) over the `days` before `now`."""
    since = now - timedelta(days=days)
    fired = Alert.objects.filter(
        rule=rule, first_triggered_at__gte=since, first_triggered_at__lte=now
    ).count()
    kind = kind_of(rule)
    if not replayable(kind):
        return Preview(days, since, None, fired, 0)
    readings = window_history(
        patient_id=rule.patient_id,
        metric=rule.metric,
        since=since - kind.lookback(parameters),
        now=now,
        reading_before=kind.reading_before_window,
    )
    candidate = CandidateRule(
        id=rule.pk,
        kind=rule.kind,
        metric=rule.metric,
        group=rule.group,
        severity=severity or rule.severity,
        parameters=parameters,
        title=rule.title,
        version=rule.version,
    )
    would_fire = replay(
        kind,
        candidate,
        readings,
        since=since,
        now=now,
        zone=rule.patient.zone,
        unit=unit_of(rule.metric),
        step=SUMMARY_STEP,
        info_ttl=settings.VIGIL_INFO_ALERT_TTL,
    )
    within = sum(1 for reading in readings if reading.measured_at >= since)
    return Preview(days, since, would_fire, fired, within)
