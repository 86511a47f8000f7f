"""Care teams, their members, and what each member's role lets them do.

One vocabulary for permissions, asked the same way by the API, the admin and the pages:

- a capability is a permission label, "app.codename" (the admin's own model checks ask for
  them too); those the API and the pages ask for by name are the constants below;
- ROLE_PERMISSIONS is the table: the capabilities each role holds in its team;
- `can(user, capability, team_id=…)` asks it for one team's patients (the role the user
  holds in that team), `teams_where(user, capability)` for the teams where it is granted.
  Superusers may do everything; a capability granted outside the roles (directly, or
  through a group that is not a role group) holds in every team.

A role (nurse, physician, coordinator) is held per team; each role has a Django group of the
same name holding its model permissions (created by alerts/migrations/0004_role_groups). A
user is in exactly the groups of the roles they hold in some team, kept so by
sync_role_groups, which every path that writes memberships calls. The groups let Django's
admin show the models at all; `can` narrows them to one team, so a physician of one team who
is a nurse in another tailors rules only in the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction
from django.db.models import Q

from alerts.models import CareTeam, CareTeamMembership, CareTeamRole

# Read-only context every role needs to work on a patient.
_CONTEXT = frozenset({
    "monitoring.view_patient", "monitoring.view_reading", "monitoring.view_rule",
    "monitoring.view_rulerevision", "monitoring.view_device", "monitoring.view_protocol",
    "monitoring.view_measurementschedule", "monitoring.view_medicationplan",
    "monitoring.view_slot", "monitoring.view_nudge",
    "alerts.view_careteam", "alerts.view_careteammembership", "alerts.view_alert",
    "alerts.view_alertevent", "alerts.view_silence", "alerts.view_notification",
    "alerts.view_notificationattempt",
})  # fmt: skip
# Triage: acknowledge, resolve and assign alerts; silence a noisy rule for a while.
_TRIAGE = frozenset({"alerts.change_alert", "alerts.add_silence", "alerts.change_silence"})
# The remote-monitoring program (program/, issue 13), every role: see the episodes, the
# care time and the ledger; log time, sign off a review, write a note or a call.
_PROGRAM = frozenset({
    "program.view_episode", "program.view_timeentry", "program.view_review",
    "program.view_patientnote", "program.view_ledgerline",
    "program.add_timeentry", "program.change_timeentry", "program.add_review",
    "program.add_patientnote",
})  # fmt: skip

# The exact permissions of each role's group. No role deletes clinical records, alerts or
# credentials (credentials and devices are revoked, a change; silences are ended, a change);
# schedules and medication plans may be deleted (their readings stay).
# Changing this table needs a data migration that changes the groups too.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    CareTeamRole.NURSE: _CONTEXT | _TRIAGE | _PROGRAM,
    CareTeamRole.PHYSICIAN: _CONTEXT | _TRIAGE | _PROGRAM | {
        "program.approve_timeentry",
        "monitoring.add_rule", "monitoring.change_rule",
        "monitoring.add_medicationplan", "monitoring.change_medicationplan",
        "monitoring.delete_medicationplan",
        "monitoring.add_measurementschedule", "monitoring.change_measurementschedule",
        "monitoring.delete_measurementschedule",
    },
    CareTeamRole.COORDINATOR: _CONTEXT | _PROGRAM | {
        "program.add_episode", "program.change_episode", "program.change_ledgerline",
        "monitoring.add_patient", "monitoring.change_patient",
        "monitoring.add_device", "monitoring.change_device",
        "monitoring.view_patientapptoken", "monitoring.add_patientapptoken",
        "monitoring.change_patientapptoken",
        "monitoring.add_measurementschedule", "monitoring.change_measurementschedule",
        "monitoring.delete_measurementschedule",
    },
}  # fmt: skip
ROLE_GROUPS = frozenset(ROLE_PERMISSIONS)

# --- The capabilities asked for by name ---------------------------------------------------
# In a team (ask with team_id):
ENROL_PATIENTS = "monitoring.add_patient"
ISSUE_APP_TOKENS = "monitoring.add_patientapptoken"
REVOKE_APP_TOKENS = "monitoring.change_patientapptoken"
REGISTER_DEVICES = "monitoring.add_device"
REVOKE_DEVICES = "monitoring.change_device"
# Adding a rule and tailoring one are one capability: the change permission.
TAILOR_RULES = "monitoring.change_rule"
ADD_SCHEDULES = "monitoring.add_measurementschedule"
CHANGE_SCHEDULES = "monitoring.change_measurementschedule"
DELETE_SCHEDULES = "monitoring.delete_measurementschedule"
ADD_MEDICATION_PLANS = "monitoring.add_medicationplan"
CHANGE_MEDICATION_PLANS = "monitoring.change_medicationplan"
DELETE_MEDICATION_PLANS = "monitoring.delete_medicationplan"
TRIAGE_ALERTS = "alerts.change_alert"
# The RPM program (issue 13).
MANAGE_EPISODES = "program.change_episode"
LOG_TIME = "program.add_timeentry"
# Approving time is also the episode's billing practitioner's, whatever their role.
APPROVE_TIME = "program.approve_timeentry"
REVIEW_PATIENTS = "program.add_review"
WRITE_NOTES = "program.add_patientnote"
VIEW_BILLING = "program.view_ledgerline"
EXPORT_BILLING = "program.change_ledgerline"
# Clinic-wide (no team; no role holds it: clinic administrators are granted it):
CREATE_CARE_TEAMS = "alerts.add_careteam"

TEAM_CAPABILITIES = (
    ENROL_PATIENTS, ISSUE_APP_TOKENS, REVOKE_APP_TOKENS, REGISTER_DEVICES, REVOKE_DEVICES,
    TAILOR_RULES, ADD_SCHEDULES, CHANGE_SCHEDULES, DELETE_SCHEDULES, ADD_MEDICATION_PLANS,
    CHANGE_MEDICATION_PLANS, DELETE_MEDICATION_PLANS, TRIAGE_ALERTS,
)  # fmt: skip
# The program's, walked by tests/program/test_capabilities.py.
PROGRAM_CAPABILITIES = (
    MANAGE_EPISODES, LOG_TIME, APPROVE_TIME, REVIEW_PATIENTS, WRITE_NOTES, VIEW_BILLING,
    EXPORT_BILLING,
)  # fmt: skip


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
    sync_role_groups(users=[member.user for member in members])
    return team


# --- Roles --------------------------------------------------------------------------------


def _permissions(labels: Iterable[str]) -> list[Permission]:
    wanted = {tuple(label.split(".", 1)) for label in labels}
    found = Permission.objects.filter(
        content_type__app_label__in={app for app, _ in wanted},
        codename__in={codename for _, codename in wanted},
    ).select_related("content_type")
    return [p for p in found if (p.content_type.app_label, p.codename) in wanted]


def ensure_role_groups() -> dict[str, Group]:
    """The role groups by name, creating any that is missing with its permissions.

    The data migration creates them; a database flushed after migrating (as the test
    database is between transactional tests) has lost them, and an operator may have
    deleted one. A group that exists is left as it is: its permissions are the clinic's.
    """
    groups = {group.name: group for group in Group.objects.filter(name__in=ROLE_GROUPS)}
    for role in ROLE_GROUPS - set(groups):
        group, created = Group.objects.get_or_create(name=role)
        if created:
            group.permissions.set(_permissions(ROLE_PERMISSIONS[role]))
        groups[role] = group
    return groups


def sync_role_groups(*, users: Iterable) -> None:
    """Puts each user in exactly the role groups of the roles they hold in any team.

    Writes group memberships (auth_user_groups) only; other groups a user is in are kept.
    Call it after any write to CareTeamMembership, with the users whose memberships changed.
    """
    users = list(users)
    if not users:
        return
    groups = ensure_role_groups()
    held: dict[int, set[str]] = {user.pk: set() for user in users}
    for user_id, role in CareTeamMembership.objects.filter(user_id__in=list(held)).values_list(
        "user_id", "role"
    ):
        held[user_id].add(role)
    for user in users:
        wanted = {groups[role] for role in held[user.pk] if role in groups}
        user.groups.remove(*(set(groups.values()) - wanted))
        user.groups.add(*wanted)
        # Django caches permissions on the user object; they just changed.
        for cached in ("_perm_cache", "_group_perm_cache", "_vigil_team_perms"):
            user.__dict__.pop(cached, None)


def team_permissions(user, team_id: int) -> frozenset[str]:
    """The permissions ("app.codename") `user` holds for the patients of one team: those of
    the role groups of the roles they hold in that team, plus any granted to them outside
    the roles (directly, or through a group that is not a role group). Cached on the user
    object for the request, as Django caches has_perm."""
    if not user.is_active:
        return frozenset()
    cache = user.__dict__.setdefault("_vigil_team_perms", {})
    if team_id not in cache:
        roles = CareTeamMembership.objects.filter(user=user, team_id=team_id).values("role")
        other_groups = user.groups.exclude(name__in=ROLE_GROUPS).values("pk")
        granted = Permission.objects.filter(
            Q(group__name__in=roles) | Q(user=user) | Q(group__in=other_groups)
        ).values_list("content_type__app_label", "codename")
        cache[team_id] = frozenset(f"{app}.{codename}" for app, codename in granted)
    return cache[team_id]


def can(user, capability: str, *, team_id: int | None) -> bool:
    """May `user` do `capability` ("app.codename") to the patients of team `team_id`, through
    the role they hold there (or a grant outside the roles)? With team_id=None, a
    clinic-wide capability such as CREATE_CARE_TEAMS, as Django grants it (has_perm).
    Superusers may do everything; an inactive user nothing."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    if team_id is None:
        return user.has_perm(capability)
    return capability in team_permissions(user, team_id)


def teams_where(user, capability: str):
    """The care teams (a queryset) in whose patients `user` may do `capability`: every team
    for a superuser."""
    teams = CareTeam.objects.visible_to(user)
    if user.is_active and user.is_superuser:
        return teams
    allowed = [pk for pk in teams.values_list("pk", flat=True) if can(user, capability, team_id=pk)]
    return CareTeam.objects.filter(pk__in=allowed)
