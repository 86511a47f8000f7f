"""A real FHIR client (fhirpy) against the live server, with a real evaluation worker: a
batch Bundle in, searched back by patient, code and date; a low glucose through FHIR raises
the same alert as the same low through the REST API."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from fhirpy import SyncFHIRClient

from alerts.models import Alert
from monitoring.auth import issue_app_token
from monitoring.enrolment import enrol_patient
from monitoring.models import Reading
from tests.alerts import test_end_to_end
from tests.celery_worker import wait_for
from tests.factories import CareTeamFactory, MembershipFactory, UserFactory
from tests.interop.fhir.helpers import assert_valid_r4, blood_pressure, bundle, observation

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

worker = test_end_to_end.worker  # the real worker process


@pytest.fixture
def team(transactional_db):
    team = CareTeamFactory(name="Remote monitoring")
    nurse = UserFactory(username="nurse", email="nurse@clinic.example")
    MembershipFactory(team=team, user=nurse, role="nurse", escalation_level=1)
    return team


def enrolled(team):
    patient = enrol_patient(
        external_id=f"MRN-{uuid.uuid4().hex[:8]}",
        name="Ada Example",
        timezone="America/Los_Angeles",
        care_team=team,
        protocols=["diabetes"],
    )
    return patient, issue_app_token(patient=patient)[1]


def moment(minutes_ago: int) -> str:
    return (timezone.now() - timedelta(minutes=minutes_ago)).isoformat()


def evaluated(worker, patient, count: int) -> None:
    wait_for(
        "evaluation",
        lambda: (
            Reading.objects.filter(patient=patient, evaluated_at__isnull=False).count() == count
        ),
        worker.process,
    )


def alerts(patient) -> list[tuple]:
    return list(
        Alert.objects.filter(patient=patient)
        .order_by("id")
        .values_list("dedupe_key", "severity", "status", "title", "values")
    )


def test_a_fhir_client_creates_a_batch_and_searches_it_back(worker, live_server, team):
    # given: one patient's app on the REST API, another patient's FHIR client
    native, native_token = enrolled(team)
    patient, token = enrolled(team)
    client = SyncFHIRClient(f"{live_server.url}/fhir", authorization=f"Bearer {token}")
    at = {"low": moment(60), "normal": moment(120), "bp": moment(90)}

    # when: the FHIR client posts a batch, the app the same low through the REST API
    response = client.execute(
        "",
        method="post",
        data=bundle(
            "batch",
            [
                observation(
                    patient,
                    "41653-7",
                    value=53.9,
                    unit="mg/dL",
                    effective=at["low"],
                    identifier="low",
                ),
                observation(patient, "41653-7", value=110, unit="mg/dL", effective=at["normal"]),
                blood_pressure(patient, 128, 82, effective=at["bp"]),
            ],
        ),
    )
    rest = httpx.post(
        f"{live_server.url}/api/v1/readings",
        json={
            "readings": [
                {
                    "id": str(uuid.uuid4()),
                    "type": "glucose",
                    "value": 53.9,
                    "unit": "mg/dL",
                    "measured_at": at["low"],
                }
            ]
        },
        headers={"Authorization": f"Bearer {native_token}"},
        timeout=10,
    )

    # then: every entry created, and the same alert for the same low either way
    assert_valid_r4(response)
    assert [entry["response"]["status"] for entry in response["entry"]] == ["201 Created"] * 3
    assert rest.status_code == 201
    evaluated(worker, patient, 3)
    evaluated(worker, native, 1)
    assert (
        alerts(patient)
        == alerts(native)
        == [
            (
                "glucose_low",
                "critical",
                "open",
                "Glucose is below 54 mg/dL",
                {"observed": "53.9 mg/dL"},
            )
        ]
    )

    # and: searched back by patient, code and date, newest first, over `next` links
    found = (
        client.resources("Observation")
        .search(patient=f"Patient/{patient.pk}", code="http://loinc.org|2339-0")
        .search(date__ge=moment(180), date__le=moment(0))
        .sort("-date")
        .limit(1)
        .fetch_all()
    )
    assert [o["valueQuantity"]["value"] for o in found] == [53.9, 110]
    for resource in found:
        assert_valid_r4(resource.serialize())
    pressures = (
        client.resources("Observation")
        .search(patient=f"Patient/{patient.pk}", code="85354-9")
        .fetch()
    )
    assert [[c["valueQuantity"]["value"] for c in o["component"]] for o in pressures] == [[128, 82]]
