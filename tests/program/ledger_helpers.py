"""Builders shared by the ledger tests (test_ledger*.py, test_billing_api.py): episodes,
device days posted through the real ingest, time entries. Times are the patient's local
times unless said otherwise."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from alerts.models import CareTeamRole
from monitoring.ingest import APP, DEVICE_KEY, record_readings
from program.models import Activity, ConsentMethod, Episode, TimeEntry, TimeSource
from tests.factories import MembershipFactory, ReadingItemFactory


def local(patient, day: date, hour: int = 10, minute: int = 0) -> datetime:
    """The instant of a local time of the patient."""
    return datetime.combine(day, time(hour, minute), zoneinfo.ZoneInfo(patient.timezone))


def days(start: date, count: int, step: int = 1) -> list[date]:
    return [start + timedelta(days=i * step) for i in range(count)]


def physician_of(patient, username: str | None = None):
    kwargs = {"user__username": username} if username else {}
    return MembershipFactory(team=patient.care_team, role=CareTeamRole.PHYSICIAN, **kwargs).user


def episode(
    patient,
    *,
    start: date,
    end: date | None = None,
    practitioner=None,
    consent: bool = True,
) -> Episode:
    return Episode.objects.create(
        patient=patient,
        start=start,
        end=end,
        consent_at=local(patient, start, 9) if consent else None,
        consent_method=ConsentMethod.WRITTEN if consent else "",
        billing_practitioner=practitioner or physician_of(patient),
        conditions=["I10"],
    )


def post_readings(patient, instants: Iterable[datetime], *, channel=DEVICE_KEY) -> None:
    """One weight reading at each instant, posted through the ingest as `channel` sends it
    (DEVICE_KEY: entry device; APP: typed by the patient)."""
    instants = list(instants)
    items = [
        ReadingItemFactory(type="weight", measured_at=instant.isoformat()) for instant in instants
    ]
    result = record_readings(
        patient=patient,
        items=items,
        channel=channel,
        received_at=max(instants).astimezone(UTC) + timedelta(hours=1),
    )
    assert {item.status for item in result.results} == {"created"}, result.as_dict()


def post_device_days(patient, on: Iterable[date], *, hour: int = 10, channel=DEVICE_KEY) -> None:
    post_readings(patient, [local(patient, day, hour) for day in on], channel=channel)


def post_manual_days(patient, on: Iterable[date]) -> None:
    post_device_days(patient, on, channel=APP)


def time_entry(
    patient,
    *,
    at: datetime,
    minutes: int,
    interactive: bool = False,
    approved: bool = True,
    user=None,
    approver=None,
) -> TimeEntry:
    return TimeEntry.objects.create(
        user=user or MembershipFactory(team=patient.care_team).user,
        patient=patient,
        source=TimeSource.MANUAL,
        started_at=at,
        minutes=minutes,
        activity=Activity.PHONE_CALL if interactive else Activity.DATA_REVIEW,
        interactive=interactive,
        approved_by=(approver or physician_of(patient)) if approved else None,
        approved_at=at + timedelta(hours=1) if approved else None,
    )
