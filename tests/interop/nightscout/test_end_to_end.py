"""A Nightscout uploader against the live server with a real worker: a low sgv raises the
same alert as a low reading through the REST API, and a Nightscout client library from PyPI
(python-nightscout) reads the entries back with the base URL and the secret."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import nightscout
import pytest
from django.utils import timezone

from interop.nightscout.uploaders import issue_uploader
from monitoring.models import Reading
from tests.celery_worker import wait_for
from tests.factories import CareTeamFactory, MembershipFactory, UserFactory
from tests.monitoring import test_alerting_end_to_end as rest

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

worker = rest.worker  # the real worker process


@pytest.fixture
def team(transactional_db):
    team = CareTeamFactory(name="Remote monitoring")
    nurse = UserFactory(username="nurse", email="nurse@clinic.example")
    MembershipFactory(team=team, user=nurse, role="nurse", escalation_level=1)
    return team


def evaluated(worker, patient, count: int) -> None:
    wait_for(
        "evaluation",
        lambda: (
            Reading.objects.filter(patient=patient, evaluated_at__isnull=False).count() == count
        ),
        worker.process,
    )


def test_a_low_sgv_alerts_as_a_low_reading_does_and_a_client_library_reads_it_back(
    worker, live_server, team
):
    # given: two patients on the diabetes protocol, one with an app, one with a CGM uploader
    app = rest.App(live_server, "diabetes", team)
    cgm = rest.App(live_server, "diabetes", team)
    uploader, secret = issue_uploader(patient=cgm.patient, created_by=None)
    base_url = f"{live_server.url}/nightscout/{uploader.slug}"
    ten_minutes_ago = timezone.now().replace(microsecond=0) - timedelta(minutes=10)

    # when: the same low, 50 mg/dL ten minutes ago, arrives through each door
    low = rest.reading("glucose", 10, value=50, unit="mg/dL")
    low["measured_at"] = ten_minutes_ago.isoformat()
    assert app.post(low).status_code == 201
    posted = httpx.post(
        f"{base_url}/api/v1/entries",
        json=[
            {
                "type": "sgv",
                "sgv": 50,
                "date": int(ten_minutes_ago.timestamp() * 1000),
                "dateString": ten_minutes_ago.isoformat(),
                "direction": "SingleDown",
                "device": "xDrip-DexcomG6",
            }
        ],
        headers={"api-secret": hashlib.sha1(secret.encode()).hexdigest()},
        timeout=10,
    )
    assert posted.status_code == 200
    app.evaluated(worker, low)
    evaluated(worker, cgm.patient, 1)

    # then: the same alert for both
    expected = [
        ("glucose_low", "critical", "open", "Glucose is below 54 mg/dL", {"observed": "50 mg/dL"})
    ]
    assert app.alerts() == expected
    assert cgm.alerts() == expected

    # and: python-nightscout, configured with the base URL and the secret, reads it back
    client = nightscout.Api(base_url, api_secret=secret)
    [sgv] = client.get_sgvs({"count": 10})
    assert (sgv.sgv, sgv.direction, sgv.device) == (50, "SingleDown", "xDrip-DexcomG6")
    assert sgv.date == ten_minutes_ago.astimezone(UTC)
    assert isinstance(sgv.date, datetime)
    # and the wrong secret reads nothing
    refused = httpx.get(
        f"{base_url}/api/v1/entries/sgv.json",
        headers={"api-secret": hashlib.sha1(b"wrong secret!").hexdigest()},
        timeout=10,
    )
    assert refused.status_code == 401
