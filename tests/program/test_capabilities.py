"""The program's capabilities of episodes and care time (alerts/teams.py MANAGE_EPISODES,
LOG_TIME, APPROVE_TIME): every role × capability asked through can(), answered the same by
the API and the admin (tests/alerts/test_capabilities.py is the model).

A role holds a capability in its own team only; the API refuses with the capability's
refusal (monitoring/views/access.py REFUSALS), the admin hides or refuses it.
"""

from __future__ import annotations

import pytest
from django.contrib import admin

from alerts import teams
from alerts.models import CareTeamRole
from alerts.teams import ROLE_PERMISSIONS, can, teams_where
from monitoring.views import REFUSALS
from program.care_time import APPROVE_REFUSAL, may_approve
from program.models import Episode, TimeEntry
from program.templatetags.care_time import care_time_timer
from tests.factories import MembershipFactory, UserFactory
from tests.program.factories import EpisodeFactory, TimeEntryFactory

ROLES = [CareTeamRole.NURSE, CareTeamRole.PHYSICIAN, CareTeamRole.COORDINATOR]
CAPABILITIES = [teams.MANAGE_EPISODES, teams.LOG_TIME, teams.APPROVE_TIME]


class Records:
    """An episode billed by another physician, and a nurse's time entry, of one patient."""

    def __init__(self, patient):
        self.patient = patient
        self.episode = EpisodeFactory(patient=patient)
        self.entry = TimeEntryFactory(patient=patient)


# (method, path, body, status when allowed). Bodies are empty where the capability is
# checked before the body is read: allowed, they are 400.
def api_call(capability: str, r: Records) -> tuple[str, str, dict | None, int]:
    patient = f"/api/v1/patients/{r.patient.pk}"
    return {
        teams.MANAGE_EPISODES: ("post", f"{patient}/episodes", {}, 400),
        teams.LOG_TIME: ("post", f"{patient}/time-entries", {}, 400),
        teams.APPROVE_TIME: ("post", f"/api/v1/time-entries/{r.entry.pk}/approve", None, 200),
    }[capability]


def admin_answers(capability: str, request, r: Records) -> list[bool]:
    episodes = admin.site.get_model_admin(Episode)
    entries = admin.site.get_model_admin(TimeEntry)
    return {
        teams.MANAGE_EPISODES: [
            episodes.has_add_permission(request),
            episodes.has_change_permission(request, r.episode),
        ],
        teams.LOG_TIME: [
            entries.has_add_permission(request),
            care_time_timer({"request": request}, r.patient)["may_log"],
        ],
        teams.APPROVE_TIME: [
            entries.has_approve_permission(request),
            may_approve(user=request.user, entry=r.entry),
        ],
    }[capability]


def test_the_program_capabilities_are_named_and_refused_by_name():
    assert set(CAPABILITIES) <= set(teams.PROGRAM_CAPABILITIES)
    assert REFUSALS[teams.APPROVE_TIME] == APPROVE_REFUSAL  # the service's words, the API's


@pytest.mark.django_db
@pytest.mark.parametrize("capability", CAPABILITIES)
@pytest.mark.parametrize("role", ROLES)
def test_the_api_and_the_admin_answer_as_the_table_says(
    role, capability, team, other_team, patient, staff_client, rf
):
    # given: a member of the patient's team in `role`, an episode and a nurse's time entry
    user = MembershipFactory(team=team, user=UserFactory(username=f"a-{role}"), role=role).user
    records = Records(patient)
    allowed = capability in ROLE_PERMISSIONS[role]
    request = rf.get("/admin/")
    request.user = user

    # when: the vocabulary and the admin are asked, and the API is called
    in_team = can(user, capability, team_id=team.pk)
    elsewhere = can(user, capability, team_id=other_team.pk)
    where = set(teams_where(user, capability))
    admin_says = admin_answers(capability, request, records)
    method, path, body, status_when_allowed = api_call(capability, records)
    response = getattr(staff_client(user), method)(path, body, format="json")

    # then: all of them answer what the table says, for the role's own team only
    assert (in_team, elsewhere) == (allowed, False)
    assert where == ({team} if allowed else set())
    assert admin_says == [allowed] * len(admin_says)
    if allowed:
        assert response.status_code == status_when_allowed, response.content
    else:
        assert response.status_code == 403
        assert response.json() == {"detail": REFUSALS[capability]}


@pytest.mark.django_db
def test_only_coordinators_manage_physicians_approve_everyone_logs():
    held = {role: ROLE_PERMISSIONS[role] for role in ROLES}

    assert [role for role in ROLES if teams.MANAGE_EPISODES in held[role]] == ["coordinator"]
    assert [role for role in ROLES if teams.APPROVE_TIME in held[role]] == ["physician"]
    assert [role for role in ROLES if teams.LOG_TIME in held[role]] == ROLES


@pytest.mark.django_db
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_superuser_may_do_everything_and_an_inactive_user_nothing(capability, team, superuser):
    member = MembershipFactory(team=team, role=CareTeamRole.COORDINATOR).user
    member.is_active = False

    assert can(superuser, capability, team_id=team.pk) is True
    assert can(member, capability, team_id=team.pk) is False
