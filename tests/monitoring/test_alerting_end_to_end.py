"""The alerting edges through the API with a real worker: readings posted over HTTP to the
live server, evaluated by a `celery -A config worker` process, alerts read back.

One clinic, one patient per situation: an open critical never hides the opposite problem,
a worse reading is never taken for a clearing and moves the alert, a late crisis is
reviewed, and one bad timestamp loses no sibling and blocks no evaluation.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from alerts.models import Alert
from monitoring.auth import issue_app_token
from monitoring.enrolment import enrol_patient
from monitoring.models import Reading
from tests.alerts import test_end_to_end
from tests.celery_worker import wait_for
from tests.factories import CareTeamFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

worker = test_end_to_end.worker  # the real worker process, mailing into tmp_path


def measured(minutes_ago: float, offset: str | None = None) -> str:
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    text = moment.isoformat()
    return text[: -len("+00:00")] + offset if offset else text


def reading(kind: str, minutes_ago: float, **fields) -> dict:
    return {"id": str(uuid.uuid4()), "type": kind, "measured_at": measured(minutes_ago), **fields}


class App:
    """A patient's app posting to the live server."""

    def __init__(self, live_server, protocol: str, team):
        self.patient = enrol_patient(
            external_id=f"MRN-{uuid.uuid4().hex[:8]}",
            name="Ada Example",
            timezone="America/Los_Angeles",
            care_team=team,
            protocols=[protocol],
        )
        self.url = f"{live_server.url}/api/v1/readings"
        self.token = issue_app_token(patient=self.patient)[1]

    def post(self, *items: dict) -> httpx.Response:
        return httpx.post(
            self.url,
            json={"readings": list(items)},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def evaluated(self, worker, *items: dict) -> None:
        ids = [item["id"] for item in items]
        wait_for(
            "evaluation",
            lambda: (
                Reading.objects.filter(client_id__in=ids, evaluated_at__isnull=False).count()
                == len(ids)
            ),
            worker.process,
        )

    def alerts(self) -> list[tuple]:
        return list(
            Alert.objects.filter(patient=self.patient)
            .order_by("id")
            .values_list("dedupe_key", "severity", "status", "title", "values")
        )


@pytest.fixture
def team(transactional_db):
    team = CareTeamFactory(name="Remote monitoring")
    nurse = UserFactory(username="nurse", email="nurse@clinic.example")
    MembershipFactory(team=team, user=nurse, role="nurse", escalation_level=1)
    return team


def test_the_alerting_edges_through_the_api_with_a_real_worker(worker, live_server, team):
    # An open very high glucose, then lows: a low alert of its own.
    diabetes = App(live_server, "diabetes", team)
    very_high = reading("glucose", 180, value=401, unit="mg/dL")
    assert diabetes.post(very_high).status_code == 201
    diabetes.evaluated(worker, very_high)
    lows = [reading("glucose", 120, value=60, unit="mg/dL"), reading("glucose", 60, value=53.9)]
    lows[1]["unit"] = "mg/dL"
    assert diabetes.post(*lows).status_code == 201
    diabetes.evaluated(worker, *lows)
    assert diabetes.alerts() == [
        (
            "glucose_high",
            "critical",
            "open",
            "Glucose is above 400 mg/dL",
            {"observed": "401 mg/dL"},
        ),
        (
            "glucose_low",
            "critical",
            "open",
            "Glucose is below 54 mg/dL",
            {"observed": "53.9 mg/dL"},
        ),
    ]

    # INR 3.5 then 10.5: the same high-INR alert, now critical at the furthest tier, not cleared.
    warfarin = App(live_server, "anticoagulation", team)
    first, worse = reading("inr", 180, value=3.5), reading("inr", 60, value=10.5)
    warfarin.post(first)
    warfarin.evaluated(worker, first)
    warfarin.post(worse)
    warfarin.evaluated(worker, worse)
    high = Alert.objects.get(patient=warfarin.patient, dedupe_key="inr_high")
    assert (high.severity, high.title, high.values, high.condition_cleared_at) == (
        "critical",
        "INR is above 10",
        {"observed": "10.5"},
        None,
    )

    # A crisis measured 30 hours ago, uploaded now: reviewed as late, not dropped.
    pressure = App(live_server, "hypertension", team)
    late = reading("blood_pressure", 30 * 60, systolic=204, diastolic=128)
    assert pressure.post(late).status_code == 201
    pressure.evaluated(worker, late)
    [(key, severity, status, title, values)] = pressure.alerts()
    assert (key, severity, status, values["late"]) == ("bp_high", "critical", "open", True)
    assert title.startswith("Late reading, measured ") and title.endswith(
        ": Systolic is above 180 mmHg or diastolic is above 120 mmHg"
    )

    # An item with an impossible offset beside a low glucose: rejected alone, the low alerts.
    other = App(live_server, "diabetes", team)
    bad = reading("glucose", 30, value=100, unit="mg/dL")
    bad["measured_at"] = measured(30, offset="+16:00")
    low = reading("glucose", 10, value=40, unit="mg/dL")
    response = other.post(bad, low)
    assert response.status_code == 201
    statuses = [(r["id"], r["status"]) for r in response.json()["results"]]
    assert statuses == [(bad["id"], "rejected"), (low["id"], "created")]
    assert "measured_at" in response.json()["results"][0]["errors"]
    other.evaluated(worker, low)
    assert [(k, s) for k, s, *_ in other.alerts()] == [("glucose_low", "critical")]
