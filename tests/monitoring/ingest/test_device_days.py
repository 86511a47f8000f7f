"""Days with device data (monitoring.models.DeviceDay), written by the statement that stores
the readings (monitoring/ingest/store.py): what the RPM device codes count (program/)."""

from datetime import UTC, date, datetime

import pytest

from monitoring.ingest import APP, DEVICE_KEY
from monitoring.models import DeviceDay, Reading
from tests.factories import ReadingItemFactory
from tests.monitoring.ingest.helpers import record

RECEIVED = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def days_of(patient) -> list[date]:
    return list(DeviceDay.objects.filter(patient=patient).values_list("day", flat=True))


def weight(measured_at: str, **kwargs) -> dict:
    return ReadingItemFactory(type="weight", measured_at=measured_at, **kwargs)


@pytest.mark.django_db
def test_a_device_reading_counts_its_local_day(patient):
    # patient: America/New_York; 09:00 EDT on 10 March 2026.
    record(patient, [weight("2026-03-10T09:00:00-04:00")], channel=DEVICE_KEY, received_at=RECEIVED)

    assert days_of(patient) == [date(2026, 3, 10)]


@pytest.mark.django_db
def test_a_reading_typed_by_a_person_counts_no_day(patient):
    result = record(
        patient, [weight("2026-03-10T09:00:00-04:00")], channel=APP, received_at=RECEIVED
    )

    assert result.results[0].status == "created"
    assert Reading.objects.get(patient=patient).entry == "manual"
    assert days_of(patient) == []


@pytest.mark.django_db
def test_an_app_item_synced_from_a_device_counts(patient):
    record(
        patient,
        [weight("2026-03-10T09:00:00-04:00", entry="device")],
        channel=APP,
        received_at=RECEIVED,
    )

    assert days_of(patient) == [date(2026, 3, 10)]


@pytest.mark.django_db
def test_a_medication_dose_counts_no_day_even_from_a_device(patient):
    dose = ReadingItemFactory(
        type="dose",
        measured_at="2026-03-10T08:05:00-04:00",
        scheduled_for="2026-03-10T08:00:00-04:00",
    )

    result = record(patient, [dose], channel=DEVICE_KEY, received_at=RECEIVED)

    assert result.results[0].status == "created"
    assert Reading.objects.get(patient=patient).metric == "dose"
    assert days_of(patient) == []


@pytest.mark.django_db
def test_a_resent_reading_adds_no_day(patient):
    # given: a stored reading whose day was then removed
    item = weight("2026-03-10T09:00:00-04:00")
    record(patient, [item], channel=DEVICE_KEY, received_at=RECEIVED)
    DeviceDay.objects.filter(patient=patient).delete()

    # when: the same reading is sent again
    result = record(patient, [item], channel=DEVICE_KEY, received_at=RECEIVED)

    # then: a duplicate creates nothing, not even its day
    assert result.results[0].status == "duplicate"
    assert days_of(patient) == []


@pytest.mark.django_db
def test_several_readings_of_one_day_are_one_day(patient):
    items = [weight("2026-03-10T07:00:00-04:00"), weight("2026-03-10T21:00:00-04:00")]

    record(patient, items, channel=DEVICE_KEY, received_at=RECEIVED)
    record(patient, [weight("2026-03-10T12:00:00-04:00")], channel=DEVICE_KEY, received_at=RECEIVED)

    assert days_of(patient) == [date(2026, 3, 10)]
    assert Reading.objects.filter(patient=patient).count() == 3


@pytest.mark.django_db
def test_the_day_is_the_patients_local_day_across_midnight(patient):
    # 03:30 UTC on 11 March is 23:30 EDT on 10 March; 04:30 UTC is 00:30 EDT on 11 March.
    items = [weight("2026-03-11T03:30:00Z"), weight("2026-03-12T04:30:00Z")]

    record(patient, items, channel=DEVICE_KEY, received_at=RECEIVED)

    assert days_of(patient) == [date(2026, 3, 10), date(2026, 3, 12)]


@pytest.mark.django_db
def test_the_local_day_follows_the_zones_dst_change(patient):
    # New York springs forward on 8 March 2026 (02:00 EST -> 03:00 EDT): local midnight is
    # 05:00 UTC before the change and 04:00 UTC after it.
    items = [
        weight("2026-03-08T04:59:00Z"),  # 7 March, 23:59 EST
        weight("2026-03-09T03:59:00Z"),  # 8 March, 23:59 EDT
        weight("2026-03-10T04:00:00Z"),  # 10 March, 00:00 EDT
    ]

    record(patient, items, channel=DEVICE_KEY, received_at=RECEIVED)

    assert days_of(patient) == [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 10)]


@pytest.mark.django_db
def test_a_blood_pressure_and_its_pulse_row_are_one_day(patient):
    bp = ReadingItemFactory(
        type="blood_pressure", measured_at="2026-03-10T23:50:00-04:00", pulse=72
    )

    record(patient, [bp], channel=DEVICE_KEY, received_at=RECEIVED)

    assert sorted(Reading.objects.filter(patient=patient).values_list("metric", flat=True)) == [
        "blood_pressure",
        "heart_rate",
    ]
    assert days_of(patient) == [date(2026, 3, 10)]


@pytest.mark.django_db
def test_a_typed_blood_pressure_and_its_pulse_count_no_day(patient):
    bp = ReadingItemFactory(
        type="blood_pressure", measured_at="2026-03-10T09:00:00-04:00", pulse=72
    )

    record(patient, [bp], channel=APP, received_at=RECEIVED)

    assert Reading.objects.filter(patient=patient).count() == 2
    assert days_of(patient) == []


@pytest.mark.django_db
def test_days_are_the_patients_own(patient, other_patient):
    # other_patient lives in Europe/Berlin: the same instant is another local day there.
    instant = "2026-03-10T23:30:00-04:00"  # 11 March, 04:30 CET

    record(patient, [weight(instant)], channel=DEVICE_KEY, received_at=RECEIVED)
    record(other_patient, [weight(instant)], channel=DEVICE_KEY, received_at=RECEIVED)

    assert days_of(patient) == [date(2026, 3, 10)]
    assert days_of(other_patient) == [date(2026, 3, 11)]
