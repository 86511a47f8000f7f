"""The audit log: who viewed or changed which patient's data, what, when, and from where.

Append-only. The model refuses to update or delete a row (save of a stored row, delete,
QuerySet.update/delete); on PostgreSQL a trigger refuses UPDATE and DELETE on the table as
well (monitoring/migrations/0006_auditevent), so raw SQL from the application cannot
rewrite history either. Rows are written by monitoring/audit.py only.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from monitoring.models.patients import Patient


class AuditLogIsAppendOnly(Exception):
    """An audit event cannot be changed or deleted."""


class AuditAction(models.TextChoices):
    VIEW = "view", "Viewed"
    CREATE = "create", "Created"
    CHANGE = "change", "Changed"
    DELETE = "delete", "Deleted"
    EXPORT = "export", "Exported"
    # A call refused (403, 404) to an authenticated caller: another team's patient, or an
    # action the caller's role does not allow. Who tried what is part of the trail.
    REFUSED = "refused", "Refused"


class AuditSurface(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    OTHER = "other", "Other"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditLogIsAppendOnly("audit events cannot be updated")

    def delete(self):
        raise AuditLogIsAppendOnly("audit events cannot be deleted")

    delete.queryset_only = True  # as Django's own: the manager has no delete()


class AuditEvent(models.Model):
    """One view or change of one patient's data by one person or credential.

    `user` and `patient` are foreign keys without a database constraint, and deleting the
    user or the patient leaves them as they are (DO_NOTHING): the ids stay in the row, so
    deleting a patient does not erase who saw their data, and no UPDATE of this table is
    ever needed. `actor` keeps the username as it was (or the patient credential that
    acted: "patient:5", "device:3").
    """

    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor = models.CharField(max_length=150)
    patient = models.ForeignKey(
        Patient,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    action = models.CharField(max_length=8, choices=AuditAction.choices)
    # What: the model ("monitoring.reading"), the object (blank for a list) and, for a
    # change, the fields it changed.
    model = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64, blank=True)
    fields = models.JSONField(default=list, blank=True)
    # Where from.
    surface = models.CharField(max_length=8, choices=AuditSurface.choices)
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=500, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        indexes = [
            # "Who saw this patient's data?"
            models.Index(fields=["patient", "-at"], name="audit_patient_time"),
            # "What did this user look at?"
            models.Index(fields=["user", "-at"], name="audit_user_time"),
        ]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"audit event {self.pk}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditLogIsAppendOnly("audit events cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogIsAppendOnly("audit events cannot be deleted")
