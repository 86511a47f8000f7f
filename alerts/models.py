from django.conf import settings
from django.db import models
from django.db.models import Q


class CareTeamQuerySet(models.QuerySet):
    def visible_to(self, user) -> "CareTeamQuerySet":
        """The teams a staff user works in; every team for a superuser."""
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user).distinct()


class CareTeam(models.Model):
    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

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


class CareTeamMembership(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_team_memberships"
    )
    role = models.CharField(max_length=20, choices=CareTeamRole.choices)
    # 1 is notified first; higher levels are reached by escalation.
    escalation_level = models.PositiveSmallIntegerField(default=1)

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
