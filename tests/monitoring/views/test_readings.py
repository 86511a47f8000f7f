"""POST /api/v1/readings (monitoring/views/readings.py), over HTTP, against the docs/api.md
contract: the response, who may post, racing retries."""

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
from tests.factories import ReadingFactory, ReadingItemFactory
from tests.monitoring.views.readings_helpers import (
    NOW,
    READINGS,
    _frozen_clock,  # noqa: F401
    patient_readings,
    post,
)

pytestmark = pytest.mark.django_db


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
