"""POST /api/v1/readings and the reading lists, over HTTP, against the docs/api.md contract."""

import json
import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from monitoring.auth import issue_app_token
from monitoring.models import Reading, ReadingSource
from monitoring.units import metric_units
from tests.factories import ReadingFactory, ReadingItemFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED = "2026-03-01T12:00:00+00:00"
READINGS = "/api/v1/readings"
RESULT_STATUSES = {"created", "duplicate", "conflict", "rejected"}


@pytest.fixture(autouse=True)
def _frozen_clock(request, time_machine):
    # Requests run at NOW so received_at and the future-skew limit are exact. The live-server
    # race tests keep the real clock: their server threads, sockets and pools need time to move.
    if "live_server" not in request.fixturenames:
        time_machine.move_to(NOW, tick=False)


def post(client, body):
    return client.post(READINGS, body, format="json")


def post_raw(client, data, content_type="application/json"):
    return client.post(READINGS, data=data, content_type=content_type)


def patient_readings(patient_id: int) -> str:
    return f"/api/v1/patients/{patient_id}/readings"


# --- POST: the response --------------------------------------------------------------------


def test_a_batch_answers_201_with_a_result_per_item_in_request_order(patient, patient_client):
    # given: the docs/api.md example: one new, one already stored, one implausible
    stored = ReadingItemFactory(value=5.4, unit="mmol/L")
    assert post(patient_client, stored).status_code == 201
    new = ReadingItemFactory(type="blood_pressure", systolic=142, diastolic=91)
    implausible = ReadingItemFactory(value=2000, unit="mg/dL")

    # when
    response = post(patient_client, {"readings": [new, stored, implausible]})

    # then
    assert response.status_code == 201
    assert response.json() == {
        "created": 1,
        "duplicates": 1,
        "conflicts": 0,
        "rejected": 1,
        "results": [
            {"id": new["id"], "status": "created"},
            {"id": stored["id"], "status": "duplicate"},
            {
                "id": implausible["id"],
                "status": "rejected",
                "errors": {
                    "value": ["glucose 2000 mg/dL is outside the plausible range 10–1000 mg/dL"]
                },
            },
        ],
    }
    assert Reading.objects.filter(patient=patient).count() == 2


def test_a_batch_that_creates_nothing_answers_200(patient, patient_client):
    item = ReadingItemFactory()
    post(patient_client, {"readings": [item]})

    response = post(patient_client, {"readings": [item, ReadingItemFactory(value=None)]})

    assert response.status_code == 200
    counts = {key: value for key, value in response.json().items() if key != "results"}
    assert counts == {"created": 0, "duplicates": 1, "conflicts": 0, "rejected": 1}
    assert Reading.objects.count() == 1


def test_a_batch_of_only_rejected_items_answers_200_and_stores_nothing(patient_client):
    stone = ReadingItemFactory(unit="stone")

    response = post(patient_client, {"readings": [{}, stone]})

    assert response.status_code == 200
    assert response.json() == {
        "created": 0,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 2,
        "results": [
            {
                "id": None,
                "status": "rejected",
                "errors": {
                    "id": ["This field is required: a UUID made by the client."],
                    "type": ["This field is required."],
                },
            },
            {
                "id": stone["id"],
                "status": "rejected",
                "errors": {"unit": ["'stone' is not a unit for glucose; one of: mg/dL, mmol/L."]},
            },
        ],
    }
    assert Reading.objects.count() == 0


def test_a_single_reading_object_is_a_batch_of_one(patient, patient_client):
    item = ReadingItemFactory(type="weight", value=176.4, unit="lb")

    response = post(patient_client, item)

    assert response.status_code == 201
    assert response.json()["results"] == [{"id": item["id"], "status": "created"}]
    assert Reading.objects.filter(patient=patient).count() == 1


def test_a_bare_list_of_readings_is_a_batch(patient_client):
    items = [ReadingItemFactory(), ReadingItemFactory(type="spo2")]

    response = post(patient_client, items)

    assert response.status_code == 201
    assert response.json()["created"] == 2
    assert Reading.objects.count() == 2


def test_a_conflict_over_http_keeps_the_stored_reading(patient_client):
    item = ReadingItemFactory(value=112)
    post(patient_client, item)
    before = Reading.objects.values().get()

    response = post(patient_client, {**item, "value": 250})

    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "id": item["id"],
            "status": "conflict",
            "errors": {"id": ["A reading with this id is already stored with other content."]},
        }
    ]
    assert Reading.objects.values().get() == before


def test_every_class_of_bad_item_gets_its_reason_while_valid_siblings_are_stored(
    patient, patient_client
):
    # given
    valid = [ReadingItemFactory(), ReadingItemFactory(type="inr"), ReadingItemFactory(type="dose")]
    bad = [
        ReadingItemFactory(id=12345),
        ReadingItemFactory(type="cholesterol"),
        ReadingItemFactory(measured_at="2026-03-01T07:30:00"),
        ReadingItemFactory(measured_at=(NOW + timedelta(minutes=6)).isoformat()),
        ReadingItemFactory(value=True),
        ReadingItemFactory(type="weight", unit=None),
        ReadingItemFactory(type="blood_pressure", systolic=80, diastolic=80),
        ReadingItemFactory(type="dose", status="maybe"),
        ReadingItemFactory(context="lunch"),
        "not an object",
    ]

    # when
    response = post(patient_client, {"readings": [valid[0], *bad, valid[1], valid[2]]})

    # then
    assert response.status_code == 201
    results = response.json()["results"]
    assert [result["status"] for result in results] == [
        "created",
        *["rejected"] * 10,
        "created",
        "created",
    ]
    assert [list(result.get("errors", {})) for result in results[1:11]] == [
        ["id"],
        ["type"],
        ["measured_at"],
        ["measured_at"],
        ["value"],
        ["unit"],
        ["diastolic"],
        ["status"],
        ["context"],
        ["non_field_errors"],
    ]
    assert sorted(Reading.objects.filter(patient=patient).values_list("metric", flat=True)) == [
        "dose",
        "glucose",
        "inr",
    ]


def test_measured_at_exactly_five_minutes_ahead_is_accepted_over_http(patient_client):
    response = post(patient_client, ReadingItemFactory(measured_at="2026-03-01T12:05:00Z"))

    assert response.status_code == 201
    assert Reading.objects.get().measured_at == NOW + timedelta(minutes=5)


def test_the_patient_comes_from_the_credential_never_from_the_body(
    patient, other_patient, patient_client
):
    item = ReadingItemFactory(patient=other_patient.pk)

    response = post(patient_client, {"readings": [item, ReadingItemFactory()]})

    assert response.json()["results"][0]["errors"] == {
        "patient": ["Not a field of a glucose reading."]
    }
    assert Reading.objects.filter(patient=other_patient).count() == 0
    assert Reading.objects.filter(patient=patient).count() == 1


def test_a_device_serial_with_a_nul_character_is_rejected_not_a_server_error(patient_client):
    response = post(
        patient_client,
        {"readings": [ReadingItemFactory(device="GM\x007"), ReadingItemFactory(device="GM-7")]},
    )

    assert response.status_code == 201
    assert [result["status"] for result in response.json()["results"]] == ["rejected", "created"]
    assert list(Reading.objects.values_list("device_serial", flat=True)) == ["GM-7"]


def test_a_measured_at_before_year_one_in_utc_is_rejected_and_the_list_still_reads(
    patient_client,
):
    response = post(
        patient_client,
        {
            "readings": [
                ReadingItemFactory(measured_at="0001-01-01T00:00:00+05:00"),
                ReadingItemFactory(),
            ]
        },
    )

    assert [result["status"] for result in response.json()["results"]] == ["rejected", "created"]
    assert Reading.objects.count() == 1
    assert patient_client.get(READINGS).status_code == 200


def test_an_offset_postgresql_cannot_store_rejects_only_its_item(patient, patient_client):
    # given: +16:00 once made the whole batch a 500 (PostgreSQL stores offsets to ±15:59)
    before, after = ReadingItemFactory(), ReadingItemFactory(type="dose")
    odd = ReadingItemFactory(measured_at="2026-03-01T23:30:00+16:00")

    # when
    response = post(patient_client, {"readings": [before, odd, after]})

    # then
    assert response.status_code == 201
    assert response.json()["results"] == [
        {"id": before["id"], "status": "created"},
        {
            "id": odd["id"],
            "status": "rejected",
            "errors": {
                "measured_at": [
                    "The UTC offset +16:00 is not a real one: offsets lie between -14:00 and "
                    "+14:00."
                ]
            },
        },
        {"id": after["id"], "status": "created"},
    ]
    assert sorted(Reading.objects.filter(patient=patient).values_list("metric", flat=True)) == [
        "dose",
        "glucose",
    ]


# The contract (the issue "Alerts a clinician can trust"): a UTC offset within ±14:00, an
# instant from VIGIL_EARLIEST_MEASUREMENT to VIGIL_FUTURE_SKEW past now.
MAX_OFFSET = timedelta(hours=14)
# Any two-digit offset a client may send, "Z" too: well-formed, and for most not a real one.
OFFSETS = st.one_of(
    st.just("Z"),
    st.tuples(st.sampled_from("+-"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.sampled_from("+-"), st.integers(13, 16), st.sampled_from([0, 1, 59])),
)
# Local wall times over datetime's whole range, and close to each end of the accepted one.
WALL_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(min_value=datetime(1999, 12, 30), max_value=datetime(2000, 1, 2)),
    st.datetimes(min_value=datetime(2026, 2, 28), max_value=datetime(2026, 3, 2)),
    st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)]),
)


def spelled(offset) -> str:
    return offset if offset == "Z" else f"{offset[0]}{offset[1]:02d}:{offset[2]:02d}"


def is_accepted(wall: datetime, offset) -> bool:
    """The contract, computed apart from the product's parser."""
    if offset == "Z":
        stated = timedelta(0)
    else:
        sign, hours, minutes = offset
        stated = timedelta(hours=hours, minutes=minutes) * (1 if sign == "+" else -1)
        if minutes >= 60 or abs(stated) > MAX_OFFSET:
            return False
    try:
        instant = wall.replace(tzinfo=UTC) - stated
    except OverflowError:  # outside years 1-9999 in UTC
        return False
    return settings.VIGIL_EARLIEST_MEASUREMENT <= instant <= NOW + settings.VIGIL_FUTURE_SKEW


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    # One patient and client for every example: each example's readings have new ids.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    stamps=st.lists(st.tuples(WALL_TIMES, OFFSETS), min_size=1, max_size=6),
    valid_first=st.booleans(),
)
def test_no_timestamp_fails_a_batch_or_a_valid_sibling(
    patient, patient_client, stamps, valid_first
):
    # given: valid readings interleaved with readings measured at the generated timestamps
    valid = [ReadingItemFactory() for _ in range(len(stamps) + 1)]
    stamped = [
        ReadingItemFactory(measured_at=f"{wall.isoformat(timespec='seconds')}{spelled(offset)}")
        for wall, offset in stamps
    ]
    batch = [valid[0]] if valid_first else []
    for item, sibling in zip(stamped, valid[1:], strict=True):
        batch += [item, sibling]

    # when
    response = post(patient_client, {"readings": batch})

    # then
    assert response.status_code in (200, 201)
    results = {result["id"]: result for result in response.json()["results"]}
    for item in batch:
        if item in valid:
            assert results[item["id"]] == {"id": item["id"], "status": "created"}
    expected = [is_accepted(wall, offset) for wall, offset in stamps]
    for item, accepted in zip(stamped, expected, strict=True):
        if accepted:
            assert results[item["id"]] == {"id": item["id"], "status": "created"}
        else:
            assert results[item["id"]]["status"] == "rejected"
            assert list(results[item["id"]]["errors"]) == ["measured_at"]
            assert len(results[item["id"]]["errors"]["measured_at"]) == 1
    created = [item["id"] for item in batch if item in valid or expected[stamped.index(item)]]
    ids = [item["id"] for item in batch]
    assert sorted(
        str(client_id)
        for client_id in Reading.objects.filter(client_id__in=ids).values_list(
            "client_id", flat=True
        )
    ) == sorted(created)


# --- POST: malformed bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('"readings"', 'The body must be a JSON object: {"readings": [...]} or a single reading.'),
        ("42", 'The body must be a JSON object: {"readings": [...]} or a single reading.'),
        ("null", 'The body must be a JSON object: {"readings": [...]} or a single reading.'),
        ("true", 'The body must be a JSON object: {"readings": [...]} or a single reading.'),
        ('{"readings": "x"}', "'readings' must be a list of reading objects."),
        ('{"readings": null}', "'readings' must be a list of reading objects."),
        ('{"readings": {"id": "x"}}', "'readings' must be a list of reading objects."),
        ('{"readings": []}', "A batch needs at least 1 reading."),
        ("[]", "A batch needs at least 1 reading."),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused_with_a_reason(patient_client, body, detail):
    response = post_raw(patient_client, body)

    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert Reading.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "Expecting property name enclosed in double quotes"),
        (b'{"readings": [', "Expecting value"),
        (b"readings=1", "Expecting value"),
        (b'{"id": "x"} trailing', "Extra data"),
        (b'{"readings": ["\xff\xfe"]}', "'utf-8' codec can't decode byte 0xff"),
    ],
    ids=["unclosed-object", "unclosed-list", "form-encoded", "trailing-garbage", "invalid-utf8"],
)
def test_a_body_that_is_not_json_is_refused_with_the_parser_reason(patient_client, body, detail):
    response = post_raw(patient_client, body)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"JSON parse error - {detail}")
    assert Reading.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            b'{"readings": [{"id": "x", "value": NaN}]}',
            "Out of range float values are not JSON compliant: 'NaN'",
        ),
        (
            b'{"readings": [{"id": "x", "value": Infinity}]}',
            "Out of range float values are not JSON compliant: 'Infinity'",
        ),
        (b"[" * 100_000, "nested too deeply."),
        (
            b'{"readings": [{"id": "\\ud800", "type": "glucose"}]}',
            "a string holds an unpaired surrogate (\\ud800-\\udfff).",
        ),
    ],
    ids=["nan", "infinity", "nested-100000-deep", "lone-surrogate"],
)
def test_json_that_python_reads_but_a_reading_cannot_hold_is_refused(patient_client, body, detail):
    response = post_raw(patient_client, body)

    assert response.status_code == 400
    assert response.json() == {"detail": f"JSON parse error - {detail}"}
    assert Reading.objects.count() == 0


def test_a_surrogate_pair_escape_is_an_ordinary_character(patient_client):
    body = json.dumps({"readings": [ReadingItemFactory(device="GM-🩸")]})
    assert "GM-\\ud83e\\ude78" in body  # json.dumps escapes it as a surrogate pair

    response = post_raw(patient_client, body)

    assert response.status_code == 201
    assert Reading.objects.get().device_serial == "GM-🩸"


def test_an_empty_body_is_refused_with_a_reason(patient_client):
    response = post_raw(patient_client, b"")

    assert response.status_code == 400
    assert response.json() == {
        "detail": 'The body is empty: send {"readings": [...]} or a single reading.'
    }
    assert Reading.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ('{"readings": []}', "text/plain"),
        ("readings=1", "application/x-www-form-urlencoded"),
        ("<readings/>", "application/xml"),
    ],
)
def test_a_body_that_is_not_declared_json_is_refused_with_415(patient_client, data, content_type):
    response = post_raw(patient_client, data, content_type=content_type)

    assert response.status_code == 415
    assert response.json() == {"detail": f'Unsupported media type "{content_type}" in request.'}
    assert Reading.objects.count() == 0


def test_a_json_batch_sent_as_plain_text_stores_nothing(patient_client):
    response = post_raw(
        patient_client, json.dumps({"readings": [ReadingItemFactory()]}), content_type="text/plain"
    )

    assert response.status_code == 415
    assert Reading.objects.count() == 0


def test_a_batch_of_exactly_500_readings_is_stored(patient, patient_client):
    items = [ReadingItemFactory() for _ in range(500)]

    response = post(patient_client, {"readings": items})

    assert response.status_code == 201
    assert response.json()["created"] == 500
    assert Reading.objects.filter(patient=patient).count() == 500


def test_a_batch_of_501_readings_is_refused_whole(patient_client):
    items = [ReadingItemFactory() for _ in range(501)]

    response = post(patient_client, {"readings": items})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "A batch holds at most 500 readings; this one has 501. "
        "Split it into smaller batches."
    }
    assert Reading.objects.count() == 0


def padded_to(size: int, body: dict) -> bytes:
    text = json.dumps(body).encode()
    return text + b" " * (size - len(text))  # whitespace after the value is still valid JSON


def test_a_body_over_the_upload_limit_is_refused_and_nothing_is_stored(patient_client):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = post_raw(patient_client, padded_to(limit + 1, {"readings": [ReadingItemFactory()]}))

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"The body is larger than the {limit} bytes a request may carry."
    }
    assert Reading.objects.count() == 0


def test_a_body_exactly_at_the_upload_limit_is_read(patient_client):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = post_raw(patient_client, padded_to(limit, {"readings": [ReadingItemFactory()]}))

    assert response.status_code == 201
    assert Reading.objects.count() == 1


# --- POST: no input is a server error ------------------------------------------------------

FUZZ_VALUES = [
    None, True, False, 0, -0.0, 1.5, -1, 10**400, 1e308, -1e308, "", " ", "x" * 300, "\x00",
    "NaN", "°F", "mmHg", "lb", "mmol/L", "fasting", "taken", "🩸", [], [1], {}, {"a": None},
    "2026-03-01T07:30:00+05:30", "2026-03-01T07:30:00", "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00", "2026-03-01T12:06:00Z", "7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d",
]  # fmt: skip
FUZZ_FIELDS = [
    "id", "type", "value", "unit", "systolic", "diastolic", "pulse", "measured_at", "context",
    "device", "medication", "status", "scheduled_for", "patient", "", "\x00",
]  # fmt: skip


def fuzzed_item(rng: random.Random) -> object:
    if rng.random() < 0.05:
        return rng.choice(FUZZ_VALUES)
    item = ReadingItemFactory(type=rng.choice([*metric_units(), "dose", "bogus"]))
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(FUZZ_FIELDS)
        if rng.random() < 0.2:
            item.pop(field, None)
        else:
            item[field] = rng.choice(FUZZ_VALUES)
    return item


def test_no_malformed_item_produces_a_server_error_or_an_implausible_row(patient_client):
    # given: 400 items mutated at random from valid ones (fixed seed, so failures reproduce)
    rng = random.Random(20260301)
    batches = [[fuzzed_item(rng) for _ in range(100)] for _ in range(4)]

    # when
    responses = [post(patient_client, {"readings": batch}) for batch in batches]

    # then
    assert [response.status_code for response in responses] == [
        201 if response.json()["created"] else 200 for response in responses
    ]
    results = [result for response in responses for result in response.json()["results"]]
    assert len(results) == 400
    assert {result["status"] for result in results} <= RESULT_STATUSES
    assert all(
        ("errors" in result) == (result["status"] in {"rejected", "conflict"}) for result in results
    )
    created = sum(response.json()["created"] for response in responses)
    assert created == Reading.objects.filter(part_of__isnull=True).count() > 0
    for reading in Reading.objects.exclude(metric__in=["blood_pressure", "dose"]):
        assert metric_units()[reading.metric].plausible.contains(reading.value)
    assert patient_client.get(READINGS, {"page_size": 500}).status_code == 200


# --- POST: who may post --------------------------------------------------------------------


def test_a_device_key_posts_readings_for_its_patient_as_the_device(patient, device_client):
    item = ReadingItemFactory(type="weight")

    response = post(device_client, item)

    assert response.status_code == 201
    assert Reading.objects.values_list("patient_id", "source", "device_id").get() == (
        patient.pk,
        ReadingSource.DEVICE,
        device_client.device.pk,
    )


def test_a_reading_posted_with_a_device_key_is_listed_with_that_devices_serial(
    patient, device_client, patient_client
):
    item = ReadingItemFactory(type="weight")  # the item does not repeat the serial

    post(device_client, item)

    listed = patient_client.get(READINGS).json()["results"]
    assert [(r["id"], r["source"], r["device"]) for r in listed] == [
        (item["id"], "device", device_client.device.serial)
    ]


def test_a_device_key_may_not_list_readings(patient, device_client):
    ReadingFactory(patient=patient)

    response = device_client.get(READINGS)

    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs a patient app token."}


def test_a_device_key_may_not_use_the_staff_reading_list(patient, device_client):
    response = device_client.get(patient_readings(patient.pk))

    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs a staff token."}


# --- GET: shape ----------------------------------------------------------------------------


def test_the_list_shows_each_reading_canonical_and_as_sent_newest_first(patient, patient_client):
    # given
    glucose = ReadingItemFactory(
        value=5.5, unit="mmol/L", context="fasting", device="GM-7",
        measured_at="2026-03-01T07:30:00+01:00",
    )  # fmt: skip
    bp = ReadingItemFactory(
        type="blood_pressure", systolic=142, diastolic=91, pulse=72,
        measured_at="2026-03-01T07:35:00+01:00",
    )  # fmt: skip
    dose = ReadingItemFactory(type="dose", measured_at="2026-03-01T08:04:00+01:00")
    weight = ReadingItemFactory(
        type="weight", value=176.4, unit="lb", measured_at="2026-03-01T06:58:00-05:00"
    )
    post(patient_client, {"readings": [glucose, bp, dose, weight]})
    heart_rate_id = str(Reading.objects.get(metric="heart_rate").client_id)
    common = {"received_at": RECEIVED, "source": "app", "device": None}

    # when
    response = patient_client.get(READINGS)

    # then
    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {
                "id": weight["id"], "type": "weight", "measured_at": "2026-03-01T06:58:00-05:00",
                **common, "value": 80.013694, "unit": "kg",
                "sent": {"value": 176.4, "unit": "[lb_av]"},
            },
            {
                "id": dose["id"], "type": "dose", "measured_at": "2026-03-01T08:04:00+01:00",
                **common, "medication": "warfarin-5mg", "status": "taken",
                "scheduled_for": "2026-03-01T07:00:00+00:00",
            },
            {
                "id": heart_rate_id, "type": "heart_rate",
                "measured_at": "2026-03-01T07:35:00+01:00", **common, "value": 72.0,
                "unit": "/min", "sent": {"value": 72.0, "unit": "/min"}, "part_of": bp["id"],
            },
            {
                "id": bp["id"], "type": "blood_pressure",
                "measured_at": "2026-03-01T07:35:00+01:00", **common, "systolic": 142.0,
                "diastolic": 91.0, "unit": "mm[Hg]",
            },
            {
                "id": glucose["id"], "type": "glucose",
                "measured_at": "2026-03-01T07:30:00+01:00", **common, "device": "GM-7",
                "value": 99, "unit": "mg/dL", "sent": {"value": 5.5, "unit": "mmol/L"},
                "context": "fasting",
            },
        ],
    }  # fmt: skip


TWO_UTC = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("measured_at", "instant", "echoed"),
    [
        ("2026-03-01T07:30:00+05:30", TWO_UTC, "2026-03-01T07:30:00+05:30"),
        ("2026-02-28T18:00:00-08:00", TWO_UTC, "2026-02-28T18:00:00-08:00"),
        ("2026-03-01T02:00:00Z", TWO_UTC, "2026-03-01T02:00:00+00:00"),
        (
            "2026-03-01T03:00:00.5+01:00",
            TWO_UTC + timedelta(milliseconds=500),
            "2026-03-01T03:00:00.500000+01:00",
        ),
    ],
)
def test_measured_at_is_stored_as_the_utc_instant_and_listed_in_the_offset_sent(
    patient_client, measured_at, instant, echoed
):
    post(patient_client, ReadingItemFactory(measured_at=measured_at))

    assert Reading.objects.get().measured_at == instant
    assert patient_client.get(READINGS).json()["results"][0]["measured_at"] == echoed


def test_a_patient_lists_only_their_own_readings(patient, other_patient, patient_client):
    mine = ReadingFactory(patient=patient)
    ReadingFactory(patient=other_patient)

    results = patient_client.get(READINGS).json()["results"]

    assert [result["id"] for result in results] == [str(mine.client_id)]


# --- GET: filters --------------------------------------------------------------------------


@pytest.fixture
def day_of_readings(patient):
    """Readings at 01:00, 02:00 … 06:00 UTC on 2026-03-01, alternating glucose and weight."""
    return [
        ReadingFactory(
            patient=patient,
            metric="glucose" if hour % 2 else "weight",
            measured_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
        )
        for hour in range(1, 7)
    ]


def listed_hours(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [
        datetime.fromisoformat(r["measured_at"]).astimezone(UTC).hour
        for r in response.json()["results"]
    ]


def test_the_list_is_newest_first(patient_client, day_of_readings):
    assert listed_hours(patient_client.get(READINGS)) == [6, 5, 4, 3, 2, 1]


def test_since_and_until_bound_measured_at_inclusively(patient_client, day_of_readings):
    response = patient_client.get(
        READINGS, {"since": "2026-03-01T02:00:00Z", "until": "2026-03-01T04:00:00Z"}
    )

    assert listed_hours(response) == [4, 3, 2]


def test_since_and_until_take_any_utc_offset(patient_client, day_of_readings):
    # 07:30+05:30 is 02:00 UTC; 19:00-08:00 the day before is 03:00 UTC.
    response = patient_client.get(
        READINGS, {"since": "2026-03-01T07:30:00+05:30", "until": "2026-02-28T19:00:00-08:00"}
    )

    assert listed_hours(response) == [3, 2]


def test_the_type_filter_lists_one_metric(patient_client, day_of_readings):
    response = patient_client.get(READINGS, {"type": "weight"})

    assert listed_hours(response) == [6, 4, 2]
    assert {result["type"] for result in response.json()["results"]} == {"weight"}


def test_filters_combine(patient_client, day_of_readings):
    response = patient_client.get(READINGS, {"type": "glucose", "since": "2026-03-01T02:00:00Z"})

    assert listed_hours(response) == [5, 3]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"type": "cholesterol"}, {"type": ['"cholesterol" is not a valid choice.']}),
        (
            {"since": "yesterday"},
            {
                "since": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            {"until": "2026-03-01T25:00:00Z"},
            {
                "until": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
            {"until": ["Must not be before 'since'."]},
        ),
    ],
)
def test_an_invalid_filter_is_400_with_the_reason(patient_client, day_of_readings, query, errors):
    response = patient_client.get(READINGS, query)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": errors}


# --- GET: pagination -----------------------------------------------------------------------


def test_pages_follow_next_links_without_overlap_or_gaps(patient_client, day_of_readings):
    # given
    pages = []
    url = f"{READINGS}?page_size=4"

    # when
    while url:
        response = patient_client.get(url)
        pages.append(listed_hours(response))
        url = response.json()["next"]

    # then
    assert pages == [[6, 5, 4, 3], [2, 1]]


def test_a_reading_stored_while_paging_does_not_shift_the_next_page(
    patient, patient_client, day_of_readings
):
    first = patient_client.get(READINGS, {"page_size": 3})
    ReadingFactory(patient=patient, measured_at=datetime(2026, 3, 1, 7, tzinfo=UTC))

    second = patient_client.get(first.json()["next"])

    assert listed_hours(first) == [6, 5, 4]
    assert listed_hours(second) == [3, 2, 1]


def test_readings_at_the_same_instant_page_without_overlap(patient, patient_client):
    same_instant = datetime(2026, 3, 1, 9, tzinfo=UTC)
    stored = {
        str(ReadingFactory(patient=patient, measured_at=same_instant).client_id) for _ in range(5)
    }

    seen, url = [], f"{READINGS}?page_size=2"
    while url:
        response = patient_client.get(url)
        seen += [result["id"] for result in response.json()["results"]]
        url = response.json()["next"]

    assert sorted(seen) == sorted(stored)


# --- GET: the staff list -------------------------------------------------------------------


def test_a_care_team_member_sees_the_same_list_as_the_patient(
    patient, patient_client, nurse_client
):
    post(patient_client, {"readings": [ReadingItemFactory(), ReadingItemFactory(type="dose")]})

    staff = nurse_client.get(patient_readings(patient.pk), {"type": "dose"})

    assert staff.status_code == 200
    assert staff.json() == patient_client.get(READINGS, {"type": "dose"}).json()
    assert len(staff.json()["results"]) == 1


def test_the_staff_list_rejects_an_invalid_filter(patient, nurse_client):
    response = nurse_client.get(patient_readings(patient.pk), {"type": "bp"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"type": ['"bp" is not a valid choice.']},
    }


def test_a_staff_member_of_another_team_gets_404(patient, outsider_client):
    ReadingFactory(patient=patient)

    response = outsider_client.get(patient_readings(patient.pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_patient_app_token_may_not_use_the_staff_list(patient, patient_client):
    response = patient_client.get(patient_readings(patient.pk))

    assert response.status_code == 403
    assert response.json() == {"detail": "This endpoint needs a staff token."}


# --- Racing retries (docs/architecture.md: concurrent retries of a batch deadlocked unsorted)


def live_items(count: int) -> list[dict]:
    """Valid items on the real clock (the live server does not run at NOW); every 5th a BP+pulse."""
    base = datetime.now(UTC) - timedelta(hours=2)
    return [
        ReadingItemFactory(
            measured_at=(base + timedelta(minutes=n)).isoformat(),
            **({"type": "blood_pressure", "pulse": 70} if n % 5 == 0 else {"value": 100 + n}),
        )
        for n in range(count)
    ]


def post_concurrently(base_url: str, token: str, bodies: list[dict]) -> list[httpx.Response]:
    """POST every body from its own thread, released together so the inserts overlap."""
    start = threading.Barrier(len(bodies))

    def send(body: dict) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            start.wait(timeout=30)
            return client.post(READINGS, json=body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def statuses_by_id(responses: list[httpx.Response]) -> dict[str, Counter]:
    seen: dict[str, Counter] = {}
    for response in responses:
        for result in response.json()["results"]:
            seen.setdefault(result["id"], Counter())[result["status"]] += 1
    return seen


@pytest.mark.django_db(transaction=True)
def test_racing_retries_of_the_same_batch_store_each_reading_once(live_server, patient):
    # given: one batch, sent by 8 retries at once
    items = live_items(40)
    token = issue_app_token(patient=patient)[1]

    # when
    responses = post_concurrently(live_server.url, token, [{"readings": items}] * 8)

    # then: no server error; each id created for exactly one request, duplicate for the rest
    assert sorted(response.status_code for response in responses) == [200] * 7 + [201]
    assert statuses_by_id(responses) == {
        item["id"]: Counter({"created": 1, "duplicate": 7}) for item in items
    }
    pulses = sum(1 for item in items if "pulse" in item)
    assert Reading.objects.filter(patient=patient).count() == len(items) + pulses
    assert Reading.objects.filter(patient=patient, metric="heart_rate").count() == pulses


@pytest.mark.django_db(transaction=True)
def test_racing_overlapping_batches_in_shuffled_order_store_each_reading_once(live_server, patient):
    # given: 8 batches, each a shuffled subset of 100 readings; together they hold them all
    items = live_items(100)
    rng = random.Random(8)
    batches = []
    for n in range(8):
        chosen = {item["id"]: item for item in items[n::8] + rng.sample(items, 50)}
        batch = list(chosen.values())
        rng.shuffle(batch)
        batches.append(batch)
    senders = Counter(item["id"] for batch in batches for item in batch)
    token = issue_app_token(patient=patient)[1]

    # when
    responses = post_concurrently(live_server.url, token, [{"readings": b} for b in batches])

    # then
    assert all(response.status_code in (200, 201) for response in responses), [
        (response.status_code, response.text[:200]) for response in responses
    ]
    assert statuses_by_id(responses) == {
        item_id: Counter({"created": 1, "duplicate": count - 1} if count > 1 else {"created": 1})
        for item_id, count in senders.items()
    }
    assert len(senders) == 100
    pulses = sum(1 for item in items if "pulse" in item)
    assert Reading.objects.filter(patient=patient).count() == 100 + pulses
    stored = set(Reading.objects.filter(part_of__isnull=True).values_list("client_id", flat=True))
    assert stored == {uuid.UUID(item["id"]) for item in items}
