"""A patient's own rules and their versions."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from monitoring.models.patients import Patient, Protocol
from monitoring.models.readings import Metric


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"

    @classmethod
    def rank(cls, value: str) -> int:
        return list(cls.values).index(value)


class RuleKind(models.TextChoices):
    """The database's list of rule kinds: the registry's names and labels (monitoring/rules;
    tests/monitoring/rules/test_registry.py holds the two equal). Written out because the
    models sit below the rule kinds, which read them."""

    THRESHOLD = "threshold", "Threshold"
    SUSTAINED = "sustained", "Sustained"
    COUNT_IN_WINDOW = "count_in_window", "Count in window"
    RATE_OF_CHANGE = "rate_of_change", "Rate of change"
    AVERAGE = "average", "Average over a window"
    MISSING_DATA = "missing_data", "Missing data"
    ADHERENCE = "adherence", "Dose adherence"
    CGM_SUMMARY = "cgm_summary", "CGM summary metric"
    INR_TTR = "inr_ttr", "INR time in therapeutic range"


class Rule(models.Model):
    """One of a patient's own rules: a copy of a protocol default, or added by a clinician.

    `parameters` are in the metric's canonical unit; `default_parameters` keep the protocol
    value it started from, and `reference` / `source` where that value came from. Every
    change bumps `version` and writes a RuleRevision; alerts record the version that fired.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="rules")
    key = models.CharField(max_length=64, help_text="Unique among the patient's rules.")
    protocol = models.ForeignKey(
        Protocol, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    metric = models.CharField(max_length=16, choices=Metric.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    group = models.CharField(
        max_length=64, help_text="Rules of one group feed one alert (the highest severity wins)."
    )
    title = models.CharField(max_length=200)
    parameters = models.JSONField()
    default_parameters = models.JSONField(null=True, blank=True)
    reference = models.CharField(max_length=200, blank=True)
    source = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    # Scheduled kinds (missing data, summaries): when the sweep next looks at this rule.
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "key"], name="rule_key_unique_per_patient")
        ]
        indexes = [
            # The scheduled-rules sweep: active rules whose check is due.
            models.Index(
                fields=["next_check_at"],
                condition=Q(active=True, next_check_at__isnull=False),
                name="rule_check_due",
            )
        ]
        ordering = ["patient_id", "metric", "key"]

    def __str__(self) -> str:
        return f"rule {self.pk} ({self.key} v{self.version})"


class RuleRevision(models.Model):
    """A rule as it was at one version: who set what, when, and why."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    parameters = models.JSONField()
    severity = models.CharField(max_length=8, choices=Severity.choices)
    active = models.BooleanField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "version"], name="rule_revision_unique")
        ]
        ordering = ["rule_id", "version"]

    def __str__(self) -> str:
        return f"rule {self.rule_id} v{self.version}"
