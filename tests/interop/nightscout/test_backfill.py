"""A backfill after a phone was offline is normal traffic: a day of CGM (288 entries) in one
request goes through record_readings and the evaluation's late-data policy
(docs/clinical-policies.md, "Late and out-of-order data")."""

from datetime import timedelta

import pytest

from alerts.models import Alert
from tests.monitoring.evaluation.helpers import NOW, clock, enrolled, evaluate  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

FIVE_MINUTES_MS = 300_000
NOW_MS = int(NOW.timestamp() * 1000)


def a_day_of_cgm(*, ending_before: timedelta, lows: dict[int, int]) -> list[dict]:
    """288 sgv entries 5 minutes apart, the newest `ending_before` now, 120 mg/dL except
    `lows` ({index from the oldest: value})."""
    newest = NOW_MS - int(ending_before.total_seconds() * 1000)
    return [
        {
            "type": "sgv",
            "sgv": lows.get(i, 120),
            "date": newest - (287 - i) * FIVE_MINUTES_MS,
            "direction": "Flat",
            "device": "AndroidAPS-DexcomG6",
        }
        for i in range(288)
    ]


def alerts(patient) -> list[tuple]:
    return list(
        Alert.objects.filter(patient=patient)
        .order_by("id")
        .values_list(
            "dedupe_key",
            "severity",
            "status",
            "title",
            "values",
            "first_triggered_at",
            "condition_cleared_at",
        )
    )


def test_a_day_uploaded_at_once_with_a_low_hours_ago_raises_the_low(
    uploader, patient, django_capture_on_commit_callbacks
):
    # given: the phone was offline for a day; 6 hours ago (index 215 of 288) the glucose
    # fell to 50 mg/dL for 15 minutes (level 2), then recovered
    enrolled(patient, "diabetes")
    entries = a_day_of_cgm(ending_before=timedelta(0), lows={215: 50, 216: 48, 217: 52})

    # when: the uploader sends the day in one request, and the evaluation runs
    response = uploader.post("entries", entries)
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: all 288 stored and evaluated, in measurement order
    assert (response.status_code, len(response.json())) == (200, 288)
    assert patient.readings.filter(evaluated_at__isnull=False).count() == 288
    # one level-2 low alert, at its worst value, begun when the low began (6 hours ago, not
    # at upload), its condition cleared by the next reading, open for the team to review
    assert alerts(patient) == [
        (
            "glucose_low", "critical", "open", "Glucose is below 54 mg/dL",
            {"observed": "48 mg/dL"},
            NOW - timedelta(hours=6), NOW - timedelta(hours=5, minutes=45),
        )
    ]  # fmt: skip


def test_a_low_more_than_a_day_old_is_raised_as_late(
    uploader, patient, django_capture_on_commit_callbacks
):
    # given: the day ending 6 hours ago; its oldest hour is more than
    # VIGIL_STALE_READING_HOURS (24) old, with a level-2 low in it (index 3: 29 h 40 min ago)
    enrolled(patient, "diabetes")
    entries = a_day_of_cgm(ending_before=timedelta(hours=6), lows={3: 45})

    response = uploader.post("entries", entries)
    evaluate(patient, django_capture_on_commit_callbacks)

    assert (response.status_code, len(response.json())) == (200, 288)
    # reviewed, not dropped: a critical finding on a late reading raises a late alert
    low_at = NOW - timedelta(hours=6) - 284 * timedelta(minutes=5)
    assert low_at == NOW - timedelta(hours=29, minutes=40)
    assert alerts(patient) == [
        (
            "glucose_low", "critical", "open",
            "Late reading, measured 28 Feb 2026, 01:20 EST: Glucose is below 54 mg/dL",
            {"late": True, "measured": "2026-02-28 01:20 EST", "observed": "45 mg/dL"},
            low_at, low_at + timedelta(minutes=5),
        )
    ]  # fmt: skip
