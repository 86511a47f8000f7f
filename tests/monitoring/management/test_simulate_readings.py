"""The demo: seed_demo's token file and the reading simulator, posting over real HTTP."""

import json
import stat
from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import redis
import time_machine
from django.conf import settings
from django.core.management import call_command

from alerts.models import Alert
from monitoring.auth import BearerTokenAuthentication
from monitoring.evaluation import evaluate_pending_readings
from monitoring.management.commands.simulate_readings import demo_readings
from monitoring.models import Patient, Reading


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def _broker_queues_purged():
    """The evaluations and notifications these tests enqueue are not for a later test."""
    yield
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(settings.CELERY_TASK_DEFAULT_QUEUE, "notifications")
    client.close()


def seed(base_url="http://testserver") -> None:
    call_command("seed_demo", "--base-url", base_url, stdout=StringIO())


def test_seed_demo_writes_the_app_tokens_for_the_owner_only(
    db, var_dir, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        seed()

    # then
    path = var_dir / "demo_tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = json.loads(path.read_text())
    assert sorted(tokens) == ["DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004"]
    for external_id, token in tokens.items():
        principal, _ = BearerTokenAuthentication().authenticate_token(token)
        assert principal.patient.external_id == external_id
    assert [p.name for p in var_dir.iterdir()] == ["demo_tokens.json"]  # no partial file left


def test_seed_demo_writes_no_tokens_when_the_seed_rolls_back(db, var_dir):
    # given: the test's transaction is never committed, like a seed that failed

    # when
    seed()

    # then
    assert not (var_dir / "demo_tokens.json").exists()


def test_demo_readings_are_the_same_on_a_rerun_and_cross_today():
    # given
    now = datetime(2026, 3, 10, 14, 20, tzinfo=UTC)
    zone = ZoneInfo("America/New_York")
    make = lambda at: demo_readings(  # noqa: E731
        external_id="DEMO-001",
        zone=zone,
        protocols=["heart_failure", "hypertension"],
        now=at,
        days=5,
    )

    # when
    history, today = make(now)
    rerun = make(now + timedelta(hours=3, minutes=30))  # the same six-hour block

    # then
    assert rerun == (history, today)
    assert len(history) == 5 + 5 * 2  # a weight a day, BP twice a day
    assert [(item["type"], item.get("value"), item.get("systolic")) for item in today] == [
        ("weight", 83.9, None),
        ("blood_pressure", None, 188),
    ]
    assert all(item["measured_at"].endswith("-04:00") for item in today)  # EDT from 8 March
    assert len({item["id"] for item in history + today}) == 17


@pytest.mark.django_db(transaction=True)
def test_simulator_posts_through_the_api_and_the_rules_raise_one_alert_per_protocol(
    live_server, var_dir, _broker_queues_purged
):
    # given
    seed(live_server.url)
    out = StringIO()

    # when
    call_command("simulate_readings", "--base-url", live_server.url, stdout=out)
    for patient in Patient.objects.all():
        evaluate_pending_readings(patient_id=patient.pk)

    # then
    alerts = {
        (alert.patient.external_id, alert.severity, alert.title)
        for alert in Alert.objects.select_related("patient")
    }
    assert alerts == {
        ("DEMO-001", "warning", "Weight rises by more than 0.9 kg in 1 day"),
        ("DEMO-001", "critical", "Systolic is above 180 mmHg or diastolic is above 120 mmHg"),
        ("DEMO-002", "critical", "Glucose is below 54 mg/dL"),
        ("DEMO-003", "critical", "INR is at or above 5"),
        ("DEMO-004", "warning", "SpO2 is at or below 87 %"),
    }
    assert "DEMO-004 (copd): 16 created, 0 duplicate, 0 conflict, 0 rejected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_simulator_rerun_posts_duplicates_not_new_rows(live_server, var_dir, _broker_queues_purged):
    # given: both runs in one six-hour block, as a restart a few minutes later is
    with time_machine.travel(datetime(2026, 3, 10, 13, 5, tzinfo=UTC), tick=True) as clock:
        seed(live_server.url)
        call_command("simulate_readings", "--base-url", live_server.url, stdout=StringIO())
        stored = Reading.objects.count()
        out = StringIO()
        clock.shift(timedelta(hours=4))

        # when
        call_command("simulate_readings", "--base-url", live_server.url, stdout=out)

    # then
    assert Reading.objects.count() == stored
    assert out.getvalue().count(" 0 created, ") == 4
