"""Roles as groups (alerts/teams.py, alerts/migrations/0004_role_groups.py), enforced in the
admin and the API: nurses triage; physicians triage and tailor rules; coordinators enrol
patients and issue their app tokens and devices, and change no rule. A role counts in the
team it is held in.
"""

from __future__ import annotations

import importlib

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from alerts.models import AlertEvent, AlertStatus, CareTeamMembership
from alerts.teams import ROLE_PERMISSIONS, NewMember, create_care_team, sync_role_groups
from monitoring.auth import issue_app_token
from monitoring.models import Device, Patient, PatientAppToken, Rule, RuleRevision
from tests.factories import (
    AlertFactory,
    CareTeamFactory,
    MembershipFactory,
    PatientFactory,
    RuleFactory,
    UserFactory,
)

migration = importlib.import_module("alerts.migrations.0004_role_groups")
program_migration = importlib.import_module("program.migrations.0002_role_permissions")


def group_permissions(name: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Permission.objects.filter(group__name=name).values_list(
            "content_type__app_label", "codename"
        )
    }


def role_groups_of(user) -> set[str]:
    return set(user.groups.filter(name__in=ROLE_PERMISSIONS).values_list("name", flat=True))


def enrolment(team, external_id="MRN-9001") -> dict:
    return {
        "external_id": external_id,
        "name": "Ada Example",
        "timezone": "Europe/Paris",
        "care_team": team.pk,
        "protocols": [],
    }


DEVICE = {"kind": "scale", "model": "Body+", "serial": "SC-77"}


# --- The groups ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_migrate_created_the_role_groups_with_their_exact_permissions():
    assert set(Group.objects.filter(name__in=ROLE_PERMISSIONS).values_list("name", flat=True)) == {
        "nurse",
        "physician",
        "coordinator",
    }
    assert group_permissions("nurse") == {
        "monitoring.view_patient", "monitoring.view_reading", "monitoring.view_rule",
        "monitoring.view_rulerevision", "monitoring.view_device", "monitoring.view_protocol",
        "monitoring.view_measurementschedule", "monitoring.view_medicationplan",
        "monitoring.view_slot", "monitoring.view_nudge",
        "alerts.view_careteam", "alerts.view_careteammembership", "alerts.view_alert",
        "alerts.view_alertevent", "alerts.view_silence", "alerts.view_notification",
        "alerts.view_notificationattempt",
        "alerts.change_alert", "alerts.add_silence", "alerts.change_silence",
        # the program's (issue 13)
        "program.view_episode", "program.view_timeentry", "program.view_review",
        "program.view_patientnote", "program.view_ledgerline",
        "program.add_timeentry", "program.change_timeentry", "program.add_review",
        "program.add_patientnote",
    }  # fmt: skip
    assert group_permissions("physician") - group_permissions("nurse") == {
        "program.approve_timeentry",
        "monitoring.add_rule", "monitoring.change_rule",
        "monitoring.add_medicationplan", "monitoring.change_medicationplan",
        "monitoring.delete_medicationplan",
        "monitoring.add_measurementschedule", "monitoring.change_measurementschedule",
        "monitoring.delete_measurementschedule",
    }  # fmt: skip
    assert group_permissions("nurse") - group_permissions("physician") == set()
    assert group_permissions("coordinator") ^ group_permissions("nurse") == {
        # the coordinator's own
        "monitoring.add_patient", "monitoring.change_patient",
        "monitoring.add_device", "monitoring.change_device",
        "monitoring.view_patientapptoken", "monitoring.add_patientapptoken",
        "monitoring.change_patientapptoken",
        "monitoring.add_measurementschedule", "monitoring.change_measurementschedule",
        "monitoring.delete_measurementschedule",
        "program.add_episode", "program.change_episode", "program.change_ledgerline",
        # the nurse's triage, not the coordinator's
        "alerts.change_alert", "alerts.add_silence", "alerts.change_silence",
    }  # fmt: skip


def test_the_migrations_table_is_the_applications():
    application = {role: set(permissions) for role, permissions in ROLE_PERMISSIONS.items()}
    migrated = {
        role: migration.ROLE_PERMISSIONS[role] | program_migration.ADDED[role]
        for role in migration.ROLE_PERMISSIONS
    }

    assert application == migrated


@pytest.mark.django_db
def test_the_migration_rebuilds_the_groups_exactly_on_an_empty_database():
    Group.objects.filter(name__in=ROLE_PERMISSIONS).delete()
    state_apps = (
        MigrationExecutor(connection).loader.project_state(("alerts", "0004_role_groups")).apps
    )

    program_state_apps = (
        MigrationExecutor(connection)
        .loader.project_state(("program", "0002_role_permissions"))
        .apps
    )

    migration.create_role_groups(state_apps, None)
    program_migration.add_permissions(program_state_apps, None)

    for role, permissions in ROLE_PERMISSIONS.items():
        assert group_permissions(role) == set(permissions)


def test_no_role_may_delete_clinical_records_alerts_or_credentials():
    deletable = {
        perm for perms in ROLE_PERMISSIONS.values() for perm in perms if ".delete_" in perm
    }

    assert deletable == {
        "monitoring.delete_measurementschedule",
        "monitoring.delete_medicationplan",
    }


# --- Memberships and groups stay in step ---------------------------------------------------


@pytest.mark.django_db
def test_creating_a_care_team_puts_each_member_in_their_roles_group():
    nurse, coordinator = UserFactory(username="n1"), UserFactory(username="c1")

    create_care_team(
        name="Renal clinic",
        members=[NewMember(nurse, "nurse"), NewMember(coordinator, "coordinator", 2)],
    )

    assert role_groups_of(nurse) == {"nurse"}
    assert role_groups_of(coordinator) == {"coordinator"}


@pytest.mark.django_db
def test_a_user_holds_the_groups_of_all_their_roles_and_loses_one_with_its_last_membership():
    user = UserFactory(username="both")
    first = MembershipFactory(user=user, role="nurse")
    MembershipFactory(user=user, role="physician")
    assert role_groups_of(user) == {"nurse", "physician"}

    first.delete()
    sync_role_groups(users=[user])

    assert role_groups_of(user) == {"physician"}


@pytest.mark.django_db
def test_other_groups_of_a_user_are_kept():
    user = UserFactory(username="auditor")
    user.groups.add(Group.objects.create(name="clinic managers"))

    MembershipFactory(user=user, role="coordinator")

    assert set(user.groups.values_list("name", flat=True)) == {"clinic managers", "coordinator"}


@pytest.mark.django_db
def test_changing_a_role_in_the_care_team_admin_changes_the_group(superuser, nurse, team):
    client = Client()
    client.force_login(superuser)
    membership = CareTeamMembership.objects.get(user=nurse)

    response = client.post(
        reverse("admin:alerts_careteam_change", args=[team.pk]),
        {
            "name": team.name,
            "critical_escalation_minutes": 15,
            "warning_escalation_minutes": 240,
            "repeat_minutes": 60,
            "max_repeats": 3,
            "webhook_url": "",
            "webhook_secret": "",
            "memberships-TOTAL_FORMS": 1,
            "memberships-INITIAL_FORMS": 1,
            "memberships-0-id": membership.pk,
            "memberships-0-team": team.pk,
            "memberships-0-user": nurse.pk,
            "memberships-0-role": "physician",
            "memberships-0-escalation_level": 1,
            "memberships-0-phone": "",
        },
    )

    assert response.status_code == 302
    assert role_groups_of(nurse) == {"physician"}


@pytest.mark.django_db
def test_removing_a_member_in_the_care_team_admin_removes_the_group(superuser, nurse, team):
    client = Client()
    client.force_login(superuser)
    membership = CareTeamMembership.objects.get(user=nurse)

    client.post(
        reverse("admin:alerts_careteam_change", args=[team.pk]),
        {
            "name": team.name,
            "critical_escalation_minutes": 15,
            "warning_escalation_minutes": 240,
            "repeat_minutes": 60,
            "max_repeats": 3,
            "webhook_url": "",
            "webhook_secret": "",
            "memberships-TOTAL_FORMS": 1,
            "memberships-INITIAL_FORMS": 1,
            "memberships-0-id": membership.pk,
            "memberships-0-team": team.pk,
            "memberships-0-user": nurse.pk,
            "memberships-0-role": "nurse",
            "memberships-0-escalation_level": 1,
            "memberships-0-DELETE": "on",
        },
    )

    assert not CareTeamMembership.objects.filter(user=nurse).exists()
    assert role_groups_of(nurse) == set()


# --- Coordinators: enrolment, credentials, devices; no rules, no triage --------------------


@pytest.mark.django_db
def test_a_coordinator_enrols_issues_a_token_and_registers_a_device(coordinator_client, team):
    enrolled = coordinator_client.post("/api/v1/patients", enrolment(team), format="json")
    patient_id = enrolled.json()["id"]
    token = coordinator_client.post(f"/api/v1/patients/{patient_id}/tokens")
    device = coordinator_client.post(
        f"/api/v1/patients/{patient_id}/devices", DEVICE, format="json"
    )

    assert (enrolled.status_code, token.status_code, device.status_code) == (201, 201, 201)
    assert Patient.objects.get(pk=patient_id).care_team == team
    assert PatientAppToken.objects.get().patient_id == patient_id
    assert Device.objects.get().serial == "SC-77"


@pytest.mark.django_db
def test_a_coordinator_changes_no_rule_through_the_api(coordinator_client, patient):
    rule = RuleFactory(patient=patient)

    changed = coordinator_client.patch(
        f"/api/v1/patients/{patient.pk}/rules/{rule.pk}", {"severity": "critical"}, format="json"
    )
    added = coordinator_client.post(
        f"/api/v1/patients/{patient.pk}/rules",
        {"key": "weight_gain", "kind": "threshold", "metric": "weight", "severity": "warning",
         "title": "Weight", "parameters": {"conditions": [
             {"component": "value", "op": "gt", "value": 100}], "match": "any"}},
        format="json",
    )  # fmt: skip

    assert changed.status_code == 403
    assert changed.json() == {"detail": "Only the patient's physicians may change rules."}
    assert added.status_code == 403
    rule.refresh_from_db()
    assert (rule.severity, rule.version) == ("warning", 1)
    assert list(Rule.objects.all()) == [rule]
    assert not RuleRevision.objects.exists()


@pytest.mark.django_db
def test_a_coordinator_changes_no_rule_in_the_admin(coordinator, patient):
    rule = RuleFactory(patient=patient)
    client = Client()
    client.force_login(coordinator)

    page = client.post(
        reverse("admin:monitoring_patient_rule", args=[patient.pk, rule.pk]),
        {"severity": "critical", "note": "tighter"},
    )
    change = client.post(reverse("admin:monitoring_rule_change", args=[rule.pk]), {})

    assert page.status_code == 403
    assert change.status_code == 403
    rule.refresh_from_db()
    assert (rule.severity, rule.version) == ("warning", 1)
    assert not RuleRevision.objects.exists()


@pytest.mark.django_db
def test_a_coordinator_does_not_triage(coordinator, coordinator_client, patient):
    alert = AlertFactory(patient=patient)
    client = Client()
    client.force_login(coordinator)

    api = coordinator_client.post(f"/api/v1/alerts/{alert.pk}/acknowledge", {}, format="json")
    client.post(
        reverse("admin:alerts_alert_changelist"),
        {"action": "acknowledge", "_selected_action": [alert.pk]},
    )

    assert api.status_code == 403
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    assert not AlertEvent.objects.filter(alert=alert).exists()


# --- Nurses and physicians: no enrolment, no credentials -----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["nurse", "physician"])
def test_nurses_and_physicians_do_not_enrol_or_issue_credentials(
    request, staff_client, team, patient, persona
):
    client = staff_client(request.getfixturevalue(persona))
    token, _ = issue_app_token(patient=patient)

    responses = [
        client.post("/api/v1/patients", enrolment(team), format="json"),
        client.post("/api/v1/patients", {}, format="json"),
        client.post(f"/api/v1/patients/{patient.pk}/tokens"),
        client.delete(f"/api/v1/patients/{patient.pk}/tokens/{token.pk}"),
        client.post(f"/api/v1/patients/{patient.pk}/devices", DEVICE, format="json"),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403, 403]
    assert responses[0].json() == {"detail": "Only the team's coordinators may enrol patients."}
    assert list(Patient.objects.all()) == [patient]
    token.refresh_from_db()
    assert token.revoked_at is None
    assert list(PatientAppToken.objects.all()) == [token]
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_a_nurse_cannot_enrol_or_register_in_the_admin_either(nurse, team, patient):
    client = Client()
    client.force_login(nurse)

    add_patient = client.post(reverse("admin:monitoring_patient_add"), {"external_id": "X-1"})
    add_device = client.post(reverse("admin:monitoring_device_add"), {"patient": patient.pk})

    assert (add_patient.status_code, add_device.status_code) == (403, 403)
    assert list(Patient.objects.all()) == [patient]
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_a_physician_tailors_a_rule(physician, staff_client, patient):
    rule = RuleFactory(patient=patient)

    response = staff_client(physician).patch(
        f"/api/v1/patients/{patient.pk}/rules/{rule.pk}", {"severity": "critical"}, format="json"
    )

    assert response.status_code == 200
    rule.refresh_from_db()
    assert (rule.severity, rule.version, rule.updated_by) == ("critical", 2, physician)


# --- A role counts in its own team ---------------------------------------------------------


@pytest.mark.django_db
def test_a_physician_of_one_team_who_is_a_nurse_in_another_tailors_only_the_first(staff_client, rf):
    # given: physician in cardiology, nurse in diabetes
    user = UserFactory(username="dual")
    cardiology, diabetes = CareTeamFactory(), CareTeamFactory()
    MembershipFactory(team=cardiology, user=user, role="physician")
    MembershipFactory(team=diabetes, user=user, role="nurse")
    cardiac = RuleFactory(patient=PatientFactory(care_team=cardiology))
    diabetic = RuleFactory(patient=PatientFactory(care_team=diabetes))
    client = staff_client(user)

    allowed = client.patch(
        f"/api/v1/patients/{cardiac.patient_id}/rules/{cardiac.pk}",
        {"severity": "critical"},
        format="json",
    )
    refused = client.patch(
        f"/api/v1/patients/{diabetic.patient_id}/rules/{diabetic.pk}",
        {"severity": "critical"},
        format="json",
    )

    assert (allowed.status_code, refused.status_code) == (200, 403)
    diabetic.refresh_from_db()
    assert (diabetic.severity, diabetic.version) == ("warning", 1)
    # and in the admin, where the physician group grants change_rule everywhere
    request = rf.get("/admin/")
    request.user = user
    rule_admin = admin.site.get_model_admin(Rule)
    assert user.has_perm("monitoring.change_rule") is True
    assert rule_admin.has_change_permission(request, cardiac) is True
    assert rule_admin.has_change_permission(request, diabetic) is False
    assert rule_admin.has_view_permission(request, diabetic) is True
