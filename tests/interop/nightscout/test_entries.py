"""Entries in and out under a patient's base URL, as uploaders and followers use them."""

import uuid
from datetime import UTC, datetime

import pytest

from interop.models import NightscoutDocument
from interop.nightscout.documents import NAMESPACE
from monitoring.models import Reading
from tests.interop.nightscout.conftest import fixture

pytestmark = pytest.mark.django_db

DAY_MS = 1768732200000  # 2026-01-18T10:30:00Z


def readings(patient) -> list[tuple]:
    return list(
        patient.readings.order_by("measured_at").values_list(
            "metric", "value", "unit", "measured_at", "utc_offset_minutes", "source", "entry",
            "device_serial", "trend",
        )
    )  # fmt: skip


def test_the_fixtures_are_accepted_as_aaps_loop_and_legacy_dexcom_send_them(uploader, patient):
    # given: AndroidAPS's and Loop's sgv, and a legacy Dexcom sgv "5" (a string, and a
    # sensor code: SENSOR_NOT_CALIBRATED, lib/plugins/errorcodes.js)
    entries = fixture("entries_sgv_batch.json")

    response = uploader.post("entries", entries)

    # then: Nightscout's answer: 200, the stored entries in the order sent, with _id
    assert response.status_code == 200
    answer = response.json()
    assert [(e["type"], e["sgv"], e["date"], e["sysTime"], e["utcOffset"]) for e in answer] == [
        ("sgv", 120, 1768732200000, "2026-01-18T10:30:00.000Z", 0),
        ("sgv", 125, 1768732500000, "2026-01-18T10:35:00.000Z", 0),
        ("sgv", "5", 1405792155000, "2014-07-19T17:49:15.000Z", -420),
    ]
    assert [len(e["_id"]) for e in answer] == [24, 24, 24]
    assert answer[0]["_id"] == uuid.uuid5(NAMESPACE, "sgv:1768732200000").hex[:24]
    # the two glucose values are readings, with the CGM's arrow and the uploader's device
    assert readings(patient) == [
        ("glucose", 120.0, "mg/dL", datetime(2026, 1, 18, 10, 30, tzinfo=UTC), 0,
         "nightscout", "device", "AndroidAPS-DexcomG6", "Flat"),
        ("glucose", 125.0, "mg/dL", datetime(2026, 1, 18, 10, 35, tzinfo=UTC), 0,
         "nightscout", "device", "loop://iPhone", "FortyFiveUp"),
    ]  # fmt: skip
    # the sensor code is kept as Nightscout keeps it, never as a glucose of 5 mg/dL
    [code] = NightscoutDocument.objects.filter(patient=patient)
    assert (code.collection, code.key, code.document["sgv"]) == (
        "entries",
        "sgv:1405792155000",
        "5",
    )


def test_a_repost_of_the_same_type_and_date_is_a_duplicate(uploader, patient):
    entries = fixture("entries_sgv_batch.json")
    first = uploader.post("entries", entries).json()

    again = uploader.post("entries.json", entries)

    assert again.status_code == 200
    assert [e["_id"] for e in again.json()] == [e["_id"] for e in first]
    assert patient.readings.count() == 2
    assert NightscoutDocument.objects.count() == 1


def test_a_single_entry_object_and_an_sgv_as_a_string(uploader, patient):
    response = uploader.post(
        "entries",
        {"type": "sgv", "sgv": "140", "date": DAY_MS, "direction": "SingleUp", "device": "xDrip"},
    )

    assert [(e["sgv"], e["_id"]) for e in response.json()] == [
        ("140", uuid.uuid5(NAMESPACE, f"sgv:{DAY_MS}").hex[:24])
    ]
    assert patient.readings.get().value == 140.0


def test_the_offset_comes_from_datestring_else_utcoffset_else_utc(uploader, patient):
    uploader.post(
        "entries",
        [
            {"type": "sgv", "sgv": 100, "date": DAY_MS, "dateString": "2026-01-18T11:30:00+01:00"},
            {"type": "sgv", "sgv": 101, "date": DAY_MS + 300_000, "utcOffset": -300},
            {"type": "sgv", "sgv": 102, "date": DAY_MS + 600_000},
        ],
    )

    offsets = patient.readings.order_by("measured_at").values_list("utc_offset_minutes", flat=True)
    assert list(offsets) == [60, -300, 0]


def test_rejected_entries_do_not_fail_the_batch(uploader, patient):
    response = uploader.post(
        "entries",
        [
            {"type": "sgv", "sgv": 1200, "date": DAY_MS},  # beyond clinical.yaml's 1000 mg/dL
            {"type": "sgv", "sgv": "high", "date": DAY_MS + 1},  # not a number
            {"type": "sgv", "sgv": 110},  # no time
            "not an entry",
            {"type": "sgv", "sgv": 111, "date": DAY_MS + 300_000},
        ],
    )

    assert response.status_code == 200
    assert [e["sgv"] for e in response.json()] == [111]
    assert list(patient.readings.values_list("value", flat=True)) == [111.0]
    assert not NightscoutDocument.objects.exists()


def test_a_different_value_under_a_stored_type_and_date_is_not_stored(uploader, patient):
    uploader.post("entries", {"type": "sgv", "sgv": 100, "date": DAY_MS})

    response = uploader.post("entries", {"type": "sgv", "sgv": 180, "date": DAY_MS})

    assert response.json() == []
    assert list(patient.readings.values_list("value", flat=True)) == [100.0]


def test_an_mbg_is_a_manual_glucose_and_a_cal_a_document(uploader, patient):
    uploader.post(
        "entries",
        [
            {"type": "mbg", "mbg": 95, "date": DAY_MS, "device": "xDrip-Meter"},
            {"type": "cal", "date": DAY_MS + 1000, "slope": 1000, "intercept": 25000, "scale": 1},
        ],
    )

    assert list(patient.readings.values_list("value", "entry", "device_serial", "trend")) == [
        (95.0, "manual", "xDrip-Meter", "")
    ]
    [cal] = NightscoutDocument.objects.all()
    assert (cal.key, cal.document["slope"]) == (f"cal:{DAY_MS + 1000}", 1000)


def test_a_malformed_body_is_400_in_nightscouts_shape(uploader, patient):
    response = uploader.client.post(
        uploader.base + "entries", "{not json", content_type="application/json",
        headers=uploader.headers,
    )  # fmt: skip

    assert (response.status_code, response.json()) == (
        400,
        {"status": 400, "message": "Bad Request", "description": "The body must be JSON."},
    )
    assert not patient.readings.exists()


def test_more_documents_than_a_batch_holds_is_413(uploader, patient, settings):
    settings.VIGIL_MAX_BATCH = 2
    body = [{"type": "sgv", "sgv": 100, "date": DAY_MS + i} for i in range(3)]

    response = uploader.post("entries", body)

    assert response.status_code == 413
    assert response.json()["description"] == "At most 2 documents per request; this one has 3."
    assert not patient.readings.exists()


# --- Out ----------------------------------------------------------------------------------


def test_sgv_json_newest_first_in_nightscouts_fields(uploader, patient):
    uploader.post("entries", fixture("entries_sgv_batch.json"))

    response = uploader.get("entries/sgv.json", {"find[date][$gte]": "1400000000000"})

    assert response.status_code == 200
    assert response.json() == [
        {
            "_id": uuid.uuid5(NAMESPACE, "sgv:1768732500000").hex[:24], "type": "sgv",
            "sgv": 125, "date": 1768732500000, "mills": 1768732500000,
            "dateString": "2026-01-18T10:35:00.000Z", "sysTime": "2026-01-18T10:35:00.000Z",
            "utcOffset": 0, "device": "loop://iPhone", "direction": "FortyFiveUp",
        },
        {
            "_id": uuid.uuid5(NAMESPACE, "sgv:1768732200000").hex[:24], "type": "sgv",
            "sgv": 120, "date": 1768732200000, "mills": 1768732200000,
            "dateString": "2026-01-18T10:30:00.000Z", "sysTime": "2026-01-18T10:30:00.000Z",
            "utcOffset": 0, "device": "AndroidAPS-DexcomG6", "direction": "Flat",
        },
        {
            "_id": uuid.uuid5(NAMESPACE, "entries:sgv:1405792155000").hex[:24], "type": "sgv",
            "sgv": "5", "date": 1405792155000, "dateString": "2014-07-19T17:49:15.000Z",
            "sysTime": "2014-07-19T17:49:15.000Z", "utcOffset": -420, "device": "dexcom",
            "direction": "NOT COMPUTABLE",
        },
    ]  # fmt: skip


def test_count_and_date_bounds(uploader):
    uploader.post(
        "entries",
        [{"type": "sgv", "sgv": 100 + i, "date": DAY_MS + i * 300_000} for i in range(12)],
    )

    def sgvs(**query):
        return [e["sgv"] for e in uploader.get("entries/sgv.json", query).json()]

    since = {"find[date][$gte]": str(DAY_MS)}
    assert sgvs(**since) == [111, 110, 109, 108, 107, 106, 105, 104, 103, 102]  # count 10
    assert sgvs(count="3", **since) == [111, 110, 109]
    assert sgvs(count="0", **since) == list(range(111, 99, -1))  # MongoDB's limit(0): all
    assert sgvs(
        **{"find[date][$gte]": str(DAY_MS + 300_000), "find[date][$lte]": str(DAY_MS + 900_000)}
    ) == [103, 102, 101]
    assert sgvs(**{"find[date][$gt]": str(DAY_MS + 3_000_000)}) == [111]
    assert sgvs(**{"find[dateString][$gte]": "2026-01-18T11:20:00.000Z"}) == [111, 110]
    assert sgvs(
        **{"find[dateString][$gte]": "2026-01-18", "find[dateString][$lte]": "2026-01-18T10:35:00Z"}
    ) == [101, 100]
    # No bound on the date: the last four days (lib/server/query.js deltaAgo), none here.
    assert sgvs() == []
    assert [e["sgv"] for e in uploader.get("entries/current.json").json()] == [111]


def test_a_bad_date_bound_is_400(uploader):
    response = uploader.get("entries.json", {"find[date][$gte]": "yesterday"})

    assert (response.status_code, response.json()["message"]) == (400, "Bad Request")


def test_entries_json_shows_every_glucose_of_the_patient(uploader, patient_client):
    # given: a meter reading through the patient's app beside the CGM's entries
    patient_client.post(
        "/api/v1/readings",
        {"id": str(uuid.uuid4()), "type": "glucose", "value": 5.5, "unit": "mmol/L",
         "measured_at": "2026-01-18T10:40:00+00:00", "device": "Contour"},
        format="json",
    )  # fmt: skip
    uploader.post("entries", fixture("entries_sgv_batch.json")[:2])
    uploader.post("entries", {"type": "cal", "date": DAY_MS + 1, "slope": 900})

    answer = uploader.get("entries.json", {"find[date][$gte]": str(DAY_MS)}).json()

    assert [(e["type"], e.get("sgv") or e.get("mbg") or e.get("slope")) for e in answer] == [
        ("mbg", 99), ("sgv", 125), ("cal", 900), ("sgv", 120),
    ]  # fmt: skip
    assert [
        e["type"]
        for e in uploader.get("entries/mbg.json", {"find[date][$gte]": str(DAY_MS)}).json()
    ] == ["mbg"]


def test_the_rest_api_shows_the_nightscout_reading_with_its_device_and_trend(
    uploader, patient, nurse_client
):
    uploader.post("entries", fixture("entries_sgv_batch.json")[:1])

    [reading] = nurse_client.get(f"/api/v1/patients/{patient.pk}/readings").json()["results"]

    assert {k: reading[k] for k in ("source", "entry", "device", "trend", "value", "unit")} == {
        "source": "nightscout",
        "entry": "device",
        "device": "AndroidAPS-DexcomG6",
        "trend": "Flat",
        "value": 120.0,
        "unit": "mg/dL",
    }
    assert Reading.objects.get().client_id == uuid.uuid5(NAMESPACE, "sgv:1768732200000")


def test_39_is_the_sensors_low_a_reading_and_below_it_a_status_code(uploader, patient):
    # lib/client/index.js: below 39 an error code (?SN, ?NC …), 39 "LOW" (under 40 mg/dL)
    response = uploader.post(
        "entries",
        [
            {"type": "sgv", "sgv": 39, "date": DAY_MS, "direction": "DoubleDown"},
            {"type": "sgv", "sgv": 38, "date": DAY_MS + 300_000},
            {"type": "sgv", "sgv": 10, "date": DAY_MS + 600_000},
        ],
    )

    assert [e["sgv"] for e in response.json()] == [39, 38, 10]
    assert list(patient.readings.values_list("value", "trend")) == [(39.0, "DoubleDown")]
    assert sorted(NightscoutDocument.objects.values_list("key", flat=True)) == [
        f"sgv:{DAY_MS + 300_000}",
        f"sgv:{DAY_MS + 600_000}",
    ]
