"""Treatments and device status under a patient's base URL."""

import uuid
from datetime import UTC, datetime

import pytest

from interop.models import NightscoutDocument
from interop.nightscout.documents import NAMESPACE
from tests.interop.nightscout.conftest import fixture

pytestmark = pytest.mark.django_db

SINCE = {"find[created_at][$gte]": "2026-01-18T00:00:00Z"}


def test_the_aaps_and_loop_treatments_are_kept_and_read_back_newest_first(uploader, patient):
    treatments = fixture("treatments_batch.json")

    response = uploader.post("treatments", treatments)

    assert response.status_code == 200
    assert [(t["eventType"], t["created_at"], len(t["_id"])) for t in response.json()] == [
        ("Meal Bolus", "2026-01-18T12:00:00.000Z", 24),
        ("Correction Bolus", "2026-01-18T12:05:00.000Z", 24),
        ("Carb Correction", "2026-01-18T12:10:00.000Z", 24),
        ("Temp Basal", "2026-01-18T12:15:00.000Z", 24),
    ]
    read = uploader.get("treatments.json", SINCE).json()
    assert [t["eventType"] for t in read] == [
        "Temp Basal", "Carb Correction", "Correction Bolus", "Meal Bolus",
    ]  # fmt: skip
    assert read[3] == response.json()[0]
    assert read[3]["insulin"] == 8.1 and read[3]["pumpSerial"] == "33013206"
    # no glucose among them: no reading
    assert not patient.readings.exists()


def test_a_repost_adds_nothing(uploader):
    uploader.post("treatments", fixture("treatments_batch.json"))

    again = uploader.post("treatments.json", fixture("treatments_batch.json"))

    assert again.status_code == 200
    assert NightscoutDocument.objects.filter(collection="treatments").count() == 4


def test_a_bg_check_is_a_glucose_reading_too(uploader, patient):
    bg_check = {
        "eventType": "BG Check", "glucose": 5.5, "glucoseType": "Finger", "units": "mmol",
        "created_at": "2026-01-18T13:00:00.000+02:00", "enteredBy": "AndroidAPS",
    }  # fmt: skip

    uploader.post("treatments", bg_check)
    uploader.post("treatments", bg_check)  # a retry

    [reading] = patient.readings.all()
    assert (
        reading.metric, round(reading.value, 2), reading.sent_value, reading.sent_unit,
        reading.measured_at, reading.utc_offset_minutes, reading.entry, reading.source,
        reading.device_serial,
    ) == (
        "glucose", 99.0, 5.5, "mmol/L", datetime(2026, 1, 18, 11, 0, tzinfo=UTC), 120,
        "manual", "nightscout", "AndroidAPS",
    )  # fmt: skip
    assert reading.client_id == uuid.uuid5(NAMESPACE, "treatment:BG Check:1768734000000")
    assert NightscoutDocument.objects.filter(collection="treatments").count() == 1


def test_an_implausible_bg_check_is_kept_as_a_treatment_only(uploader, patient):
    response = uploader.post(
        "treatments",
        {"eventType": "BG Check", "glucose": 5000, "created_at": "2026-01-18T13:00:00Z"},
    )

    assert [t["glucose"] for t in response.json()] == [5000]
    assert not patient.readings.exists()


def test_device_status_is_kept_and_read_back(uploader):
    status = {
        "device": "openaps://samsung SM-G970F",
        "created_at": "2026-01-18T12:00:00.000Z",
        "pump": {"reservoir": 120.5, "battery": {"percent": 75}},
        "uploaderBattery": 80,
    }

    posted = uploader.post("devicestatus", [status, status])

    assert posted.status_code == 200
    assert NightscoutDocument.objects.filter(collection="devicestatus").count() == 1
    [read] = uploader.get("devicestatus.json", SINCE).json()
    assert read["pump"] == {"reservoir": 120.5, "battery": {"percent": 75}}
    assert read["_id"] == posted.json()[0]["_id"]


def test_a_secret_in_the_body_is_never_kept(uploader):
    uploader.post(
        "treatments",
        [{"eventType": "Note", "notes": "x", "created_at": "2026-01-18T12:00:00Z", "secret": "s"}],
    )

    assert "secret" not in NightscoutDocument.objects.get().document


def test_a_document_jsonb_cannot_hold_is_left_out_not_a_500(uploader):
    # PostgreSQL's jsonb refuses the NUL character: one such document must not fail the rest
    response = uploader.post(
        "treatments",
        [
            {"eventType": "Note", "notes": "a\u0000b", "created_at": "2026-01-18T12:00:00Z"},
            {"eventType": "Note", "notes": "fine", "created_at": "2026-01-18T12:01:00Z"},
        ],
    )
    entries = uploader.post("entries", {"type": "cal", "date": 1768732200000, "x": "\u0000"})

    assert response.status_code == 200
    assert [t["notes"] for t in response.json()] == ["fine"]
    assert (entries.status_code, entries.json()) == (200, [])
    assert list(NightscoutDocument.objects.values_list("document__notes", flat=True)) == ["fine"]
