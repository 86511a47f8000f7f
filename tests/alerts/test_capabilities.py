"""One permission vocabulary (alerts/teams.py): every role × capability of the table,
asked through can(), answered the same by the API, the admin and the patient page.

A role holds a capability in its own team only; the API refuses with the capability's
refusal (monitoring/views/access.py REFUSALS), the admin and the page hide or refuse it.
"""

from __future__ import annotations

import pytest
from django.contrib import admin

from alerts import teams
from alerts.models import Alert, CareTeamRole
from alerts.teams import ROLE_PERMISSIONS, TEAM_CAPABILITIES, can, teams_where
from monitoring.admin.patients import PatientPage
from monitoring.auth import issue_app_token, register_device
from monitoring.models import MeasurementSchedule, MedicationPlan, Patient, Rule
from monitoring.views import REFUSALS
from tests.factories import (
    AlertFactory,
    MeasurementScheduleFactory,
    MedicationPlanFactory,
    MembershipFactory,
    RuleFactory,
    UserFactory,
)

ROLES = [CareTeamRole.NURSE, CareTeamRole.PHYSICIAN, CareTeamRole.COORDINATOR]


class Records:
    """One of each record a capability acts on, for one patient."""

    def __init__(self, patient):
        self.patient = patient
        self.token, _ = issue_app_token(patient=patient)
        self.device, _ = register_device(patient=patient, kind="scale", serial="SC-9")
        self.rule = RuleFactory(patient=patient)
        self.schedule = MeasurementScheduleFactory(patient=patient)
        self.plan = MedicationPlanFactory(patient=patient)
        self.alert = AlertFactory(patient=patient, rule=self.rule)


# What the API does with each capability: (method, path, body, status when allowed). Bodies
# are empty where the capability is checked before the body is read: allowed, they are 400.
def api_call(capability: str, r: Records) -> tuple[str, str, dict | None, int]:
    patient = f"/api/v1/patients/{r.patient.pk}"
    return {
        teams.ENROL_PATIENTS: ("post", "/api/v1/patients", {}, 400),
        teams.ISSUE_APP_TOKENS: ("post", f"{patient}/tokens", None, 201),
        teams.REVOKE_APP_TOKENS: ("delete", f"{patient}/tokens/{r.token.pk}", None, 204),
        teams.REGISTER_DEVICES: ("post", f"{patient}/devices", {}, 400),
        teams.REVOKE_DEVICES: ("delete", f"{patient}/devices/{r.device.pk}", None, 204),
        teams.TAILOR_RULES: ("patch", f"{patient}/rules/{r.rule.pk}", {}, 400),
        teams.ADD_SCHEDULES: ("post", f"{patient}/schedules", {}, 400),
        teams.CHANGE_SCHEDULES: ("patch", f"{patient}/schedules/{r.schedule.pk}", {}, 400),
        teams.DELETE_SCHEDULES: ("delete", f"{patient}/schedules/{r.schedule.pk}", None, 204),
        teams.ADD_MEDICATION_PLANS: ("post", f"{patient}/medications", {}, 400),
        teams.CHANGE_MEDICATION_PLANS: ("patch", f"{patient}/medications/{r.plan.pk}", {}, 400),
        teams.DELETE_MEDICATION_PLANS: ("delete", f"{patient}/medications/{r.plan.pk}", None, 204),
        teams.TRIAGE_ALERTS: ("post", f"/api/v1/alerts/{r.alert.pk}/acknowledge", {}, 200),
    }[capability]


# What the admin and the patient page say about each capability, for one user.
def admin_answers(capability: str, request, r: Records) -> list[bool]:
    def model_admin(model):
        return admin.site.get_model_admin(model)

    page = PatientPage(model_admin=model_admin(Patient), request=request, patient=r.patient)
    return {
        teams.ENROL_PATIENTS: [model_admin(Patient).has_add_permission(request)],
        teams.ISSUE_APP_TOKENS: [page.may_issue_app_tokens],
        teams.REVOKE_APP_TOKENS: [page.may_revoke_app_tokens],
        teams.REGISTER_DEVICES: [page.may_register_devices],
        teams.REVOKE_DEVICES: [page.may_revoke_devices],
        teams.TAILOR_RULES: [
            page.may_edit_rules,
            model_admin(Rule).has_change_permission(request, r.rule),
        ],
        teams.ADD_SCHEDULES: [model_admin(MeasurementSchedule).has_add_permission(request)],
        teams.CHANGE_SCHEDULES: [
            model_admin(MeasurementSchedule).has_change_permission(request, r.schedule)
        ],
        teams.DELETE_SCHEDULES: [
            model_admin(MeasurementSchedule).has_delete_permission(request, r.schedule)
        ],
        teams.ADD_MEDICATION_PLANS: [model_admin(MedicationPlan).has_add_permission(request)],
        teams.CHANGE_MEDICATION_PLANS: [
            model_admin(MedicationPlan).has_change_permission(request, r.plan)
        ],
        teams.DELETE_MEDICATION_PLANS: [
            model_admin(MedicationPlan).has_delete_permission(request, r.plan)
        ],
        teams.TRIAGE_ALERTS: [model_admin(Alert).may_triage(request, r.alert)],
    }[capability]


def test_every_capability_asked_by_name_has_its_api_refusal():
    assert set(REFUSALS) == {
        *TEAM_CAPABILITIES,
        *teams.PROGRAM_CAPABILITIES,
        teams.CREATE_CARE_TEAMS,
    }


def test_every_capability_asked_by_name_is_held_by_some_role():
    held = set().union(*ROLE_PERMISSIONS.values())
    assert set(TEAM_CAPABILITIES) <= held
    assert teams.CREATE_CARE_TEAMS not in held


@pytest.mark.django_db
@pytest.mark.parametrize("capability", TEAM_CAPABILITIES)
@pytest.mark.parametrize("role", ROLES)
def test_the_api_the_admin_and_the_page_answer_as_the_table_says(
    role, capability, team, other_team, patient, staff_client, rf
):
    # given: a member of the patient's team in `role`, and one record of each kind
    user = MembershipFactory(team=team, user=UserFactory(username=f"a-{role}"), role=role).user
    records = Records(patient)
    allowed = capability in ROLE_PERMISSIONS[role]
    request = rf.get("/admin/")
    request.user = user

    # when: the vocabulary, the admin and the page are asked, and the API is called
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
@pytest.mark.parametrize("role", ROLES)
def test_no_role_creates_care_teams(role, team, staff_client):
    user = MembershipFactory(team=team, user=UserFactory(username=f"a-{role}"), role=role).user

    response = staff_client(user).post("/api/v1/care-teams", {"name": "New"}, format="json")

    assert can(user, teams.CREATE_CARE_TEAMS, team_id=None) is False
    assert response.status_code == 403
    assert response.json() == {"detail": REFUSALS[teams.CREATE_CARE_TEAMS]}


@pytest.mark.django_db
@pytest.mark.parametrize("capability", [*TEAM_CAPABILITIES, teams.CREATE_CARE_TEAMS])
def test_a_superuser_may_do_everything_and_an_inactive_user_nothing(capability, team, superuser):
    member = MembershipFactory(team=team, role=CareTeamRole.PHYSICIAN).user
    member.is_active = False
    team_id = None if capability == teams.CREATE_CARE_TEAMS else team.pk

    assert can(superuser, capability, team_id=team_id) is True
    assert can(member, capability, team_id=team_id) is False
