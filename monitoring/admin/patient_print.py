"""The printable patient summary for the referring physician (issue 14.8): one A4 page with
who the patient is, what they are monitored for and take, the last 30 days' key figures per
monitored metric, the open alerts and whom to call in the care team.

The figures are the patient page's (monitoring.patient_summary: the same summaries and the
same 30 days of chart readings), not a second computation; this module only picks and words
them for paper. PatientAdmin mixes PatientPrintAdmin in for its URL
(/admin/monitoring/patient/<id>/summary/print/); another team's patient is a 404 as on every
patient view, and each print is audited as a view of the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from django.urls import path
from django.utils import timezone
from django.utils.functional import cached_property

from alerts.models import Alert, AlertStatus, CareTeamMembership
from monitoring.audit import record
from monitoring.display import display_unit, format_date, format_instant
from monitoring.evaluation import unit_of
from monitoring.models import AuditAction, MedicationPlan, Metric, Patient, Severity
from monitoring.patient_summary import (
    CHART_DAYS,
    MetricChart,
    PatientSummary,
    chart_data,
    preset_period,
    summarise_patient,
)
from monitoring.units import format_number

# The physician's letter covers a month: the page's own 30-day period (CHART_DAYS).
PRINT_DAYS = CHART_DAYS
# Display limits that keep the page to one A4 sheet (engineering choices, not clinical): the
# rest is counted ("and 3 more") and is on the patient's pages.
PRINT_ALERTS = 8
PRINT_CONTACTS = 8


@dataclass(frozen=True)
class MetricFigures:
    """One monitored metric over PRINT_DAYS: how often it was measured and where it stood.
    Blood pressure's range is each component's own (the lowest systolic and the lowest
    diastolic may be different readings), so it is written per component, not as a pair."""

    metric: str
    label: str
    readings: int
    latest: str = ""
    latest_on: str = ""
    range: str = ""
    mean: str = ""


@dataclass(frozen=True)
class PlanLine:
    name: str
    times: str
    days: str
    critical: bool


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def age_on(birth_date: date | None, today: date) -> int | None:
    """Whole years on `today`; None when the record has no date of birth."""
    if birth_date is None:
        return None
    return (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )


# Measured in whole units (mmHg, bpm, %): their means and ranges are written so too.
WHOLE_NUMBER_METRICS = {Metric.BLOOD_PRESSURE, Metric.HEART_RATE, Metric.SPO2}


def _with_unit(text: str, metric: str) -> str:
    unit = display_unit(unit_of(metric))
    return f"{text} {unit}" if unit else text


def figures_of(metric: str, chart: MetricChart | None, zone: tzinfo) -> MetricFigures:
    """The metric's key figures from its chart's readings (those of the patient page); the
    latest reading's day on the patient's calendar."""
    label = Metric(metric).label
    if chart is None or not chart.readings:
        return MetricFigures(metric=metric, label=label, readings=0)
    # A point is (at, value, …): the chart's points may carry more (a reading's id).
    components = [[point[1] for point in points] for _, points in chart.series]
    latest_at = chart.series[0][1][-1][0]
    digits = 0 if metric in WHOLE_NUMBER_METRICS else 1

    def _number(value: float) -> str:
        return format_number(round(value, digits))

    def joined(pick) -> str:
        # 132/84 for blood pressure (systolic/diastolic), one number otherwise.
        return _with_unit("/".join(pick(values) for values in components), metric)

    return MetricFigures(
        metric=metric,
        label=label,
        readings=chart.readings,
        latest=joined(lambda values: _number(values[-1])),
        latest_on=format_date(latest_at.astimezone(zone).date()),
        range=joined(lambda values: f"{_number(min(values))}–{_number(max(values))}"),
        mean=joined(lambda values: _number(sum(values) / len(values))),
    )


class PrintableSummary:
    """What the printed page shows; a few bounded queries, made when the template reads them."""

    days = PRINT_DAYS

    def __init__(self, *, patient: Patient, now: datetime):
        self.patient = patient
        self.now = now
        # The page's own range selector defaults to another span: the letter asks for 30 days.
        self.period = preset_period(self.days, zone=patient.zone, now=now)

    @cached_property
    def age(self) -> int | None:
        # The record has no date of birth yet; the line prints once it has one.
        birth_date = getattr(self.patient, "birth_date", None)
        return age_on(birth_date, self.now.astimezone(self.patient.zone).date())

    @cached_property
    def protocols(self) -> list[str]:
        return [protocol.name for protocol in self.patient.protocols.all()]

    @cached_property
    def rules(self) -> list:
        return list(self.patient.rules.select_related("protocol"))

    @cached_property
    def monitored_metrics(self) -> list[str]:
        """What the patient is monitored for: their active rules' and measurement schedules'
        metrics (doses are the medication plans' and adherence's), in Metric's order."""
        metrics = {rule.metric for rule in self.rules if rule.active}
        metrics |= set(
            self.patient.measurement_schedules.filter(active=True).values_list("metric", flat=True)
        )
        return [metric for metric in Metric.values if metric in metrics and metric != Metric.DOSE]

    @cached_property
    def figures(self) -> list[MetricFigures]:
        charts = {
            chart.metric: chart
            for chart in chart_data(
                patient=self.patient, now=self.now, rules=self.rules, period=self.period
            )
        }
        zone = self.patient.zone
        return [figures_of(m, charts.get(m), zone) for m in self.monitored_metrics]

    @cached_property
    def summary(self) -> PatientSummary:
        return summarise_patient(
            patient=self.patient, now=self.now, rules=self.rules, period=self.period
        )

    @cached_property
    def shows_cgm(self) -> bool:
        return Metric.GLUCOSE in self.monitored_metrics and self.summary.cgm is not None

    @cached_property
    def inr(self):
        """The INR time in therapeutic range over the print's 30 days (the page's period)."""
        return next((p for p in self.summary.inr if p.window_days == self.days), None)

    @cached_property
    def adherence(self):
        if not self.plans:
            return None
        return next((p for p in self.summary.adherence if p.window_days == self.days), None)

    @cached_property
    def plans(self) -> list[PlanLine]:
        plans = MedicationPlan.objects.filter(patient=self.patient, active=True).order_by("name")
        return [
            PlanLine(
                name=plan.name,
                times=", ".join(plan.dose_times),
                days=", ".join(WEEKDAYS[day] for day in sorted(plan.days_of_week))
                if plan.days_of_week
                else "daily",
                critical=plan.critical,
            )
            for plan in plans
        ]

    @cached_property
    def open_alerts(self) -> list[tuple[Alert, str]]:
        """(alert, since) of the alerts not resolved yet, most severe first, then oldest.
        Times on the patient's clock only: whoever reads the paper did not print it."""
        order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
        alerts = sorted(
            self._unresolved, key=lambda a: (order.get(a.severity, 3), a.first_triggered_at)
        )
        return [
            (alert, format_instant(alert.first_triggered_at, self.patient.zone))
            for alert in alerts[:PRINT_ALERTS]
        ]

    @cached_property
    def _unresolved(self) -> list[Alert]:
        return list(Alert.objects.filter(patient=self.patient).exclude(status=AlertStatus.RESOLVED))

    @property
    def more_alerts(self) -> int:
        return max(0, len(self._unresolved) - PRINT_ALERTS)

    @cached_property
    def contacts(self) -> list[CareTeamMembership]:
        """The care team's active members, physicians first: whom the physician calls back."""
        order = {"physician": 0, "nurse": 1, "coordinator": 2}
        return sorted(self._members, key=lambda m: (order.get(m.role, 3), m.user.get_full_name()))[
            :PRINT_CONTACTS
        ]

    @cached_property
    def _members(self) -> list[CareTeamMembership]:
        return list(
            CareTeamMembership.objects.filter(
                team_id=self.patient.care_team_id, user__is_active=True
            ).select_related("user")
        )

    @property
    def more_contacts(self) -> int:
        return max(0, len(self._members) - PRINT_CONTACTS)

    @cached_property
    def printed_at(self) -> str:
        return format_instant(self.now, self.patient.zone)


class PatientPrintAdmin:
    """For PatientAdmin (before TeamScopedAdmin in its bases): the printable summary's view."""

    def get_urls(self):
        return [
            path(
                "<int:patient_id>/summary/print/",
                self.admin_site.admin_view(self.print_summary_view),
                name="monitoring_patient_print_summary",
            ),
            *super().get_urls(),
        ]

    def print_summary_view(self, request, patient_id: int):
        """404 outside the user's teams (visible_patient); a view of the patient, audited."""
        patient = self.visible_patient(request, patient_id)
        record(
            user=request.user,
            patient=patient,
            action=AuditAction.VIEW,
            what=patient,
            request=request,
        )
        return self._render(
            request,
            "summary_print.html",
            patient,
            f"{patient.name}: summary for the referring physician",
            summary=PrintableSummary(patient=patient, now=timezone.now()),
        )
