"""Care teams and their members."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from alerts.models import CareTeam, CareTeamMembership


class DuplicateCareTeam(Exception):
    """A care team with this name exists already."""


@dataclass(frozen=True)
class NewMember:
    user: object
    role: str
    escalation_level: int = 1


def create_care_team(*, name: str, members: list[NewMember]) -> CareTeam:
    """Writes a CareTeam and its memberships in one transaction."""
    try:
        with transaction.atomic():
            team = CareTeam.objects.create(name=name)
            CareTeamMembership.objects.bulk_create(
                CareTeamMembership(
                    team=team,
                    user=member.user,
                    role=member.role,
                    escalation_level=member.escalation_level,
                )
                for member in members
            )
    except IntegrityError as error:
        if CareTeam.objects.filter(name=name).exists():
            raise DuplicateCareTeam(name) from error
        raise
    return team
