"""One low glucose, end to end: HTTP post → real Celery worker → alert → email to the nurse.

The worker is a real `celery -A config worker` process on the test broker and the
pytest-django test database; the web side is pytest-django's live server. Email goes
through Django's file-based backend into the test's tmp_path, so what was "sent" is read
back from disk.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_string
from email import policy as email_policy
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from alerts.models import Alert, AlertEvent, Notification
from monitoring.auth import issue_app_token
from monitoring.enrolment import enrol_patient
from monitoring.models import Reading
from tests import broker
from tests.celery_worker import WorkerProcess, start_worker, stop_worker, wait_for
from tests.factories import CareTeamFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

QUEUES = ["evaluation", "notifications"]
NURSE_EMAIL = "nurse.level1@clinic.example"


@dataclass
class Worker:
    """The worker process, with what it mailed and the broker it drains."""

    process: WorkerProcess
    mail_dir: Path

    def emails(self) -> list[str]:
        """What the file-based backend wrote: one file per connection, oldest first."""
        if not self.mail_dir.exists():
            return []
        return [path.read_text() for path in sorted(self.mail_dir.iterdir())]

    def is_settled(self) -> bool:
        """Nothing queued and nothing delivered but unacknowledged (acks_late)."""
        return broker.settled(*QUEUES)


@pytest.fixture
def worker(transactional_db, tmp_path) -> Iterator[Worker]:
    """`celery -A config worker --pool solo -Q evaluation,notifications` on the test database,
    mailing into tmp_path."""
    # Leftovers of an earlier run would be delivered to (or restored into) this worker.
    broker.purge(*QUEUES)
    mail_dir = tmp_path / "mail"
    process = start_worker(
        tmp_path,
        queues=QUEUES,
        pool="solo",
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(mail_dir),
        },
    )
    try:
        yield Worker(process, mail_dir)
    finally:
        stop_worker(process)
        broker.purge(*QUEUES)


def glucose(mmol_per_litre: float, *, minutes_ago: int) -> dict:
    measured_at = timezone.now() - timedelta(minutes=minutes_ago)
    return {
        "id": str(uuid.uuid4()),
        "type": "glucose",
        "value": mmol_per_litre,
        "unit": "mmol/L",
        "measured_at": measured_at.isoformat(),
    }


def evaluated(client_id: str) -> bool:
    return Reading.objects.filter(client_id=client_id, evaluated_at__isnull=False).exists()


def test_a_low_glucose_posted_over_http_pages_the_level_1_nurse_once(worker, live_server):
    # given: a diabetes patient whose team has a level-1 nurse and a level-2 physician
    team = CareTeamFactory(name="Diabetes clinic")
    nurse = UserFactory(username="nurse", email=NURSE_EMAIL)
    MembershipFactory(team=team, user=nurse, role="nurse", escalation_level=1)
    physician = UserFactory(username="physician", email="physician@clinic.example")
    MembershipFactory(team=team, user=physician, role="physician", escalation_level=2)
    patient = enrol_patient(
        external_id="MRN-E2E-0001",
        name="Ada Example",
        timezone="Europe/Berlin",
        care_team=team,
        protocols=["diabetes"],
    )
    _, token = issue_app_token(patient=patient)

    def post(item: dict) -> httpx.Response:
        return httpx.post(
            f"{live_server.url}/api/v1/readings",
            json={"readings": [item]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    # when: a 2.8 mmol/L glucose (50 mg/dL: level 2 hypoglycaemia) arrives over HTTP
    low = glucose(2.8, minutes_ago=5)
    response = post(low)

    # then: evaluated by the worker, one open critical alert, the nurse emailed
    assert response.status_code == 201
    assert response.json()["results"] == [{"id": low["id"], "status": "created"}]
    wait_for("evaluation", lambda: evaluated(low["id"]), worker.process)
    alert = Alert.objects.get(patient=patient)
    assert (alert.dedupe_key, alert.status, alert.severity, alert.occurrences) == (
        "glucose_low",
        "open",
        "critical",
        1,
    )
    assert alert.title == "Glucose is below 54 mg/dL"
    assert alert.reading_ids == [Reading.objects.get(client_id=low["id"]).pk]
    wait_for(
        "sent notification",
        lambda: Notification.objects.filter(target=NURSE_EMAIL, status="sent").exists(),
        worker.process,
    )
    wait_for("settled queues", worker.is_settled, worker.process)
    assert list(Notification.objects.values_list("channel", "recipient", "target", "status")) == [
        ("email", nurse.pk, NURSE_EMAIL, "sent")
    ]
    [email] = worker.emails()
    assert f"To: {NURSE_EMAIL}" in email
    assert "physician@clinic.example" not in email
    assert alert.title in email
    assert (
        f"Open and acknowledge: {settings.VIGIL_BASE_URL}/admin/alerts/alert/{alert.pk}/" in email
    )
    # Minimum necessary: the subject names the alert, the message neither the MRN nor the name.
    subject = message_from_string(email, policy=email_policy.default)["Subject"].lstrip()
    assert subject == f"Vigil alert #{alert.pk}: critical — Glucose is below 54 mg/dL"
    assert "MRN-E2E-0001" not in email
    assert "Ada Example" not in email

    # when: the app re-sends the same reading, then a second low one arrives
    duplicate = post(low)
    second = glucose(2.9, minutes_ago=1)
    response = post(second)

    # then: the duplicate is reported, not stored; the second folds into the open alert,
    # and nobody is paged again for the same event
    assert duplicate.status_code == 200
    assert duplicate.json()["results"] == [{"id": low["id"], "status": "duplicate"}]
    assert response.status_code == 201
    wait_for("evaluation of the second reading", lambda: evaluated(second["id"]), worker.process)
    wait_for("settled queues", worker.is_settled, worker.process)
    assert Reading.objects.filter(patient=patient).count() == 2
    alert = Alert.objects.get(patient=patient)
    assert (alert.dedupe_key, alert.status, alert.severity, alert.occurrences) == (
        "glucose_low",
        "open",
        "critical",
        2,
    )
    assert list(AlertEvent.objects.values_list("kind", flat=True)) == ["raised"]
    assert Notification.objects.count() == 1
    assert len(worker.emails()) == 1
