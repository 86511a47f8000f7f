"""Constants, builders and fixtures shared by test_patient_charts.py, test_patient_rules.py,
test_patient_summaries.py, test_patients.py (imported by name: a fixture here applies only where
a test module imports it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from alerts.models import CareTeamRole
from alerts.teams import sync_role_groups
from monitoring.models import (
    Reading,
    ReadingSource,
)
from tests.factories import (
    MembershipFactory,
    UserFactory,
)

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
