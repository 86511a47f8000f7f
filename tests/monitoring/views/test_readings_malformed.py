"""POST /api/v1/readings (monitoring/views/readings.py), over HTTP, against the docs/api.md
contract: malformed bodies, and no input is a server error."""

import json
import random

import pytest
from django.conf import settings

from monitoring.models import Reading
from monitoring.units import metric_units
from tests.factories import ReadingItemFactory
from tests.monitoring.views.readings_helpers import (
    READINGS,
    RESULT_STATUSES,
    _frozen_clock,  # noqa: F401
    post,
    post_raw,
)

pytestmark = pytest.mark.django_db


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
