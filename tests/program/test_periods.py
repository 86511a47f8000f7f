"""Device periods and where a running one stands (program/periods.py): the one definition the
panel, the ledger and the outreach job share."""

import random
from datetime import date, timedelta

import pytest

from monitoring.models import DeviceDay
from program.periods import (
    DevicePeriod,
    Reach,
    device_periods,
    period_on,
    period_standings,
    standing,
)
from tests.factories import PatientFactory

START = date(2026, 1, 10)


def test_periods_are_thirty_days_from_the_start_and_the_end_closes_the_running_one():
    assert device_periods(start=START, end=None, until=date(2026, 3, 10)) == [
        DevicePeriod(0, date(2026, 1, 10), date(2026, 2, 8)),
        DevicePeriod(1, date(2026, 2, 9), date(2026, 3, 10)),
    ]
    assert device_periods(start=START, end=date(2026, 2, 20), until=date(2026, 6, 1)) == [
        DevicePeriod(0, date(2026, 1, 10), date(2026, 2, 8)),
        DevicePeriod(1, date(2026, 2, 9), date(2026, 2, 20)),
    ]


def test_the_period_on_a_day_and_none_outside_the_episode():
    assert period_on(start=START, end=None, day=date(2026, 2, 9)) == DevicePeriod(
        1, date(2026, 2, 9), date(2026, 3, 10)
    )
    assert period_on(start=START, end=None, day=date(2026, 1, 9)) is None
    assert period_on(start=START, end=date(2026, 1, 20), day=date(2026, 1, 21)) is None


PERIOD = DevicePeriod(0, START, START + timedelta(days=29))


def days(*offsets: int) -> list[date]:
    return [START + timedelta(days=offset) for offset in offsets]


@pytest.mark.parametrize(
    ("data", "today", "expected"),
    [
        # 16 days with data: reached, whatever is left.
        (days(*range(16)), 16, (16, 14, Reach.REACHED)),
        # Day 20 (0-based), 5 days so far: even every one of the 10 left would make 15.
        (days(0, 1, 2, 3, 4), 20, (5, 10, Reach.CANNOT)),
        # Day 10, every day so far: on track.
        (days(*range(10)), 10, (10, 20, Reach.ON_TRACK)),
        # Day 10, every other day: 5 + 0.5 × 20 = 15 < 16: at risk (but still possible).
        (days(0, 2, 4, 6, 8), 10, (5, 20, Reach.AT_RISK)),
        # Today's data counts, and today is no longer a day left.
        (days(0, 2, 4, 6, 8, 10), 10, (6, 19, Reach.AT_RISK)),
        # The first day, nothing yet: nothing to judge the pace by.
        ([], 0, (0, 30, Reach.ON_TRACK)),
    ],
)
def test_where_a_period_stands(data, today, expected):
    where = standing(period=PERIOD, days=data, today=START + timedelta(days=today))

    assert (where.days_with_data, where.remaining_days, where.reach) == expected


@pytest.mark.django_db
def test_the_database_counts_as_python_does_for_any_patients_days_and_todays(team):
    # 40 patients, each with a random running period, random days with data (some outside
    # the period, some after today), and a random today: counted in one query, the same
    # standing as counted in Python from the days themselves.
    rng = random.Random(1306)
    running, expected = {}, {}
    for _ in range(40):
        patient = PatientFactory(care_team=team)
        start = START + timedelta(days=rng.randrange(0, 60))
        length = rng.choice([30, 30, 30, 12])
        period = DevicePeriod(rng.randrange(3), start, start + timedelta(days=length - 1))
        today = start + timedelta(days=rng.randrange(length))
        data = sorted(
            {
                start + timedelta(days=rng.randrange(-5, length + 5))
                for _ in range(rng.randrange(40))
            }
        )
        DeviceDay.objects.bulk_create(DeviceDay(patient=patient, day=day) for day in data)
        running[patient.pk] = (period, today)
        expected[patient.pk] = standing(period=period, days=data, today=today)

    assert period_standings(running) == expected


@pytest.mark.django_db
def test_a_patient_without_any_days_stands_at_zero(patient):
    where = period_standings({patient.pk: (PERIOD, START + timedelta(days=3))})[patient.pk]

    assert (where.days_with_data, where.has_data_today, where.reach) == (0, False, Reach.AT_RISK)
