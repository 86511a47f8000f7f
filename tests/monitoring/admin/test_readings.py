"""The readings list (monitoring/admin/records.py): a bounded window, newest first, never a
count of everything visible; where each reading came from, and filters on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.triage import describe_provenance
from monitoring.models import Entry, ReadingSource
from tests.factories import AlertFactory, ReadingFactory
from tests.monitoring.admin.patients_helpers import logged_in

LIST = reverse("admin:monitoring_reading_changelist")


def reading(patient, *, days_ago: float = 0, **fields):
    return ReadingFactory(
        patient=patient,
        metric="glucose",
        value=fields.pop("value", 100),
        unit="mg/dL",
        measured_at=timezone.now() - timedelta(days=days_ago),
        **fields,
    )


def listed_ids(response) -> list[int]:
    return [obj.pk for obj in response.context["cl"].result_list]


@pytest.mark.django_db
def test_the_list_opens_on_the_last_seven_days_newest_first(nurse, patient):
    old = reading(patient, days_ago=8)
    week = reading(patient, days_ago=6)
    today = reading(patient, days_ago=0.1)

    response = logged_in(nurse).get(LIST)

    assert response.status_code == 200
    assert listed_ids(response) == [today.pk, week.pk]
    assert old.pk not in listed_ids(response)


@pytest.mark.django_db
def test_a_longer_period_and_a_day_to_end_it_reach_older_readings(nurse, patient):
    old = reading(patient, days_ago=20)
    older = reading(patient, days_ago=45)
    client = logged_in(nurse)

    month = client.get(f"{LIST}?period=30d")
    before = (timezone.now() - timedelta(days=40)).date()
    earlier_month = client.get(f"{LIST}?period=30d&before={before:%Y-%m-%d}")

    assert old.pk in listed_ids(month) and older.pk not in listed_ids(month)
    assert listed_ids(earlier_month) == [older.pk]


@pytest.mark.django_db
def test_a_bad_before_day_falls_back_to_now(nurse, patient):
    today = reading(patient, days_ago=0.1)

    response = logged_in(nurse).get(f"{LIST}?before=2026-02-30")

    assert response.status_code == 200
    assert listed_ids(response) == [today.pk]


@pytest.mark.django_db
def test_one_patients_readings_by_measured_time(nurse, patient, team):
    from tests.factories import PatientFactory

    other = PatientFactory(care_team=team)
    later_measured = reading(patient, days_ago=1)
    earlier_measured = reading(patient, days_ago=2)
    reading(other, days_ago=1)
    # stored after, measured before: the list of one patient is in measured order
    backfilled = reading(patient, days_ago=3)

    response = logged_in(nurse).get(f"{LIST}?patient={patient.pk}")

    assert listed_ids(response) == [later_measured.pk, earlier_measured.pk, backfilled.pk]


@pytest.mark.django_db
def test_a_patient_id_that_is_not_a_number_lists_nothing(nurse, patient):
    reading(patient)

    response = logged_in(nurse).get(f"{LIST}?patient=²")

    assert response.status_code == 200
    assert listed_ids(response) == []


@pytest.mark.django_db
def test_another_teams_patient_lists_nothing(outsider, patient):
    reading(patient)

    response = logged_in(outsider).get(f"{LIST}?patient={patient.pk}")

    assert response.status_code == 200
    assert listed_ids(response) == []


@pytest.mark.django_db
def test_the_list_filters_on_entry_and_source(nurse, patient):
    typed = reading(patient, source=ReadingSource.APP, entry=Entry.MANUAL)
    uploaded = reading(patient, source=ReadingSource.NIGHTSCOUT, entry=Entry.DEVICE)
    client = logged_in(nurse)

    manual = client.get(f"{LIST}?entry__exact=manual")
    nightscout = client.get(f"{LIST}?source__exact=nightscout")

    assert listed_ids(manual) == [typed.pk]
    assert listed_ids(nightscout) == [uploaded.pk]
    html = manual.content.decode()
    assert "Typed by a person" in html and "Nightscout uploader" in html  # the filters' labels


@pytest.mark.django_db
def test_each_row_says_where_the_reading_came_from(nurse, patient):
    reading(patient, source=ReadingSource.NIGHTSCOUT, entry=Entry.DEVICE,
            device_serial="xDrip-DexcomG6", trend="FortyFiveUp")  # fmt: skip

    html = logged_in(nurse).get(LIST).content.decode()

    assert (
        '<td class="field-provenance">'
        "Nightscout uploader · xDrip-DexcomG6 · Measured by a device · ↗ FortyFiveUp</td>"
    ) in html


def test_provenance_reads_as_the_models_labels():
    assert describe_provenance(source="device", entry="device", device_serial="BP-1") == (
        "Device key · BP-1 · Measured by a device"
    )
    assert describe_provenance(source="fhir", entry="manual") == "FHIR client · Typed by a person"
    assert describe_provenance(source="app", entry="manual", trend="NOT COMPUTABLE") == (
        "Patient app · Typed by a person · NOT COMPUTABLE"
    )


@pytest.mark.django_db
def test_pages_offer_next_and_previous_and_count_no_further_than_the_next_page(
    nurse, patient, settings
):
    for minutes in range(105):
        ReadingFactory(patient=patient, metric="glucose", value=100, unit="mg/dL",
                       measured_at=timezone.now() - timedelta(minutes=minutes))  # fmt: skip
    client = logged_in(nurse)

    with CaptureQueriesContext(connection) as queries:
        first = client.get(f"{LIST}?patient={patient.pk}")
    # read now: the next request clears the connection's query log
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(")]
    second = client.get(f"{LIST}?patient={patient.pk}&p=2")

    assert len(listed_ids(first)) == 100 and len(listed_ids(second)) == 5
    assert f'href="?p=2&amp;patient={patient.pk}" class="next">Next ›</a>' in first.content.decode()
    assert "Next ›" not in second.content.decode()
    assert f'href="?p=1&amp;patient={patient.pk}">‹ Previous</a>' in second.content.decode()
    # the one count: of a LIMIT 101 subquery (this page and one row), not of every reading
    assert len(counts) == 1
    assert counts[0].endswith("LIMIT 101) subquery"), counts[0]


@pytest.mark.django_db
def test_the_patient_page_shows_recent_readings_with_where_they_came_from(nurse, patient):
    reading(patient, days_ago=0.1, value=142, source=ReadingSource.NIGHTSCOUT,
            entry=Entry.DEVICE, device_serial="xDrip-DexcomG6", trend="Flat")  # fmt: skip
    url = reverse("admin:monitoring_patient_change", args=[patient.pk])

    html = logged_in(nurse).get(url).content.decode()

    assert "Recent readings" in html
    assert "<td>Blood glucose</td>" in html
    assert '<td class="number">142 mg/dL</td>' in html
    assert (
        '<td class="source">Nightscout uploader · xDrip-DexcomG6 · Measured by a device · → Flat'
        "</td>"
    ) in html
    assert f'href="{LIST}?patient={patient.pk}">All readings of this patient</a>' in html


@pytest.mark.django_db
def test_the_alert_page_says_where_each_recent_reading_came_from(nurse, patient):
    reading(patient, days_ago=0.1, source=ReadingSource.FHIR, entry=Entry.DEVICE)
    alert = AlertFactory(patient=patient, rule__metric="glucose")
    url = reverse("admin:alerts_alert_change", args=[alert.pk])

    html = logged_in(nurse).get(url).content.decode()

    assert "<th>Came from</th>" in html
    assert "<td>FHIR client · Measured by a device</td>" in html
