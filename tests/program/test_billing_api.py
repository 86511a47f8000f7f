"""The billing endpoints (docs/api.md, "The RPM program"): GET /api/v1/patients/{id}/billing
and GET /api/v1/billing/ledger (JSON, and CSV as the coordinators' export). Every answer is
also checked against the OpenAPI document (tests/openapi_responses.py).

"Today" is 15 May 2026 (time-machine): March and April are over for every patient."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.models import AuditEvent
from program.models import LedgerLine
from tests.factories import PatientFactory
from tests.program.ledger_helpers import days, episode, local, post_device_days, time_entry

NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _today(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def march(patient, physician):
    """A consented episode from 20 February: 3 days with device data in its first period
    (20 February - 21 March), 18 in its second (from 22 March); 25 approved minutes with a
    call and 10 unapproved in March."""
    ep = episode(patient, start=date(2026, 2, 20), practitioner=physician)
    post_device_days(patient, [*days(date(2026, 3, 1), 3), *days(date(2026, 3, 22), 18)])
    time_entry(patient, at=local(patient, date(2026, 3, 3)), minutes=5, interactive=True)
    time_entry(patient, at=local(patient, date(2026, 3, 4)), minutes=20)
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=10, approved=False)
    return ep


# --- One patient's month ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_patients_billing_month(nurse_client, patient, march):
    response = nurse_client.get(f"/api/v1/patients/{patient.pk}/billing?month=2026-03")

    assert response.status_code == 200
    assert response.json() == {
        "device_periods": [
            # 20 Feb - 21 March: 3 days; 22 March - 20 April: 18 days
            {"start": "2026-02-20", "end": "2026-03-21", "days_with_data": 3, "code": "99445"},
            {"start": "2026-03-22", "end": "2026-04-20", "days_with_data": 18, "code": "99454"},
        ],
        "month": {
            "minutes": 35,
            "approved_minutes": 25,
            "interactive": True,
            "codes": [{"code": "99457", "units": 1}],
        },
        "setup": {"code": "99453", "billable": True, "reason": None},
    }
    # a read writes nothing, and is audited for the patient
    assert not LedgerLine.objects.exists()
    assert list(AuditEvent.objects.values_list("patient_id", "action", "model")) == [
        (patient.pk, "view", "program.ledgerline")
    ]


@pytest.mark.django_db
def test_a_patient_without_an_episode_shows_time_and_no_codes(nurse_client, patient):
    time_entry(patient, at=local(patient, date(2026, 3, 3)), minutes=12, interactive=True)

    response = nurse_client.get(f"/api/v1/patients/{patient.pk}/billing?month=2026-03")

    assert response.json() == {
        "device_periods": [],
        "month": {"minutes": 12, "approved_minutes": 12, "interactive": True, "codes": []},
        "setup": {"code": "99453", "billable": False, "reason": "no RPM episode in the month"},
    }


@pytest.mark.django_db
def test_the_setup_says_why_it_is_not_billable(nurse_client, patient):
    episode(patient, start=date(2026, 3, 1), consent=False)

    response = nurse_client.get(f"/api/v1/patients/{patient.pk}/billing?month=2026-03")

    assert response.json()["setup"] == {
        "code": "99453",
        "billable": False,
        "reason": "no consent recorded",
    }
    assert response.json()["device_periods"][0]["code"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?month=2026-13", "?month=March", "?month=2026-3"])
def test_a_bad_month_is_a_400_naming_the_field(nurse_client, patient, query):
    response = nurse_client.get(f"/api/v1/patients/{patient.pk}/billing{query}")

    assert response.status_code == 400
    reason = "This field is required." if not query else "Must be a month as YYYY-MM, e.g. 2026-03."
    assert response.json() == {"detail": "Invalid input.", "errors": {"month": [reason]}}


@pytest.mark.django_db
def test_another_teams_patient_is_a_404(outsider_client, patient, march):
    response = outsider_client.get(f"/api/v1/patients/{patient.pk}/billing?month=2026-03")

    assert response.status_code == 404
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["refused"]


# --- The month's ledger ----------------------------------------------------------------------


def ledger(client, query: str):
    return client.get(f"/api/v1/billing/ledger?{query}")


@pytest.mark.django_db
def test_the_ledger_has_one_row_per_patient_and_code_with_its_evidence(
    nurse_client, team, patient, march, other_patient
):
    response = ledger(nurse_client, f"month=2026-03&team={team.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["month"] == "2026-03"
    rows = [
        (r["patient"], r["code"], r["units"], r["period_start"], r["period_end"], r["status"])
        for r in body["results"]
    ]
    # March: the first period and the set-up (both end 21 March) and the month's time; the
    # second period ends in April, so shows there.
    assert rows == [
        (patient.pk, "99445", 1, "2026-02-20", "2026-03-21", "billable"),
        (patient.pk, "99453", 1, "2026-02-20", "2026-03-21", "billable"),
        (patient.pk, "99457", 1, "2026-03-01", "2026-03-31", "billable"),
    ]
    management = body["results"][2]
    assert management["practitioner"] == "physician"
    assert management["external_id"] == patient.external_id
    assert management["episode"] == march.pk
    assert management["reason"] == ""
    assert management["id"] is None  # computed, not stored: JSON writes nothing
    assert management["evidence"]["approved_minutes"] == 25
    assert management["evidence"]["unapproved_minutes"] == 10
    assert body["results"][0]["evidence"]["days"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert not LedgerLine.objects.exists()
    assert list(AuditEvent.objects.values_list("patient_id", "action")) == [(patient.pk, "view")]


@pytest.mark.django_db
def test_a_month_without_time_shows_why_it_bills_no_management(nurse_client, patient, march):
    rows = ledger(nurse_client, "month=2026-02").json()["results"]

    # February: no period ends in it, no minutes: one line says why nothing is billed.
    assert [(r["code"], r["status"], r["reason"]) for r in rows] == [
        ("99470", "not_billable", "fewer than 10 approved minutes")
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("team=1", {"month": ["This field is required."]}),
        ("month=2026-03&team=abc", {"team": ["A valid integer is required."]}),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(nurse_client, query, errors):
    response = ledger(nurse_client, query)

    assert response.status_code == 400
    assert response.json()["errors"] == errors


@pytest.mark.django_db
def test_another_team_is_a_400(nurse_client, other_team):
    for team_id in (other_team.pk, other_team.pk + 1000):
        response = ledger(nurse_client, f"month=2026-03&team={team_id}")

        assert response.status_code == 400
        assert response.json()["errors"] == {"team": ["Not a care team whose billing you may see."]}


@pytest.mark.django_db
def test_the_ledger_shows_only_the_callers_teams(outsider_client, patient, march):
    assert ledger(outsider_client, "month=2026-03").json() == {"month": "2026-03", "results": []}


# --- The CSV export -----------------------------------------------------------------------


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.mark.django_db
def test_a_coordinator_exports_a_closed_month_as_csv(coordinator_client, team, patient, march):
    response = ledger(coordinator_client, f"month=2026-03&team={team.pk}&format=csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="ledger-2026-03.csv"'
    header = response.content.decode().splitlines()[0]
    assert header == (
        "id,patient,external_id,episode,practitioner,code,units,period_start,period_end,"
        "status,reason,evidence,exported_at"
    )
    rows = csv_rows(response)
    assert [(r["code"], r["status"], r["exported_at"]) for r in rows] == [
        ("99445", "exported", "2026-05-15T12:00:00Z"),
        ("99453", "exported", "2026-05-15T12:00:00Z"),
        ("99457", "exported", "2026-05-15T12:00:00Z"),
    ]
    assert json.loads(rows[0]["evidence"])["days"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    # the lines are stored, marked exported, and the export is audited per patient
    stored = LedgerLine.objects.filter(pk__in=[int(r["id"]) for r in rows])
    assert sorted(stored.values_list("code", "status")) == [
        ("99445", "exported"),
        ("99453", "exported"),
        ("99457", "exported"),
    ]
    assert sorted(AuditEvent.objects.values_list("patient_id", "action")) == [
        (patient.pk, "export"),
        (patient.pk, "view"),
    ]


@pytest.mark.django_db
def test_exporting_again_hands_out_the_same_lines(coordinator_client, team, patient, march):
    first = csv_rows(ledger(coordinator_client, "month=2026-03&format=csv"))
    time_entry(patient, at=local(patient, date(2026, 3, 20)), minutes=40, interactive=True)

    second = csv_rows(ledger(coordinator_client, "month=2026-03&format=csv"))

    assert second == first


@pytest.mark.django_db
def test_a_running_month_is_exported_unmarked(coordinator_client, patient, march):
    time_entry(patient, at=local(patient, date(2026, 5, 3)), minutes=12, interactive=True)

    rows = csv_rows(ledger(coordinator_client, "month=2026-05&format=csv"))

    assert not LedgerLine.objects.filter(status="exported").exists()
    # the third period (21 April - 20 May) and May's time are still running
    assert [(r["code"], r["status"]) for r in rows] == [
        ("99445", "accruing"),
        ("99470", "accruing"),
    ]


@pytest.mark.django_db
def test_a_nurse_may_not_export(nurse_client, team, patient, march):
    response = ledger(nurse_client, f"month=2026-03&team={team.pk}&format=csv")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "Only the team's coordinators may export the billing ledger."
    }
    assert not LedgerLine.objects.exists()
    assert ledger(nurse_client, "month=2026-03&format=csv").status_code == 403


@pytest.mark.django_db
def test_a_bad_month_asked_as_csv_is_answered_in_json(coordinator_client):
    response = ledger(coordinator_client, "month=2026-3&format=csv")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"] == {"month": ["Must be a month as YYYY-MM, e.g. 2026-03."]}


@pytest.mark.django_db
def test_a_cell_a_spreadsheet_would_run_is_kept_as_text(coordinator_client, team):
    patient = PatientFactory(care_team=team, external_id="=HYPERLINK(1)")
    episode(patient, start=date(2026, 3, 1))

    rows = csv_rows(ledger(coordinator_client, "month=2026-03&format=csv"))

    assert {r["external_id"] for r in rows} == {"'=HYPERLINK(1)"}


@pytest.mark.django_db
def test_an_unknown_format_is_a_400_naming_it(coordinator_client):
    response = ledger(coordinator_client, "month=2026-03&format=xml")

    assert response.status_code == 400
    assert response.json()["errors"] == {"format": ["Must be one of: json, csv."]}
    assert not LedgerLine.objects.exists()


@pytest.mark.django_db
def test_a_patient_whose_episode_begins_later_in_the_month(nurse_client, patient):
    episode(patient, start=date(2026, 5, 20))

    response = nurse_client.get(f"/api/v1/patients/{patient.pk}/billing?month=2026-05")

    assert response.json() == {
        "device_periods": [],
        "month": {"minutes": 0, "approved_minutes": 0, "interactive": False, "codes": []},
        "setup": {"code": "99453", "billable": False, "reason": "the episode has not begun"},
    }


@pytest.mark.django_db
def test_the_ledger_reads_in_a_constant_number_of_queries(nurse_client, team, physician):
    def add_patients(count):
        for _ in range(count):
            patient = PatientFactory(care_team=team)
            episode(patient, start=date(2026, 3, 1), practitioner=physician)
            post_device_days(patient, days(date(2026, 3, 2), 3))
            time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=12, interactive=True)

    add_patients(1)
    ledger(nurse_client, "month=2026-03")  # the token's last use is written once a while
    with CaptureQueriesContext(connection) as one:
        assert len(ledger(nurse_client, "month=2026-03").json()["results"]) == 3
    add_patients(4)
    with CaptureQueriesContext(connection) as five:
        assert len(ledger(nurse_client, "month=2026-03").json()["results"]) == 15

    assert len(five) == len(one)
