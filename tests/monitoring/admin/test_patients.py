"""The patient page in the admin: enrolment, preferences, rule tailoring, credentials,
charts and summaries — through the admin's own URLs, on real PostgreSQL.

Staff act through their roles (alerts.teams: the role groups, narrowed to each team): a
coordinator enrols and handles credentials, a physician tailors rules, a nurse reads.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from statistics import fmean, pstdev

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import Alert, CareTeamRole
from alerts.teams import sync_role_groups
from monitoring.auth import issue_app_token, register_device
from monitoring.evaluation import (
    claim_due_scheduled_rules,
    evaluate_dose_adherence,
    evaluate_scheduled_rules,
)
from monitoring.models import (
    AuditEvent,
    Device,
    Patient,
    PatientAppToken,
    Reading,
    ReadingSource,
    Rule,
    RuleRevision,
    hash_secret,
)
from monitoring.patient_rules import apply_protocols
from monitoring.protocols import protocol_templates
from monitoring.summaries import gmi_percent
from tests.conftest import client_with
from tests.factories import (
    AlertFactory,
    MedicationPlanFactory,
    MembershipFactory,
    PatientFactory,
    ReadingFactory,
    SlotFactory,
    UserFactory,
)
from tests.monitoring.rules.conftest import reference

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def with_roles(user):
    """The user in the role groups of the roles their memberships hold."""
    sync_role_groups(users=[user])
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(patient) -> str:
    return reverse("admin:monitoring_patient_change", args=[patient.pk])


def rule_url(rule) -> str:
    return reverse("admin:monitoring_patient_rule", args=[rule.patient_id, rule.pk])


@pytest.fixture
def frozen(time_machine):
    """The clock at NOW (request it before the clients, so their logins are at NOW too)."""
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def coordinator(team):
    user = UserFactory(username="coordinator")
    MembershipFactory(team=team, user=user, role=CareTeamRole.COORDINATOR)
    return with_roles(user)


@pytest.fixture
def coordinator_client(coordinator):
    return logged_in(coordinator)


@pytest.fixture
def physician_client(physician):
    return logged_in(with_roles(physician))


def enrolment(team, **overrides) -> dict:
    return {
        "external_id": "MRN-ADMIN-1",
        "name": "Ada Admin",
        "timezone": "Europe/Berlin",
        "care_team": team.pk,
        "protocol_codes": ["heart_failure", "hypertension"],
        "glucose_unit": "mmol/L",
        "weight_unit": "kg",
        "language": "de",
        "nudge_channel": "sms",
        "quiet_hours_start": "22:00",
        "quiet_hours_end": "07:00",
        "daily_nudge_cap": "2",
        "phone": "+4915112345678",
        "email": "",
        "_save": "Save",
    } | overrides


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


# --- Rules --------------------------------------------------------------------------------


def test_the_rules_show_the_protocol_default_and_its_source_beside_the_patients_value(
    physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")

    page = physician_client.get(change_url(patient)).content.decode()
    rule_page = physician_client.get(rule_url(rule)).content.decode()

    row = re.search(r'<tr data-rule="hypoglycemia_level_1".*?</tr>', page, re.S)[0]
    assert "≥ 54 mg/dL and &lt; 70 mg/dL" in row
    assert "blood_glucose.thresholds.hypoglycemia_level_1" in row
    assert rule.source in row
    assert "Reference: blood_glucose.thresholds.hypoglycemia_level_1" in rule_page
    assert f"Source: {rule.source}" in rule_page


def test_a_rule_page_states_the_problem_and_the_late_data_policy_of_its_alerts(
    physician_client, patient, settings
):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    settings.VIGIL_STALE_READING_AGE = timedelta(hours=24)

    target = physician_client.get(rule_url(patient.rules.get(key="inr_target_range")))
    critical = physician_client.get(rule_url(patient.rules.get(key="inr_critical")))
    ttr = physician_client.get(rule_url(patient.rules.get(key="inr_ttr_rosendaal")))

    assert target.context["policy_notes"] == [
        "Two-sided: a reading below the range feeds the “Low INR” alert, one above it the "
        "“High INR” alert.",
        "A reading measured more than 24 hours before it arrives raises an alert only when it "
        "crosses a critical limit, titled as late with its measured time; otherwise it is "
        "stored and shown but raises nothing.",
    ]
    assert critical.context["policy_notes"][0] == (
        "Feeds the “High INR” problem: a critical alert of that problem keeps its lesser "
        "findings from paging; other problems are never held back."
    )
    assert ttr.context["policy_notes"] == []


def test_tailoring_a_rule_saves_a_new_version_with_its_revision(
    physician, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_1")
    tailored = {
        "conditions": [
            {"component": "value", "op": "ge", "value": 54},
            {"component": "value", "op": "lt", "value": 80},
        ],
        "match": "all",
    }

    response = physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"component": "value", "op": "ge", "value": 54},'
            ' {"component": "value", "op": "lt", "value": 80}], "match": "all"}',
            "severity": "critical",
            "active": "on",
            "title": rule.title,
            "note": "Hypoglycaemia unawareness",
            "version": "1",
        },
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.version, rule.parameters, rule.severity, rule.updated_by) == (
        2,
        tailored,
        "critical",
        physician,
    )
    assert rule.default_parameters["conditions"][1]["value"] == 70
    revisions = list(rule.revisions.order_by("version"))
    assert [(r.version, r.severity, r.changed_by, r.note) for r in revisions] == [
        (1, "warning", None, "diabetes protocol default"),
        (2, "critical", physician, "Hypoglycaemia unawareness"),
    ]
    history = physician_client.get(rule_url(rule)).content.decode()
    assert re.findall(r'<tr data-version="(\d+)">', history) == ["2", "1"]
    page = physician_client.get(change_url(patient)).content.decode()
    row = re.search(r'<tr data-rule="hypoglycemia_level_1".*?</tr>', page, re.S)[0]
    assert "≥ 54 mg/dL and &lt; 80 mg/dL" in row  # the patient's value
    assert "≥ 54 mg/dL and &lt; 70 mg/dL" in row  # beside the default
    assert "tailored" in row


def test_invalid_parameters_are_named_one_by_one_and_nothing_is_saved(physician_client, patient):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = patient.rules.get(key="inr_ttr_rosendaal")

    response = physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"target_low": 3.0, "target_high": 2.0, "max_gap_days": 0,'
            ' "window_days": 183, "below_percent": 65, "colour": "red"}',
            "severity": rule.severity,
            "active": "on",
            "title": rule.title,
            "version": "1",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "parameters": [
            "target_high: Must be above target_low.",
            "max_gap_days: Must be at least 1.",
            "colour: Not a parameter of this rule kind.",
        ]
    }
    assert "max_gap_days: Must be at least 1." in response.content.decode()
    rule.refresh_from_db()
    assert (rule.version, rule.parameters) == (1, rule.default_parameters)
    assert rule.revisions.count() == 1


def test_a_json_syntax_error_is_a_form_error(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")

    response = physician_client.post(
        rule_url(rule),
        {"parameters": "{conditions: <54}", "severity": "critical", "title": "x", "version": "1"},
    )

    assert response.context["form"].errors == {"parameters": ["Enter a valid JSON."]}
    rule.refresh_from_db()
    assert rule.version == 1


def test_a_change_on_top_of_a_colleagues_newer_version_is_refused(physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")
    Rule.objects.filter(pk=rule.pk).update(version=2)

    response = physician_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"op": "lt", "value": 50}], "match": "all"}',
            "severity": "critical",
            "title": rule.title,
            "version": "1",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Someone saved version 2 of this rule since you opened it; review it below and make "
        "your change again."
    ]
    rule.refresh_from_db()
    assert rule.parameters == rule.default_parameters
    assert rule.revisions.count() == 1


def test_a_coordinator_sees_the_rules_but_cannot_tailor_them(coordinator_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = patient.rules.get(key="hypoglycemia_level_2")

    page = coordinator_client.get(rule_url(rule))
    response = coordinator_client.post(
        rule_url(rule),
        {
            "parameters": '{"conditions": [{"op": "lt", "value": 50}], "match": "all"}',
            "severity": "critical",
            "title": rule.title,
            "version": "1",
        },
    )

    assert page.status_code == 200
    assert page.context["form"] is None
    assert response.status_code == 403
    rule.refresh_from_db()
    assert (rule.version, rule.parameters) == (1, rule.default_parameters)


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


# --- Summaries ----------------------------------------------------------------------------


def stored(patient, metric: str, measured_at: datetime, **fields) -> Reading:
    return Reading(
        patient=patient,
        client_id=uuid.uuid4(),
        metric=metric,
        measured_at=measured_at,
        received_at=measured_at,
        source=ReadingSource.APP,
        fingerprint="test",
        **fields,
    )


# One 5-minute CGM cycle of eight readings: 1/8 in each range outside the target range, 4/8
# in range (blood_glucose.cgm_targets.ranges_mg_dL: <54, 54–69, 70–180, 181–250, >250).
CGM_CYCLE = [50, 60, 100, 100, 150, 150, 200, 300]


def test_cgm_summaries_are_exact_on_fourteen_days_of_sensor_data(frozen, physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    # 14 days × 288 readings a day = 4,032: every possible reading of a 5-minute sensor.
    values = [CGM_CYCLE[i % 8] for i in range(4032)]
    Reading.objects.bulk_create(
        stored(patient, "glucose", NOW - timedelta(minutes=5 * i), value=value, unit="mg/dL")
        for i, value in enumerate(values)
    )

    response = physician_client.get(change_url(patient))

    cgm = response.context["patient_page"].summary.cgm
    assert (cgm.sufficient, cgm.readings, cgm.possible_readings) == (True, 4032, 4032)
    assert [(share.key, share.percent) for share in cgm.ranges] == [
        ("very_low", 12.5),
        ("low", 12.5),
        ("in_range", 50.0),
        ("high", 12.5),
        ("very_high", 12.5),
    ]
    assert cgm.mean_mg_dl == 138.75
    assert cgm.gmi_percent == gmi_percent(138.75)
    assert round(cgm.gmi_percent, 1) == 6.6
    assert cgm.cv_percent == 100 * pstdev(values) / fmean(values)
    assert [(check.title, round(check.observed, 1), check.met) for check in cgm.targets] == [
        ("CGM glucose variability above target", 55.3, False),
        ("CGM time above 250 mg/dL above target", 12.5, False),
        ("CGM time below 54 mg/dL above target", 12.5, False),
        ("CGM time below 70 mg/dL above target", 25.0, False),
        ("CGM time in range below target", 50.0, False),
    ]
    html = response.content.decode()
    assert re.search(r'data-range="in_range">.*?50\.0 %', html, re.S)
    assert re.search(r'data-metric="gmi">.*?6\.6 %', html, re.S)


def test_thin_cgm_data_shows_not_enough_data_instead_of_numbers(frozen, physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    # Four fingersticks a day for 14 days: 56 of 4,032 possible readings.
    Reading.objects.bulk_create(
        stored(patient, "glucose", NOW - timedelta(hours=6 * i), value=100, unit="mg/dL")
        for i in range(56)
    )

    response = physician_client.get(change_url(patient))

    cgm = response.context["patient_page"].summary.cgm
    assert (cgm.sufficient, cgm.readings, cgm.ranges, cgm.gmi_percent, cgm.cv_percent) == (
        False,
        56,
        (),
        None,
        None,
    )
    html = response.content.decode()
    # 56 readings 6 hours apart span 13.75 days (and a sensor interval at each end); 1.39 %
    # of the possible readings is shown as 1.3 %, never rounded up to a limit it misses.
    assert "Insufficient data (13 days, 1.3 % active: 56 of 4032 possible readings)." in " ".join(
        html.split()
    )
    assert 'data-metric="gmi"' not in html
    assert 'data-range="in_range"' not in html


def test_inr_time_in_range_is_the_rosendaal_value_over_30_days_and_the_rules_window(
    frozen, physician_client, patient
):
    apply_protocols(patient=patient, codes=["anticoagulation"])  # target 2.0–3.0, 183 days
    # Day -60: 2.5 → day -28: 1.5 (32 days: 17 in range, 15 below, of which the last two,
    # days -30 and -29, are inside the 30 days), → day -18: 2.5 (10 days: 5 below, 5 in),
    # → day -8: 3.5 (10 days: 6 in, 4 above).
    Reading.objects.bulk_create(
        stored(patient, "inr", NOW - timedelta(days=days), value=value)
        for days, value in [(60, 2.5), (28, 1.5), (18, 2.5), (8, 3.5)]
    )

    response = physician_client.get(change_url(patient))

    summary = response.context["patient_page"].summary
    assert (summary.inr_target.low, summary.inr_target.high) == (2.0, 3.0)
    assert summary.inr_target.rule_key == "inr_ttr_rosendaal"
    by_window = {period.window_days: period for period in summary.inr}
    assert sorted(by_window) == [30, 183]
    last_30 = by_window[30].ttr
    # The interval from day -60 contributes its two days inside the window (the regression:
    # it was dropped, 11 of 20 days, 55 %).
    assert (last_30.days_in_range, last_30.days_below, last_30.days_above) == (11, 7, 4)
    assert (last_30.percent, last_30.results) == (50.0, 4)
    rule_window = by_window[183].ttr
    assert (rule_window.days_in_range, rule_window.days_below, rule_window.days_above) == (
        28,
        20,
        4,
    )
    assert rule_window.percent == 100 * 28 / 52
    html = response.content.decode()
    assert re.search(r'data-window="30">.*?50\.0 % in range', html, re.S)
    assert re.search(r'data-window="183">.*?53\.8 % in range', html, re.S)


def test_the_inr_target_comes_from_the_patients_tailored_range_rule(
    frozen, physician_client, patient
):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    Rule.objects.filter(patient=patient, kind="inr_ttr").delete()
    Rule.objects.filter(patient=patient, key="inr_target_range").update(
        parameters={
            "conditions": [{"op": "lt", "value": 2.5}, {"op": "gt", "value": 3.5}],
            "match": "any",
        }
    )
    Reading.objects.bulk_create(
        stored(patient, "inr", NOW - timedelta(days=days), value=value)
        for days, value in [(20, 2.0), (10, 3.0)]
    )

    summary = physician_client.get(change_url(patient)).context["patient_page"].summary

    assert (summary.inr_target.low, summary.inr_target.high, summary.inr_target.rule_key) == (
        2.5,
        3.5,
        "inr_target_range",
    )
    # 2.0 → 3.0 over 10 days: 2.0, 2.1, …, 2.9; 2.5 and above are in range.
    (period,) = summary.inr
    assert (period.ttr.days_in_range, period.ttr.days_below) == (5, 5)


def test_dose_adherence_over_7_14_and_30_days(frozen, physician_client, patient):
    skipped_days = {3, 8, 10, 16, 20, 24, 28}
    doses = [
        stored(
            patient,
            "dose",
            NOW - timedelta(days=day, hours=1),
            medication="warfarin-5mg",
            dose_status="skipped" if day in skipped_days else "taken",
            scheduled_for=NOW - timedelta(days=day, hours=1),
        )
        for day in range(30)
    ]
    # Logged 29 days ago for a dose due 31 days ago: outside every window, as the rule counts.
    doses.append(
        stored(
            patient,
            "dose",
            NOW - timedelta(days=29),
            medication="warfarin-5mg",
            dose_status="taken",
            scheduled_for=NOW - timedelta(days=31),
        )
    )
    Reading.objects.bulk_create(doses)

    response = physician_client.get(change_url(patient))

    adherence = response.context["patient_page"].summary.adherence
    assert [(a.window_days, a.rate.taken, a.rate.scheduled) for a in adherence] == [
        (7, 6, 7),
        (14, 11, 14),
        (30, 23, 30),
    ]
    assert round(adherence[0].percent, 1) == 85.7
    assert re.search(r'data-window="14">.*?78\.6 %', response.content.decode(), re.S)


# --- The page and the rules agree -------------------------------------------------------------
# The page computes each summary with the function its rule evaluates with, on the data the
# rule's evaluation loads: the same data give the same figure on both.


def run_scheduled_rules(patient) -> None:
    """The sweep at NOW: claim the patient's due scheduled rules and evaluate them."""
    claimed = claim_due_scheduled_rules(now=NOW)
    evaluate_scheduled_rules(patient_id=patient.pk, rule_ids=claimed[patient.pk], now=NOW)


def alert_values(patient) -> dict[str, dict]:
    return dict(Alert.objects.filter(patient=patient).values_list("dedupe_key", "values"))


def test_dose_adherence_counts_the_plans_scheduled_doses_as_the_rule_does(
    frozen, physician_client, patient
):
    # given: warfarin daily at 08:00 New York; of the last three days' doses the patient
    # logged one, taken; the two others' windows closed with nothing logged
    apply_protocols(patient=patient, codes=["anticoagulation"])  # taking rate, 7 days
    plan = MedicationPlanFactory(patient=patient)
    due = [datetime(2026, 2, day, 13, 0, tzinfo=UTC) for day in (26, 27, 28)]  # 08:00 EST
    SlotFactory(plan=plan, due_at=due[0], status="missed")
    taken = ReadingFactory(
        patient=patient,
        metric="dose",
        value=None,
        unit="",
        medication=plan.medication,
        dose_status="taken",
        scheduled_for=due[1],
        measured_at=due[1] + timedelta(minutes=5),
    )
    SlotFactory(plan=plan, due_at=due[1], status="done", fulfilled_by=taken)
    SlotFactory(plan=plan, due_at=due[2], status="missed")

    # when
    evaluate_dose_adherence(patient_id=patient.pk, now=NOW)
    response = physician_client.get(change_url(patient))

    # then: 1 of 3 scheduled doses, on the page and in the rule's alert (the regression: the
    # page said 100 %, "1 of 1 logged doses")
    assert alert_values(patient) == {"dose_adherence": {"taking_percent": 33.3, "doses": 3}}
    adherence = response.context["patient_page"].summary.adherence
    assert [(a.window_days, a.rate.taken, a.rate.scheduled, a.logged) for a in adherence] == [
        (7, 1, 3, 0),
        (14, 1, 3, 0),
        (30, 1, 3, 0),
    ]
    assert round(adherence[0].percent, 1) == 33.3
    html = " ".join(response.content.decode().split())
    assert re.search(
        r'data-window="7">.*?33\.3 %.*?\(1 of 3 doses taken: 3 scheduled by a plan\)', html
    )


def sensor_readings(patient, count: int) -> list[float]:
    """`count` readings of a 5-minute sensor back from now, in CGM_CYCLE."""
    values = [CGM_CYCLE[i % 8] for i in range(count)]
    Reading.objects.bulk_create(
        stored(patient, "glucose", NOW - timedelta(minutes=5 * i), value=value, unit="mg/dL")
        for i, value in enumerate(values)
    )
    return values


def test_cgm_summaries_on_14_days_are_the_figures_the_rules_alert_on(
    frozen, physician_client, patient
):
    # given: 14 days of a full 5-minute sensor: 4,032 readings, the first an interval into
    # the 14 days (blood_glucose.cgm_targets.data_sufficiency: ">=14 days of data")
    apply_protocols(patient=patient, codes=["diabetes"])
    values = sensor_readings(patient, 14 * 288)

    # when
    run_scheduled_rules(patient)
    cgm = physician_client.get(change_url(patient)).context["patient_page"].summary.cgm

    # then
    in_range = dict((share.key, share.percent) for share in cgm.ranges)["in_range"]
    assert (cgm.sufficient, cgm.readings, in_range, round(cgm.cv_percent, 1)) == (
        True,
        4032,
        50.0,
        55.3,
    )
    assert cgm.cv_percent == 100 * pstdev(values) / fmean(values)
    alerts = alert_values(patient)
    assert alerts["cgm_in_range"] == {"percent": in_range, "readings": 4032}
    assert alerts["cgm_variability"] == {"percent": round(cgm.cv_percent, 1), "readings": 4032}
    checks = {check.title: (round(check.observed, 1), check.met) for check in cgm.targets}
    assert checks["CGM time in range below target"] == (50.0, False)
    assert checks["CGM glucose variability above target"] == (55.3, False)


def test_cgm_summaries_on_13_days_are_insufficient_on_the_page_and_for_the_rules(
    frozen, physician_client, patient
):
    # given: 13 days of a full sensor, from 13 days ago to now: 3,745 readings, 92.9 % of
    # the 14 days' possible ones (the regression: the page and the rules reported them)
    apply_protocols(patient=patient, codes=["diabetes"])
    sensor_readings(patient, 13 * 288 + 1)

    # when
    run_scheduled_rules(patient)
    response = physician_client.get(change_url(patient))

    # then
    cgm = response.context["patient_page"].summary.cgm
    assert (cgm.sufficient, cgm.readings, cgm.whole_days, cgm.percent_active) == (
        False,
        3745,
        13,
        92.8,
    )
    assert (cgm.ranges, cgm.cv_percent, cgm.gmi_percent) == ((), None, None)
    assert {(check.observed, check.met) for check in cgm.targets} == {(None, None)}
    assert alert_values(patient) == {}
    html = " ".join(response.content.decode().split())
    assert "Insufficient data (13 days, 92.8 % active: 3745 of 4032 possible readings)." in html
    assert 'data-range="in_range"' not in html


def test_inr_time_in_range_interpolates_from_the_inr_before_the_window_as_the_rule_does(
    frozen, physician_client, patient
):
    # given: the rule's window is 183 days (NICE: 6 months); an INR of 1.0 seven days before
    # it, 1.0 on day -170, 2.5 on days -150 and -140 (inr.target_ranges.0: 2.0–3.0)
    apply_protocols(patient=patient, codes=["anticoagulation"])
    window_days = Rule.objects.get(patient=patient, key="inr_ttr_rosendaal").parameters[
        "window_days"
    ]
    target = reference("inr.target_ranges.0")
    below, inside = target["low"] - 1, (target["low"] + target["high"]) / 2
    Reading.objects.bulk_create(
        stored(patient, "inr", NOW - timedelta(days=days), value=value)
        for days, value in [(window_days + 7, below), (170, below), (150, inside), (140, inside)]
    )

    # when
    run_scheduled_rules(patient)
    summary = physician_client.get(change_url(patient)).context["patient_page"].summary

    # then: days -183..-171 of the interval from before the window, 13 below; 1.0 → 2.5 over
    # 20 days, 14 below and 6 in range; 10 in range: 16 of 43 days (not 16 of 30, 53.3 %)
    by_window = {period.window_days: period for period in summary.inr}
    ttr = by_window[window_days].ttr
    assert (ttr.days_in_range, ttr.days_below, ttr.days_total, ttr.results) == (16, 27, 43, 4)
    assert alert_values(patient) == {"inr_ttr": {"ttr_percent": round(ttr.percent, 1), "days": 43}}
    assert round(ttr.percent, 1) == 37.2
    # the page's 30 days hold no INR: only the one before them, no figure
    assert (by_window[30].too_few_results, by_window[30].ttr.percent) == (True, None)


def test_a_period_with_one_inr_says_so_instead_of_a_figure(frozen, physician_client, patient):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    Reading.objects.bulk_create([stored(patient, "inr", NOW - timedelta(days=3), value=2.5)])

    response = physician_client.get(change_url(patient))

    html = " ".join(response.content.decode().split())
    assert re.search(r'data-window="30">.*?Insufficient data: fewer than 2 INR results \(1\)', html)
    assert "% in range" not in html


# --- Charts -------------------------------------------------------------------------------


def test_there_is_a_chart_per_metric_with_readings_in_the_last_30_days(
    frozen, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes", "hypertension"])
    low = ReadingFactory(
        patient=patient,
        metric="glucose",
        value=62,
        unit="mg/dL",
        measured_at=NOW - timedelta(days=2),
    )
    ReadingFactory(
        patient=patient,
        metric="glucose",
        value=110,
        unit="mg/dL",
        measured_at=NOW - timedelta(days=1),
    )
    ReadingFactory(
        patient=patient, metric="weight", value=81.5, measured_at=NOW - timedelta(days=3)
    )
    Reading.objects.bulk_create(
        [
            stored(patient, "blood_pressure", NOW - timedelta(days=4), systolic=128, diastolic=82),
            stored(patient, "heart_rate", NOW - timedelta(days=31), value=64),
            stored(
                patient,
                "dose",
                NOW - timedelta(days=1),
                medication="metformin",
                dose_status="taken",
            ),
        ]
    )

    AlertFactory(
        patient=patient,
        rule=patient.rules.get(key="hypoglycemia_level_1"),
        reading_ids=[low.pk],
    )

    response = physician_client.get(change_url(patient))

    charts = response.context["patient_page"].charts
    assert [chart.metric for chart, _svg in charts] == ["glucose", "blood_pressure", "weight"]
    glucose, blood_pressure, weight = (chart for chart, _svg in charts)
    assert glucose.series == (("", [(low.measured_at, 62.0), (NOW - timedelta(days=1), 110.0)]),)
    assert glucose.marks == (low.measured_at,)  # the alert's reading, not every one in a band
    assert {band.label for band in glucose.bands} >= {
        "Level 1 hypoglycaemia (≥ 54 mg/dL and < 70 mg/dL)",
        "Level 2 hypoglycaemia (< 54 mg/dL)",
    }
    assert [name for name, _ in blood_pressure.series] == ["Systolic", "Diastolic"]
    assert blood_pressure.marks == ()
    assert (weight.readings, weight.bands) == (1, ())
    html = response.content.decode()
    figures = re.findall(r'<figure data-metric="(\w+)">\s*<svg', html)
    assert figures == ["glucose", "blood_pressure", "weight"]


def test_the_page_makes_as_many_queries_for_much_data_as_for_little(frozen, physician_client, team):
    def patient_with(n: int) -> Patient:
        patient = PatientFactory(care_team=team)
        apply_protocols(patient=patient, codes=["diabetes", "anticoagulation"])
        for i in range(n):
            issue_app_token(patient=patient)
            register_device(patient=patient, kind="scale", serial=f"SC-{i}")
        Reading.objects.bulk_create(
            stored(patient, metric, NOW - timedelta(hours=i), value=2.5)
            for i in range(20 * n)
            for metric in ("glucose", "inr", "weight")
        )
        return patient

    def queries(patient) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert physician_client.get(change_url(patient)).status_code == 200
        return len(captured.captured_queries)

    assert queries(patient_with(1)) == queries(patient_with(5))


def test_devices_are_not_added_in_the_device_admin_where_no_key_would_be_made(
    coordinator_client, patient
):
    response = coordinator_client.get(reverse("admin:monitoring_device_add"))

    assert response.status_code == 403
    assert not Device.objects.exists()
