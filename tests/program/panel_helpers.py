"""Small builders for the panel's tests (tests/program/test_panel*.py).

Program objects are created with Model.objects.create here, not with factories, so these
tests stand on their own beside tests/program/factories.py. Readings go through
monitoring.ingest.record_readings, as a device or the app sends them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from alerts.models import Alert
from monitoring.ingest import APP, DEVICE_KEY, record_readings
from monitoring.models import Patient, Protocol
from program.models import Episode, Review, TimeEntry
from tests.factories import AlertFactory, PatientFactory, RuleFactory


def enrol(team, *, protocols=(), timezone="America/New_York", **fields) -> Patient:
    patient = PatientFactory(care_team=team, timezone=timezone, **fields)
    patient.protocols.set(Protocol.objects.for_codes(list(protocols)))
    return patient


def post(patient: Patient, at: datetime, *, device: bool = True, type: str = "weight", **values):
    """One reading measured at `at`, sent by a device (entry device) or typed in the app."""
    defaults = {
        "weight": {"value": 80.0, "unit": "kg"},
        "blood_pressure": {"systolic": 128, "diastolic": 82},
        "glucose": {"value": 112, "unit": "mg/dL"},
        "spo2": {"value": 97},
        "inr": {"value": 2.4},
    }[type]
    item = {"id": str(uuid.uuid4()), "type": type, "measured_at": at.isoformat()}
    item |= defaults | values
    result = record_readings(patient=patient, items=[item], channel=DEVICE_KEY if device else APP)
    assert result.created == 1, result.as_dict()


def start_episode(patient: Patient, *, start: date, practitioner, end: date | None = None):
    return Episode.objects.create(
        patient=patient,
        start=start,
        end=end,
        consent_at=datetime.combine(start, datetime.min.time()).astimezone(patient.zone),
        consent_method="verbal",
        billing_practitioner=practitioner,
    )


def log_time(
    patient, user, *, at: datetime, minutes: int | None, interactive=False, approved_by=None
):
    """A time entry by hand, or (minutes None) a running timer."""
    return TimeEntry.objects.create(
        patient=patient,
        user=user,
        source="manual" if minutes is not None else "timer",
        started_at=at,
        minutes=minutes,
        activity="phone_call" if interactive else "data_review",
        interactive=interactive,
        approved_by=approved_by,
        approved_at=at if approved_by else None,
    )


def review(patient, reviewer, *, at: datetime) -> Review:
    return Review.objects.create(patient=patient, reviewer=reviewer, at=at)


def alert(patient, *, severity: str, status: str = "open", key: str | None = None) -> Alert:
    rule = RuleFactory(
        patient=patient, severity=severity, key=key or f"rule_{uuid.uuid4().hex[:8]}"
    )
    return AlertFactory(patient=patient, rule=rule, status=status)
