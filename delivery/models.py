"""The attempt record, one definition for every outbox.

Abstract: each outbox keeps its attempts in a table of its own with a real foreign key to
its row (alerts.NotificationAttempt, monitoring.NudgeAttempt), so an attempt is deleted with
its row by the database, the admin shows attempts inline under their row, and the
notifications' history kept since the first release stays where it is (no data migration).
A single generic table would need a generic foreign key: no referential integrity, and a
copy of every past attempt into it.
"""

from django.db import models


class AttemptOutcome(models.TextChoices):
    # Recorded before the channel is called: an attempt whose worker died mid-send keeps it.
    UNKNOWN = "unknown", "No outcome (in flight, or the worker stopped mid-send)"
    SENT = "sent", "Sent"
    TRANSIENT_FAILURE = "transient_failure", "Failed, will retry"
    PERMANENT_FAILURE = "permanent_failure", "Failed permanently"


class Attempt(models.Model):
    """One try at sending one outbox row. The concrete model adds the foreign key to its
    row, with related_name "attempt_log" (the outbox writes attempts through it), and the
    unique (row, number) constraint."""

    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=AttemptOutcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True
