from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from delivery.models import Attempt
from monitoring.models import Metric, RuleKind, Severity


class CareTeamQuerySet(models.QuerySet):
    def visible_to(self, user) -> "CareTeamQuerySet":
        """The teams a staff user works in; every team for a superuser."""
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user).distinct()


class CareTeam(models.Model):
    """A clinic team, and its escalation policy for the alerts of its patients.

    The policy's numbers are operational choices of the clinic, not clinical thresholds.
    """

    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Escalation: an unacknowledged alert goes to the next level after this long.
    critical_escalation_minutes = models.PositiveIntegerField(default=15)
    warning_escalation_minutes = models.PositiveIntegerField(default=240)
    # At the top level it is repeated this often, at most this many times.
    repeat_minutes = models.PositiveIntegerField(default=60)
    max_repeats = models.PositiveSmallIntegerField(default=3)
    # The reference's info severity is "outside target, no action needed now": such alerts
    # wait in the queue and trends; a team pages for them only if it chooses to.
    page_info_alerts = models.BooleanField(
        default=False,
        help_text="Also notify the team of info alerts (no action needed now). "
        "Off: info alerts appear in the queue and reports only.",
    )
    # Optional signed webhook for the team's own systems (paging, EHR inbox).
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=128, blank=True)

    objects = CareTeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def has_member(self, user) -> bool:
        return self.memberships.filter(user=user).exists()


class CareTeamRole(models.TextChoices):
    NURSE = "nurse", "Nurse"
    PHYSICIAN = "physician", "Physician"
    COORDINATOR = "coordinator", "Coordinator"


class MembershipQuerySet(models.QuerySet):
    def on_call(self) -> "MembershipQuerySet":
        """The members alerts page: active clinicians. Coordinators enrol patients and
        manage devices; they do not triage, so they are not paged."""
        return self.filter(user__is_active=True).exclude(role=CareTeamRole.COORDINATOR)


class CareTeamMembership(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_team_memberships"
    )
    role = models.CharField(max_length=20, choices=CareTeamRole.choices)
    # 1 is notified first; higher levels are reached by escalation.
    escalation_level = models.PositiveSmallIntegerField(default=1)
    # E.164 number for SMS alerts, when the clinic enables SMS.
    phone = models.CharField(max_length=20, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_per_team"),
            models.CheckConstraint(
                condition=Q(escalation_level__gte=1), name="membership_escalation_level_positive"
            ),
        ]
        ordering = ["team_id", "escalation_level", "id"]

    def __str__(self) -> str:
        return f"membership {self.pk} (team {self.team_id}, user {self.user_id})"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class ResolutionReason(models.TextChoices):
    """Why an alert was resolved: a person picks one of the first four with every resolve
    (issue 13); they feed the rule's statistics (program.rule_statistics), so a clinician
    sees which thresholds are noise."""

    CONTACTED_PATIENT = "contacted_patient", "Contacted the patient"
    ESCALATED = "escalated", "Escalated"
    NO_ACTION_NEEDED = "no_action_needed", "No action needed"
    FALSE_ALARM = "false_alarm", "False alarm"
    # Vigil's own, never offered to a person: an info alert that expired with nobody acting.
    EXPIRED = "expired", "Expired (nobody had to act)"


# The reasons a person may give (the alert page, the bulk action, the API).
PERSON_REASONS = [
    (value, label) for value, label in ResolutionReason.choices if value != ResolutionReason.EXPIRED
]


class Alert(models.Model):
    """One real problem of one patient, as the care team sees it.

    At most one unresolved alert per patient and dedupe key (the rule group), kept by a
    partial unique index: a new finding of the same problem adds an occurrence instead of
    a second alert. Every change goes through alerts/lifecycle.py and writes an AlertEvent.
    """

    patient = models.ForeignKey(
        "monitoring.Patient", on_delete=models.CASCADE, related_name="alerts"
    )
    # No index of its own: alert_rule_triggered leads with it.
    rule = models.ForeignKey(
        "monitoring.Rule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        db_index=False,
    )
    dedupe_key = models.CharField(max_length=100)
    metric = models.CharField(max_length=16, choices=Metric.choices)
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    first_triggered_at = models.DateTimeField()
    last_triggered_at = models.DateTimeField()
    # Set when a later reading no longer meets the condition; cleared when it fires again.
    condition_cleared_at = models.DateTimeField(null=True, blank=True)
    # The rule as it was when it last fired (or raised the severity).
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    rule_parameters = models.JSONField(null=True, blank=True)
    values = models.JSONField(default=dict, blank=True)
    reading_ids = models.JSONField(default=list, blank=True)
    # Where the worst finding the alert has absorbed lies within its problem (the rule's
    # limit, and how far past it the reading went; larger is worse): a later finding is
    # compared with it to decide whether the alert must move to it and page again.
    tier = models.FloatField(null=True, blank=True)
    extremity = models.FloatField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    escalation_level = models.PositiveSmallIntegerField(default=1)
    repeats = models.PositiveSmallIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    # Info alerts expire on their own when nobody needs to act.
    expires_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Blank: resolved before reasons were recorded, or through the API without one (the
    # contract's body is {"note"}; the reason is an optional addition there).
    resolution_reason = models.CharField(
        max_length=20, choices=ResolutionReason.choices, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "dedupe_key"],
                condition=~Q(status="resolved"),
                name="alert_one_unresolved_per_patient_and_key",
            ),
            models.CheckConstraint(condition=Q(occurrences__gte=1), name="alert_occurs"),
        ]
        indexes = [
            # The escalation sweep: open alerts whose deadline has passed.
            models.Index(
                fields=["next_escalation_at"],
                condition=Q(status="open", next_escalation_at__isnull=False),
                name="alert_escalation_due",
            ),
            # Info alerts past their expiry.
            models.Index(
                fields=["expires_at"],
                condition=~Q(status="resolved") & Q(expires_at__isnull=False),
                name="alert_expiry_due",
            ),
            # The triage list: newest first, filtered by status and severity.
            models.Index(fields=["status", "severity", "-last_triggered_at"], name="alert_triage"),
            # A rule's alerts over a window (program.rule_statistics), and the rule's
            # deletion setting them to NULL.
            models.Index(fields=["rule", "first_triggered_at"], name="alert_rule_triggered"),
        ]
        ordering = ["-last_triggered_at", "-id"]

    def __str__(self) -> str:
        return f"alert {self.pk}"

    @property
    def is_resolved(self) -> bool:
        return self.status == AlertStatus.RESOLVED

    def escalation_delay(self, team: CareTeam) -> timedelta | None:
        """How long this alert may stay unacknowledged before the next level hears of it."""
        minutes = {
            "critical": team.critical_escalation_minutes,
            "warning": team.warning_escalation_minutes,
        }.get(self.severity)
        return timedelta(minutes=minutes) if minutes else None


class AlertEventKind(models.TextChoices):
    RAISED = "raised", "Raised"
    RETRIGGERED = "retriggered", "Triggered again"
    SEVERITY_RAISED = "severity_raised", "Severity raised"
    WORSENED = "worsened", "Worsened (a further tier of the same problem)"
    CONDITION_CLEARED = "condition_cleared", "Condition cleared"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    EXPIRED = "expired", "Expired"
    ESCALATED = "escalated", "Escalated"
    REPEATED = "repeated", "Repeated to the top level"
    ASSIGNED = "assigned", "Assigned"
    NOTE = "note", "Note"


# Events that page someone, while the alert is open and its current severity calls for a
# person (alerts.notify.calls_for_a_person). A worse finding re-opens an acknowledged alert
# (lifecycle), so one still acknowledged was acknowledged since. A new kind of event that
# should page as a new alert does (a further tier of the same problem) is one more line here;
# the index alertevent_unrouted changes with it (makemigrations), and that migration must mark
# the kind's existing events routed, or the routing sweep pages about every one of them.
PAGING_EVENTS = frozenset(
    {
        AlertEventKind.RAISED,
        AlertEventKind.SEVERITY_RAISED,
        # A further tier of the same problem at the same severity (INR > 10 after INR >= 5).
        AlertEventKind.WORSENED,
        # Escalation's own events: only warning and critical alerts have a deadline.
        AlertEventKind.ESCALATED,
        AlertEventKind.REPEATED,
    }
)


class AlertEvent(models.Model):
    """Append-only history of an alert: every state change and note, who and when.

    A paging event is also the outbox row of its routing (`routed_at`)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=AlertEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    # When routing decided who is paged about this event, set in the transaction that creates
    # its notifications, and set too when that is nobody (an info alert, a silence, an alert
    # handled meanwhile). A paging event still without it after the grace lost its routing
    # task (a Redis restart, a killed worker): the routing sweep routes it again.
    routed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["alert_id", "at", "id"]
        indexes = [
            # The routing sweep (alerts.notify.enqueue_unrouted_alert_events), oldest first:
            # only paging events whose routing has not run yet, so it stays a few rows.
            models.Index(
                fields=["id"],
                condition=Q(routed_at__isnull=True, kind__in=sorted(PAGING_EVENTS)),
                name="alertevent_unrouted",
            )
        ]

    def __str__(self) -> str:
        return f"alert event {self.pk} ({self.kind})"


class Silence(models.Model):
    """No notifications for a patient, or one of their rules, until `ends_at`. Alerts are
    still recorded (the history stays complete); nobody is paged about them."""

    patient = models.ForeignKey(
        "monitoring.Patient", on_delete=models.CASCADE, related_name="silences"
    )
    rule = models.ForeignKey(
        "monitoring.Rule", null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="silence_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["patient", "ends_at"], name="silence_patient_active")]
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"silence {self.pk}"

    def covers(self, *, rule_id: int | None, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and self.rule_id in (None, rule_id)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"
    SMS = "sms", "SMS"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"
    # The alert was acknowledged or resolved before this page went out: nobody needs it.
    CANCELLED = "cancelled", "Cancelled (alert handled first)"


class Notification(models.Model):
    """One delivery of one alert event to one target over one channel (the outbox row)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.CharField(max_length=300, help_text="Email address, phone number or URL.")
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # A worker's lease on this delivery, or when its retry is due (backoff): until then a
    # redelivered task skips it and the outbox sweep leaves it alone.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            # Routing the same event twice (a re-run task) cannot notify anyone twice.
            models.UniqueConstraint(
                fields=["event", "channel", "target"], name="notification_once_per_event_target"
            )
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(status="pending"),
                name="notification_pending",
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"notification {self.pk} ({self.channel})"


class NotificationAttempt(Attempt):
    """One try at delivering a notification (the fields: delivery.models.Attempt)."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempt_log"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "number"], name="notification_attempt_unique"
            )
        ]
        ordering = ["notification_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}"


class ChannelFault(models.Model):
    """A delivery target that failed permanently (bad address, rejected credentials): flagged
    for the operator in the admin and on /healthz until someone clears it."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(max_length=300)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    failures = models.PositiveIntegerField(default=1)
    last_error = models.TextField(blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "target"],
                condition=Q(cleared_at__isnull=True),
                name="channel_fault_one_open_per_target",
            )
        ]
        ordering = ["-last_failed_at"]

    def __str__(self) -> str:
        return f"channel fault {self.pk} ({self.channel})"
