"""The printable summary for the referring physician (monitoring/admin/patient_print.py):
what it shows, to whom, and that each print is audited as a view of the patient."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse

from alerts.models import AlertStatus
from monitoring.admin.patient_print import age_on
from monitoring.enrolment import enrol_patient
from monitoring.models import AuditEvent
from tests.factories import (
    AlertFactory,
    MedicationPlanFactory,
    MembershipFactory,
    ReadingFactory,
    UserFactory,
)
from tests.monitoring.admin.patients_helpers import (  # noqa: F401
    NOW,
    change_url,
    frozen,
    logged_in,
    with_roles,
)

pytestmark = pytest.mark.django_db


def print_url(patient) -> str:
    return reverse("admin:monitoring_patient_print_summary", args=[patient.pk])


@pytest.fixture
def heart_patient(team, frozen):
    """Heart failure and hypertension (weight, blood pressure, heart rate …), a warfarin plan,
    a month of weights and pressures, one reading from before the month."""
    patient = enrol_patient(
        external_id="MRN-PRINT-1",
        name="Harriet Ford",
        timezone="Europe/Berlin",
        care_team=team,
        protocols=["heart_failure", "hypertension"],
    )
    for days, kilograms in [(40, 90.0), (20, 82.0), (10, 83.5), (1, 84.1)]:
        ReadingFactory(patient=patient, value=kilograms, measured_at=NOW - timedelta(days=days))
    for days, systolic, diastolic in [(12, 150, 95), (2, 130, 84)]:
        ReadingFactory(
            patient=patient,
            metric="blood_pressure",
            value=None,
            systolic=systolic,
            diastolic=diastolic,
            unit="mm[Hg]",
            measured_at=NOW - timedelta(days=days),
        )
    MedicationPlanFactory(patient=patient, name="Warfarin 5 mg", days_of_week=[0, 3])
    MedicationPlanFactory(patient=patient, medication="old", name="Old drug", active=False)
    return patient


def test_the_summary_shows_the_patient_plans_figures_alerts_and_team(
    team, nurse, physician, heart_patient
):
    # given: an open and an acknowledged alert, a resolved one; a reachable team
    MembershipFactory(team=team, user=UserFactory(username="gone", is_active=False))
    physician.first_name, physician.last_name, physician.email = "Paul", "Park", "pp@example.org"
    physician.save()
    physician.care_team_memberships.update(phone="+4930123456")
    rule = heart_patient.rules.get(key="bp_crisis")
    AlertFactory(patient=heart_patient, rule=rule, first_triggered_at=NOW - timedelta(hours=2))
    weight_rule = heart_patient.rules.filter(metric="weight").first()
    AlertFactory(
        patient=heart_patient,
        rule=weight_rule,
        status=AlertStatus.ACKNOWLEDGED,
        first_triggered_at=NOW - timedelta(hours=5),
    )
    AlertFactory(
        patient=heart_patient,
        rule=weight_rule,
        dedupe_key="resolved",
        title="Resolved long ago",
        status=AlertStatus.RESOLVED,
    )
    client = logged_in(with_roles(nurse))

    # when
    response = client.get(print_url(heart_patient))

    # then
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary.age, summary.protocols) == (None, ["Heart failure", "Hypertension"])
    assert [(p.name, p.times, p.days, p.critical) for p in summary.plans] == [
        ("Warfarin 5 mg", "08:00", "Mon, Thu", True)
    ]
    figures = {row.metric: row for row in summary.figures}
    weight, pressure = figures["weight"], figures["blood_pressure"]
    # 30 days: the weighing 40 days ago is not in them
    assert (weight.readings, weight.latest, weight.latest_on, weight.range, weight.mean) == (
        3,
        "84.1 kg",
        "28 Feb 2026",
        "82–84.1 kg",
        "83.2 kg",
    )
    # blood pressure: each component's own range and mean
    assert (pressure.readings, pressure.latest, pressure.range, pressure.mean) == (
        2,
        "130/84 mmHg",
        "130–150/84–95 mmHg",
        "140/90 mmHg",
    )
    # every metric the patient's rules watch has a row, with or without readings
    monitored = sorted({r.metric for r in heart_patient.rules.filter(active=True)} - {"dose"})
    assert sorted(figures) == monitored
    assert all(
        row.readings == 0 for m, row in figures.items() if m not in {"weight", "blood_pressure"}
    )
    # on paper, times on the patient's clock only: the reader is not the one who printed
    assert [(a.title, a.status, since) for a, since in summary.open_alerts] == [
        (rule.title, "open", "1 Mar 2026, 11:00 CET"),
        (weight_rule.title, "acknowledged", "1 Mar 2026, 08:00 CET"),
    ]
    assert [(m.user.username, m.role) for m in summary.contacts] == [
        ("physician", "physician"),
        ("nurse", "nurse"),
    ]
    page = response.content.decode()
    assert "Harriet Ford" in page and "MRN-PRINT-1" in page
    assert '<a href="tel:+4930123456">+4930123456</a>' in page
    assert "Resolved long ago" not in page and "Old drug" not in page
    assert "Printed 1 Mar 2026, 13:00 CET by nurse" in page


def test_each_print_is_audited_as_a_view_of_the_patient(nurse, heart_patient):
    client = logged_in(with_roles(nurse))

    client.get(print_url(heart_patient))

    (event,) = AuditEvent.objects.filter(patient=heart_patient)
    assert (event.actor, event.action, event.model, event.object_id, event.path) == (
        "nurse",
        "view",
        "monitoring.patient",
        str(heart_patient.pk),
        print_url(heart_patient),
    )


def test_another_teams_patient_is_a_404_and_nothing_is_audited(outsider, heart_patient):
    client = logged_in(with_roles(outsider))

    response = client.get(print_url(heart_patient))

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(patient=heart_patient).exists()


def test_the_patient_page_links_to_the_printable_summary(nurse, heart_patient):
    page = logged_in(with_roles(nurse)).get(change_url(heart_patient)).content.decode()

    assert f'<a href="{print_url(heart_patient)}">Printable summary' in page


def test_every_admin_page_carries_the_print_stylesheet(nurse, heart_patient):
    page = logged_in(with_roles(nurse)).get(change_url(heart_patient)).content.decode()

    assert '<style media="print">' in page
    assert "#nav-sidebar" in page and "#credentials" in page


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(1950, 3, 2), date(2026, 3, 1), 75),
        (date(1950, 3, 1), date(2026, 3, 1), 76),
        (date(2000, 2, 29), date(2026, 2, 28), 25),
        (None, date(2026, 3, 1), None),
    ],
)
def test_age_is_in_whole_years_and_none_without_a_date_of_birth(born, today, age):
    assert age_on(born, today) == age
