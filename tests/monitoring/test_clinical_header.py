"""The clinical header of the alert and patient pages (monitoring/clinical_header.py): exact
fields from the patient's rows, and a fixed number of queries whatever the patient holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from monitoring.clinical_header import (
    ClinicalHeader,
    Medication,
    TeamMember,
    clinical_header,
    describe_schedule,
    language_name,
    tel_href,
)
from monitoring.models import Protocol
from tests.factories import (
    MedicationPlanFactory,
    MembershipFactory,
    PatientFactory,
    UserFactory,
)
from tests.program.factories import EpisodeFactory

# Saturday 6 December 2026, 13:05 in Berlin (CET).
NOW = datetime(2026, 12, 6, 12, 5, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def _user(username, first="", last="", **kw):
    return UserFactory(username=username, first_name=first, last_name=last, **kw)


@pytest.fixture
def clinic_patient(team):
    patient = PatientFactory(
        care_team=team,
        name="Dmitri Bauer",
        external_id="MRN-4711",
        timezone="Europe/Berlin",
        date_of_birth=date(1959, 12, 7),  # 67 tomorrow
        phone="+49 151 1234-5678",
        email="d.bauer@example.test",
        language="de",
    )
    patient.protocols.set(Protocol.objects.filter(code__in=["hypertension", "heart_failure"]))
    MembershipFactory(team=team, user=_user("nina", "Nina", "Nurse"), role="nurse")
    paul = MembershipFactory(
        team=team, user=_user("paul", "Paul", "Doc"), role="physician", escalation_level=2
    ).user
    MembershipFactory(team=team, user=_user("cora"), role="coordinator")
    MembershipFactory(team=team, user=_user("gone", "Gone", "Away", is_active=False))
    MedicationPlanFactory(patient=patient, medication="warfarin-5mg", name="Warfarin 5 mg")
    MedicationPlanFactory(
        patient=patient,
        medication="ramipril-5mg",
        name="Ramipril 5 mg",
        dose_times=["20:00", "08:00"],
        critical=False,
    )
    MedicationPlanFactory(
        patient=patient,
        medication="furosemide-40mg",
        name="Furosemide 40 mg",
        days_of_week=[4, 0, 2],
        critical=False,
    )
    MedicationPlanFactory(
        patient=patient, medication="stopped", name="Stopped drug 1 mg", active=False
    )
    EpisodeFactory(
        patient=patient,
        start=date(2026, 11, 20),
        conditions=["I10", "I50.9"],
        billing_practitioner=paul,
    )
    return patient


def test_the_header_names_the_patient_with_age_contact_language_conditions_plans_and_team(
    clinic_patient,
):
    header = clinical_header(patient=clinic_patient, now=NOW)

    assert header == ClinicalHeader(
        patient_id=clinic_patient.pk,
        name="Dmitri Bauer",
        age="66 years",
        born="7 Dec 1959",
        mrn="MRN-4711",
        phone="+49 151 1234-5678",
        phone_href="tel:+4915112345678",
        email="d.bauer@example.test",
        language="German",
        zone="Europe/Berlin",
        local_time="13:05 CET",
        conditions=["Heart failure", "Hypertension"],
        diagnosis_codes=["I10", "I50.9"],
        medications=[
            Medication(name="Furosemide 40 mg", schedule="08:00 Mon, Wed, Fri", critical=False),
            Medication(name="Ramipril 5 mg", schedule="08:00 and 20:00 daily", critical=False),
            Medication(name="Warfarin 5 mg", schedule="08:00 daily", critical=True),
        ],
        care_team="Heart failure clinic",
        # Physicians first; the deactivated user is no longer on the team.
        team=[
            TeamMember(name="Paul Doc", role="Physician"),
            TeamMember(name="Nina Nurse", role="Nurse"),
            TeamMember(name="cora", role="Coordinator"),
        ],
        assignee=None,
    )


def test_the_alert_pages_header_names_the_assignee_or_nobody(clinic_patient):
    nina = clinic_patient.care_team.memberships.get(user__username="nina").user

    assigned = clinical_header(patient=clinic_patient, now=NOW, show_assignee=True, assignee=nina)
    unassigned = clinical_header(patient=clinic_patient, now=NOW, show_assignee=True)

    assert (assigned.assignee, unassigned.assignee) == ("Nina Nurse", "Nobody")


def test_a_patient_without_birth_date_phone_plans_or_episode_gets_what_is_known(team):
    patient = PatientFactory(care_team=team, name="Ann Other", timezone="America/New_York")

    header = clinical_header(patient=patient, now=NOW)

    assert (header.age, header.born, header.phone, header.phone_href, header.email) == (
        "age unknown",
        "",
        "",
        "",
        "",
    )
    assert (header.language, header.local_time) == ("English", "07:05 EST")
    assert (header.conditions, header.diagnosis_codes, header.medications, header.team) == (
        [],
        [],
        [],
        [],
    )
    assert header.care_team == "Heart failure clinic"


def test_an_ended_episodes_codes_are_not_shown(clinic_patient):
    clinic_patient.rpm_episodes.update(end=date(2026, 12, 1))

    assert clinical_header(patient=clinic_patient, now=NOW).diagnosis_codes == []


def test_the_age_counts_completed_years_in_the_patients_own_day(team):
    # Born 7 December 1959: 67 from 7 December 2026, the patient's own date.
    patient = PatientFactory(
        care_team=team, timezone="Pacific/Auckland", date_of_birth=date(1959, 12, 7)
    )
    # 12:05 UTC on 6 December is already 7 December in Auckland (UTC+13).
    assert clinical_header(patient=patient, now=NOW).age == "67 years"
    assert clinical_header(patient=patient, now=NOW - timedelta(hours=12)).age == "66 years"


def test_age_on_a_29_february_birthday():
    patient = PatientFactory.build(date_of_birth=date(1960, 2, 29))

    assert patient.age_on(date(2025, 2, 28)) == 64
    assert patient.age_on(date(2025, 3, 1)) == 65
    assert patient.age_on(date(2024, 2, 29)) == 64
    assert PatientFactory.build(date_of_birth=None).age_on(date(2025, 3, 1)) is None


@pytest.mark.parametrize(
    ("phone", "href"),
    [
        ("+49 151 1234-5678", "tel:+4915112345678"),
        ("(212) 555-0142", "tel:2125550142"),
        ("", ""),
        ("n/a", ""),
    ],
)
def test_the_phone_becomes_a_tel_uri_of_its_digits(phone, href):
    assert tel_href(phone) == href


@pytest.mark.parametrize(
    ("code", "name"),
    [("de", "German"), ("en", "English"), ("pt-br", "Brazilian Portuguese"), ("DE-at", "German"),
     ("zz", "zz"), ("", "not given")],
)  # fmt: skip
def test_the_language_is_named(code, name):
    assert language_name(code) == name


def test_schedules_are_described_in_words():
    assert describe_schedule(["08:00"], []) == "08:00 daily"
    assert describe_schedule(["20:00", "08:00", "14:00"], []) == "08:00, 14:00 and 20:00 daily"
    assert describe_schedule(["08:00"], [6, 5]) == "08:00 Sat, Sun"
    assert describe_schedule(["08:00"], list(range(7))) == "08:00 daily"


def test_the_header_takes_the_same_queries_however_much_the_patient_holds(
    clinic_patient, team, django_assert_num_queries
):
    small = PatientFactory(care_team=team, timezone="Europe/Berlin")
    MedicationPlanFactory(patient=small)
    for patient in (small, clinic_patient):
        patient.care_team  # noqa: B018 — loaded as the pages load it
    # protocols, medication plans, the running episode, the team's members
    with django_assert_num_queries(4):
        clinical_header(patient=small, now=NOW)
    with django_assert_num_queries(4):
        clinical_header(patient=clinic_patient, now=NOW)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_patient_page_opens_with_the_header(clinic_patient, team):
    nina = team.memberships.get(user__username="nina").user
    url = reverse("admin:monitoring_patient_change", args=[clinic_patient.pk])

    html = _client(nina).get(url).content.decode()

    assert "<h2>Dmitri Bauer</h2>" in html  # the page itself: no link
    assert '<a class="clinical-header-phone" href="tel:+4915112345678">' in html
    assert '<span class="clinical-header-language">Speaks German</span>' in html
    assert "clinical-header-assignee" not in html  # an alert's, not a patient's
    assert html.index('id="clinical-header"') < html.index('id="patient_form"')


def test_a_coordinator_sets_the_birth_date_on_the_patient_page(clinic_patient, team):
    cora = team.memberships.get(user__username="cora").user
    url = reverse("admin:monitoring_patient_change", args=[clinic_patient.pk])
    client = _client(cora)
    assert 'name="date_of_birth" value="1959-12-07"' in client.get(url).content.decode()
    form = {
        "external_id": "MRN-4711",
        "name": "Dmitri Bauer",
        "date_of_birth": "1959-12-17",
        "timezone": "Europe/Berlin",
        "care_team": team.pk,
        "glucose_unit": "mg/dL",
        "weight_unit": "kg",
        "language": "de",
        "nudge_channel": "in_app",
        "daily_nudge_cap": 3,
        "phone": "+49 151 1234-5678",
        "email": "d.bauer@example.test",
    }

    response = client.post(url, form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    clinic_patient.refresh_from_db()
    assert clinic_patient.date_of_birth == date(1959, 12, 17)
    assert clinical_header(patient=clinic_patient, now=NOW).age == "66 years"
