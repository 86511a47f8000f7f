"""How one patient rule behaves, and how its protocol template behaves across the viewer's
teams (issue 13.3): alerts raised (and the rate per 30 days), the median time to acknowledge,
and why its alerts were resolved, false alarms among them — so a clinician sees which
thresholds are noise.

Counted over a window of the last WINDOW_DAYS days (a display choice, shown on the page), by
when each alert was first triggered. An alert counts for the rule it names: the rule of the
worst finding it absorbed (alerts.lifecycle moves it to a worse rule of its group).

The same template: the rules copied from the same protocol default (same key, kind and
metric, with a protocol default), of the patients of the viewer's care teams (every team for
a superuser). A rule a clinician added for the patient has no template: only its own figures.
Only counts leave this module, never a patient: the rule page audits the view of its rule.

Queries: a constant handful, whatever the history — the alerts by alert_rule_triggered (rule,
first_triggered_at), each alert's first acknowledgement and its raising by the events' alert
index.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from alerts.models import (
    PERSON_REASONS,
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    CareTeam,
    ResolutionReason,
)
from monitoring.models import Rule

# The window the page shows: a display choice (three months of a rule's life), not a
# clinical number. Rates are per RATE_DAYS, the RPM device period's length in days.
WINDOW_DAYS = 90
RATE_DAYS = 30
NOT_RECORDED = ""


@dataclass(frozen=True)
class ReasonCount:
    reason: str  # a ResolutionReason, or "" (resolved without one)
    label: str
    count: int


@dataclass(frozen=True)
class Figures:
    """One scope's figures: the patient's rule, or its template across the viewer's teams."""

    rules: int  # the rules counted: 1, or the template's copies
    patients: int  # patients with an alert of these rules in the window
    alerts: int
    per_rule_per_30_days: float
    acknowledged: int
    median_to_acknowledge: timedelta | None
    resolved: int
    reasons: list[ReasonCount]
    false_alarms: int
    # Resolved by a person with a reason: the false-alarm share's denominator.
    decided: int

    @property
    def false_alarm_share(self) -> float | None:
        return self.false_alarms / self.decided if self.decided else None

    @property
    def median_to_acknowledge_text(self) -> str:
        return describe_duration(self.median_to_acknowledge)


@dataclass(frozen=True)
class RuleStatistics:
    days: int
    since: datetime
    rule: Figures
    template: Figures | None  # None: the rule was added for this patient


def rule_statistics(*, rule: Rule, user, now: datetime, days: int = WINDOW_DAYS) -> RuleStatistics:
    """The figures of `rule` and of its template across `user`'s teams, over the `days`
    before `now`. Reads only."""
    since = now - timedelta(days=days)
    in_window = Q(first_triggered_at__gte=since, first_triggered_at__lte=now)
    own = figures(Alert.objects.filter(in_window, rule=rule), rules=1, days=days)
    template = None
    if rule.default_parameters is not None:
        copies = template_copies(rule, user)
        template = figures(
            Alert.objects.filter(in_window, rule__in=copies.values("pk")),
            rules=copies.count(),
            days=days,
        )
    return RuleStatistics(days=days, since=since, rule=own, template=template)


def template_copies(rule: Rule, user) -> QuerySet[Rule]:
    """The copies of `rule`'s protocol default held by patients of `user`'s teams."""
    copies = Rule.objects.filter(
        key=rule.key, kind=rule.kind, metric=rule.metric, default_parameters__isnull=False
    )
    if user.is_superuser:
        return copies
    return copies.filter(patient__care_team__in=CareTeam.objects.visible_to(user).values("pk"))


def figures(alerts: QuerySet[Alert], *, rules: int, days: int) -> Figures:
    """Two queries: the counts, then each acknowledged alert's time to its first
    acknowledgement (from its raising, when the team could first know: the escalation
    clock's start)."""
    resolved = Q(status=AlertStatus.RESOLVED)
    reason_values = [*ResolutionReason.values, NOT_RECORDED]
    counts = alerts.aggregate(
        alerts=Count("pk"),
        patients=Count("patient_id", distinct=True),
        resolved=Count("pk", filter=resolved),
        **{
            f"reason_{value}": Count("pk", filter=resolved & Q(resolution_reason=value))
            for value in reason_values
        },
    )
    first_ack = (
        AlertEvent.objects.filter(alert=OuterRef("pk"), kind=AlertEventKind.ACKNOWLEDGED)
        .order_by("at", "id")
        .values("at")[:1]
    )
    raised = (
        AlertEvent.objects.filter(alert=OuterRef("pk"), kind=AlertEventKind.RAISED)
        .order_by("at", "id")
        .values("at")[:1]
    )
    times = [
        acknowledged - raised
        for raised, acknowledged in alerts.annotate(
            first_acknowledged_at=Subquery(first_ack),
            raised_at=Coalesce(Subquery(raised), "created_at"),
        ).values_list("raised_at", "first_acknowledged_at")
        if acknowledged is not None
    ]
    labels = dict(ResolutionReason.choices) | {NOT_RECORDED: "No reason recorded"}
    reasons = [
        ReasonCount(value, labels[value], counts[f"reason_{value}"]) for value in reason_values
    ]
    person = {value for value, _ in PERSON_REASONS}
    return Figures(
        rules=rules,
        patients=counts["patients"],
        alerts=counts["alerts"],
        per_rule_per_30_days=(counts["alerts"] * RATE_DAYS / days / rules) if rules else 0.0,
        acknowledged=len(times),
        median_to_acknowledge=statistics.median(times) if times else None,
        resolved=counts["resolved"],
        reasons=reasons,
        false_alarms=counts[f"reason_{ResolutionReason.FALSE_ALARM}"],
        decided=sum(r.count for r in reasons if r.reason in person),
    )


def describe_duration(duration: timedelta | None) -> str:
    """ "2 h 05 min", "14 min", "3 d 4 h"; "—" for none."""
    if duration is None:
        return "—"
    minutes = round(duration.total_seconds() / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"
