"""The patient page in the admin (monitoring/admin/patients.py): enrolment, preferences,
scoping and credentials — through the admin's own URLs, on real PostgreSQL.

Staff act through their roles (alerts.teams: the role groups, narrowed to each team): a
coordinator enrols and handles credentials, a physician tailors rules, a nurse reads.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import uuid
from datetime import time

from django.urls import reverse

from alerts.models import CareTeamRole
from monitoring.auth import issue_app_token, register_device
from monitoring.models import (
    AuditEvent,
    Device,
    Patient,
    PatientAppToken,
    Rule,
    RuleRevision,
    hash_secret,
)
from monitoring.patient_rules import apply_protocols
from monitoring.protocols import protocol_templates
from tests.conftest import client_with
from tests.factories import (
    MembershipFactory,
)
from tests.monitoring.admin.patients_helpers import (  # noqa: F401
    change_url,
    coordinator,
    coordinator_client,
    enrolment,
    logged_in,
    physician_client,
    rule_url,
    with_roles,
)

# --- Enrolment and preferences ----------------------------------------------------------


def test_enrolment_through_the_admin_creates_the_patient_and_copies_the_protocol_rules(
    coordinator_client, team
):
    response = coordinator_client.post(reverse("admin:monitoring_patient_add"), enrolment(team))

    assert response.status_code == 302
    patient = Patient.objects.get(external_id="MRN-ADMIN-1")
    assert (patient.name, patient.timezone, patient.care_team) == (
        "Ada Admin",
        "Europe/Berlin",
        team,
    )
    assert sorted(patient.protocols.values_list("code", flat=True)) == [
        "heart_failure",
        "hypertension",
    ]
    assert (
        patient.glucose_unit,
        patient.language,
        patient.nudge_channel,
        patient.quiet_hours_start,
        patient.quiet_hours_end,
        patient.daily_nudge_cap,
        patient.phone,
    ) == ("mmol/L", "de", "sms", time(22), time(7), 2, "+4915112345678")
    expected = {
        t.key for code in ("heart_failure", "hypertension") for t in protocol_templates()[code]
    }
    assert set(patient.rules.values_list("key", flat=True)) == expected
    assert patient.rules.count() == len(expected) == 11
    assert (
        sorted(RuleRevision.objects.filter(rule__patient=patient).values_list("version", flat=True))
        == [1] * 11
    )
    weight_gain = patient.rules.get(key="hf_gain_1_day")
    assert weight_gain.parameters == weight_gain.default_parameters
    assert weight_gain.reference == "body_weight.thresholds.hf_gain_1_day"


def test_the_enrolment_form_offers_only_the_users_own_teams(coordinator_client, team, other_team):
    response = coordinator_client.get(reverse("admin:monitoring_patient_add"))

    assert response.status_code == 200
    field = response.context["adminform"].form.fields["care_team"]
    assert list(field.queryset) == [team]


def test_another_team_cannot_be_chosen_and_nothing_is_enrolled(
    coordinator_client, team, other_team
):
    response = coordinator_client.post(
        reverse("admin:monitoring_patient_add"), enrolment(team, care_team=other_team.pk)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "care_team": ["Select a valid choice. That choice is not one of the available choices."]
    }
    assert not Patient.objects.filter(external_id="MRN-ADMIN-1").exists()
    assert not Rule.objects.exists()


def test_an_unknown_time_zone_and_half_quiet_hours_are_refused(coordinator_client, team):
    response = coordinator_client.post(
        reverse("admin:monitoring_patient_add"),
        enrolment(team, timezone="Mars/Olympus_Mons", quiet_hours_end=""),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["timezone"] == [
        "Select a valid choice. Mars/Olympus_Mons is not one of the available choices."
    ]
    assert errors["quiet_hours_end"] == ["Give both ends of the quiet hours, or neither."]
    assert not Patient.objects.exists()


def test_a_taken_external_id_is_refused(coordinator_client, team, patient):
    response = coordinator_client.post(
        reverse("admin:monitoring_patient_add"), enrolment(team, external_id=patient.external_id)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "__all__": ["A patient with this MRN is already enrolled in this care team."]
    }
    assert Patient.objects.count() == 1


def test_an_external_id_held_in_another_team_enrols_as_if_it_were_free(
    coordinator_client, team, other_patient
):
    response = coordinator_client.post(
        reverse("admin:monitoring_patient_add"),
        enrolment(team, external_id=other_patient.external_id),
    )

    assert response.status_code == 302
    enrolled = Patient.objects.exclude(pk=other_patient.pk).get()
    assert (enrolled.care_team, enrolled.external_id) == (team, other_patient.external_id)


def test_preferences_are_changed_through_the_change_form(coordinator_client, team, patient):
    data = enrolment(
        team,
        external_id=patient.external_id,
        name=patient.name,
        timezone="America/Chicago",
        nudge_channel="email",
        email="patient@example.org",
        quiet_hours_start="",
        quiet_hours_end="",
    )
    del data["protocol_codes"]

    response = coordinator_client.post(change_url(patient), data)

    assert response.status_code == 302
    patient.refresh_from_db()
    assert (
        patient.timezone,
        patient.nudge_channel,
        patient.email,
        patient.quiet_hours_start,
        patient.language,
    ) == ("America/Chicago", "email", "patient@example.org", None, "de")


# --- Scoping ------------------------------------------------------------------------------


def test_a_nurse_of_another_team_gets_404_for_the_patient_and_its_pages(outsider, patient):
    client = logged_in(with_roles(outsider))
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.first()

    assert client.get(change_url(patient)).status_code == 404
    assert client.get(rule_url(rule)).status_code == 404
    issue = reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk])
    assert client.post(issue).status_code == 404
    assert not PatientAppToken.objects.exists()


def test_the_patient_list_holds_only_the_users_teams_patients(
    coordinator_client, patient, other_patient
):
    response = coordinator_client.get(reverse("admin:monitoring_patient_changelist"))

    assert list(response.context["cl"].result_list) == [patient]


# --- Credentials --------------------------------------------------------------------------


def test_an_issued_app_token_is_shown_once_and_stored_only_as_its_hash(
    coordinator, coordinator_client, patient
):
    response = coordinator_client.post(
        reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk])
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    assert secret.startswith("vgp_")
    assert f'value="{secret}"' in response.content.decode()
    token = PatientAppToken.objects.get()
    assert (token.patient, token.created_by, token.token_hash) == (
        patient,
        coordinator,
        hash_secret(secret),
    )
    assert secret not in coordinator_client.get(change_url(patient)).content.decode()
    assert client_with(secret).get("/api/v1/me").status_code == 200


def test_a_revoked_app_token_stops_working(coordinator_client, patient):
    token, secret = issue_app_token(patient=patient)

    response = coordinator_client.post(
        reverse("admin:monitoring_patient_revoke_app_token", args=[patient.pk, token.pk])
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client_with(secret).get("/api/v1/me").status_code == 401


def test_a_registered_device_key_is_shown_once_and_stored_only_as_its_hash(
    coordinator_client, patient
):
    url = reverse("admin:monitoring_patient_register_device", args=[patient.pk])

    response = coordinator_client.post(url, {"kind": "scale", "model": "Body+", "serial": "SC-9"})

    assert response.status_code == 200
    key = response.context["secret"]
    assert key.startswith("vgd_")
    device = Device.objects.get()
    assert (device.patient, device.kind, device.model, device.serial, device.key_hash) == (
        patient,
        "scale",
        "Body+",
        "SC-9",
        hash_secret(key),
    )
    assert key not in coordinator_client.get(change_url(patient)).content.decode()


def test_a_second_active_device_with_the_same_serial_is_refused(coordinator_client, patient):
    register_device(patient=patient, kind="scale", serial="SC-9")
    url = reverse("admin:monitoring_patient_register_device", args=[patient.pk])

    response = coordinator_client.post(url, {"kind": "scale", "serial": "SC-9"})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "serial": ["This patient already has an active device with this serial."]
    }
    assert "secret" not in response.context
    assert Device.objects.count() == 1


def test_a_revoked_device_key_stops_working(coordinator_client, patient):
    device, key = register_device(patient=patient, kind="scale", serial="SC-9")

    response = coordinator_client.post(
        reverse("admin:monitoring_patient_revoke_device", args=[patient.pk, device.pk])
    )

    assert response.status_code == 302
    device.refresh_from_db()
    assert device.revoked_at is not None
    reading = {
        "id": str(uuid.uuid4()),
        "type": "weight",
        "value": 80,
        "unit": "kg",
        "measured_at": "2026-03-01T07:30:00+01:00",
    }
    assert client_with(key).post("/api/v1/readings", reading, format="json").status_code == 401


def test_without_the_permission_no_credential_is_issued_or_revoked(nurse, patient):
    client = logged_in(with_roles(nurse))
    token, _ = issue_app_token(patient=patient)

    issue = client.post(reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk]))
    revoke = client.post(
        reverse("admin:monitoring_patient_revoke_app_token", args=[patient.pk, token.pk])
    )
    register = client.post(
        reverse("admin:monitoring_patient_register_device", args=[patient.pk]),
        {"kind": "scale", "serial": "SC-1"},
    )
    page = client.get(change_url(patient)).content.decode()

    assert (issue.status_code, revoke.status_code, register.status_code) == (403, 403, 403)
    assert list(PatientAppToken.objects.values_list("pk", "revoked_at")) == [(token.pk, None)]
    assert not Device.objects.exists()
    assert "Issue an app token" not in page
    assert 'value="Revoke"' not in page


def test_a_coordinator_elsewhere_handles_no_credentials_in_a_team_where_they_nurse(
    nurse, other_team, patient
):
    # A nurse of the patient's team who coordinates another team: the coordinator's group
    # permissions hold in that other team only.
    MembershipFactory(team=other_team, user=nurse, role=CareTeamRole.COORDINATOR)
    client = logged_in(with_roles(nurse))

    issue = client.post(reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk]))
    enrol_form = client.get(reverse("admin:monitoring_patient_add"))
    enrol = client.post(reverse("admin:monitoring_patient_add"), enrolment(patient.care_team))

    assert issue.status_code == 403
    assert not PatientAppToken.objects.exists()
    assert list(enrol_form.context["adminform"].form.fields["care_team"].queryset) == [other_team]
    assert "care_team" in enrol.context["adminform"].form.errors
    assert Patient.objects.count() == 1


def test_credential_and_rule_changes_are_audited(
    coordinator, coordinator_client, physician, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")

    coordinator_client.post(reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk]))
    token = PatientAppToken.objects.get()
    coordinator_client.post(
        reverse("admin:monitoring_patient_revoke_app_token", args=[patient.pk, token.pk])
    )
    physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"op": "lt", "value": 50}], "match": "all"}',
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": "1",
        },
    )

    events = AuditEvent.objects.filter(patient=patient).exclude(action="view").order_by("id")
    assert [(e.actor, e.action, e.model, e.object_id, e.fields) for e in events] == [
        ("coordinator", "create", "monitoring.patientapptoken", str(token.pk), []),
        ("coordinator", "change", "monitoring.patientapptoken", str(token.pk), ["revoked_at"]),
        ("physician", "change", "monitoring.rule", str(rule.pk), ["parameters"]),
    ]


def test_a_token_is_issued_only_by_post(coordinator_client, patient):
    response = coordinator_client.get(
        reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk])
    )

    assert response.status_code == 405
    assert not PatientAppToken.objects.exists()
