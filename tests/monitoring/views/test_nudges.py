"""The patient app's nudge endpoints: GET /api/v1/nudges, POST /api/v1/nudges/{id}/opened,
and push-token registration (POST / DELETE /api/v1/push-tokens)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import Nudge, PushToken
from tests.factories import NudgeFactory, PushTokenFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
FCM_TOKEN = "ZXhhbXBsZS1pbnN0YWxs:APA91bHun4MxP5egoKMwt2KZFBaFUH-1zK"


@pytest.fixture(autouse=True)
def _clock(time_machine):
    time_machine.move_to(NOW, tick=False)


def as_listed(nudge: Nudge) -> dict:
    nudge.refresh_from_db()
    return {
        "id": nudge.pk,
        "purpose": nudge.purpose,
        "text": nudge.text,
        "channel": nudge.channel,
        "status": nudge.status,
        "created_at": nudge.created_at.isoformat().replace("+00:00", "Z"),
        "sent_at": nudge.sent_at and nudge.sent_at.isoformat().replace("+00:00", "Z"),
        "opened_at": nudge.opened_at and nudge.opened_at.isoformat().replace("+00:00", "Z"),
    }


# --- GET /api/v1/nudges -------------------------------------------------------------------


def test_the_patient_lists_their_own_nudges_newest_first(patient, other_patient, patient_client):
    # given
    older = NudgeFactory(
        patient=patient,
        purpose="dose_due",
        channel="sms",
        status="sent",
        text="Your 8:00 dose is due.",
        created_at=NOW - 60 * MINUTE,
        sent_at=NOW - 59 * MINUTE,
        opened_at=NOW - 30 * MINUTE,
    )
    newer = NudgeFactory(patient=patient, channel="push", status="failed", created_at=NOW)
    NudgeFactory(patient=other_patient, created_at=NOW - MINUTE)

    # when
    response = patient_client.get("/api/v1/nudges")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [as_listed(newer), as_listed(older)],
    }
    assert response.json()["results"][1] == {
        "id": older.pk,
        "purpose": "dose_due",
        "text": "Your 8:00 dose is due.",
        "channel": "sms",
        "status": "sent",
        "created_at": "2026-03-01T11:00:00Z",
        "sent_at": "2026-03-01T11:01:00Z",
        "opened_at": "2026-03-01T11:30:00Z",
    }


def test_the_list_is_paginated_by_cursor(patient, patient_client):
    nudges = [NudgeFactory(patient=patient, created_at=NOW - n * MINUTE) for n in range(3)]

    first = patient_client.get("/api/v1/nudges", {"page_size": 2}).json()
    second = patient_client.get(first["next"]).json()

    assert [n["id"] for n in first["results"]] == [nudges[0].pk, nudges[1].pk]
    assert [n["id"] for n in second["results"]] == [nudges[2].pk]
    assert second["next"] is None


def test_a_patient_without_nudges_gets_an_empty_page(patient, other_patient, patient_client):
    NudgeFactory(patient=other_patient)

    response = patient_client.get("/api/v1/nudges")

    assert (response.status_code, response.json()) == (
        200,
        {"next": None, "previous": None, "results": []},
    )


# --- POST /api/v1/nudges/{id}/opened ------------------------------------------------------


def test_opening_a_nudge_records_when_and_answers_with_the_nudge(patient, patient_client):
    nudge = NudgeFactory(patient=patient, status="sent", sent_at=NOW - 5 * MINUTE)

    response = patient_client.post(f"/api/v1/nudges/{nudge.pk}/opened")

    assert response.status_code == 200
    assert Nudge.objects.get(pk=nudge.pk).opened_at == NOW
    assert response.json() == as_listed(nudge)
    assert response.json()["opened_at"] == "2026-03-01T12:00:00Z"


def test_opening_again_keeps_the_first_time(patient, patient_client, time_machine):
    nudge = NudgeFactory(patient=patient, status="sent", sent_at=NOW - 5 * MINUTE)
    patient_client.post(f"/api/v1/nudges/{nudge.pk}/opened")

    time_machine.move_to(NOW + 10 * MINUTE, tick=False)
    response = patient_client.post(f"/api/v1/nudges/{nudge.pk}/opened")

    assert response.status_code == 200
    assert response.json()["opened_at"] == "2026-03-01T12:00:00Z"
    assert Nudge.objects.get(pk=nudge.pk).opened_at == NOW


def test_another_patients_nudge_is_not_found_and_stays_unopened(other_patient, patient_client):
    theirs = NudgeFactory(patient=other_patient, status="sent", sent_at=NOW)

    response = patient_client.post(f"/api/v1/nudges/{theirs.pk}/opened")

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert Nudge.objects.get(pk=theirs.pk).opened_at is None


def test_a_nudge_that_does_not_exist_is_not_found(patient, patient_client):
    response = patient_client.post("/api/v1/nudges/987654/opened")

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


# --- Who may call them --------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/nudges", None),
    ("post", "/api/v1/nudges/{id}/opened", None),
    ("post", "/api/v1/push-tokens", {"token": FCM_TOKEN, "platform": "android"}),
    ("delete", "/api/v1/push-tokens", {"token": FCM_TOKEN}),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_staff_tokens_and_device_keys_are_refused(
    patient, nurse_client, device_client, method, path, body
):
    nudge = NudgeFactory(patient=patient)
    PushTokenFactory(patient=patient, token=FCM_TOKEN)
    url = path.format(id=nudge.pk)

    for client in (nurse_client, device_client):
        response = getattr(client, method)(url, body, format="json")

        assert (response.status_code, response.json()) == (
            403,
            {"detail": "This endpoint needs a patient app token."},
        )
    assert Nudge.objects.get(pk=nudge.pk).opened_at is None
    assert list(PushToken.objects.values_list("patient_id", "token", "platform")) == [
        (patient.pk, FCM_TOKEN, "android")
    ]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_no_credential_is_401(patient, anonymous_client, method, path, body):
    nudge = NudgeFactory(patient=patient)

    response = getattr(anonymous_client, method)(path.format(id=nudge.pk), body, format="json")

    assert response.status_code == 401
    assert Nudge.objects.get(pk=nudge.pk).opened_at is None
    assert PushToken.objects.count() == 0


# --- POST /api/v1/push-tokens -------------------------------------------------------------


def test_registering_a_push_token_stores_it_for_the_patient(patient, patient_client):
    response = patient_client.post(
        "/api/v1/push-tokens", {"token": FCM_TOKEN, "platform": "ios"}, format="json"
    )

    assert response.status_code == 201
    token = PushToken.objects.get()
    assert (token.patient_id, token.token, token.platform, token.retired_at) == (
        patient.pk,
        FCM_TOKEN,
        "ios",
        None,
    )
    assert response.json() == {
        "id": token.pk,
        "token": FCM_TOKEN,
        "platform": "ios",
        "created_at": "2026-03-01T12:00:00Z",
    }


def test_registering_the_same_token_again_keeps_one_row(patient, patient_client):
    first = patient_client.post(
        "/api/v1/push-tokens", {"token": FCM_TOKEN, "platform": "android"}, format="json"
    )

    again = patient_client.post(
        "/api/v1/push-tokens", {"token": FCM_TOKEN, "platform": "android"}, format="json"
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert PushToken.objects.count() == 1


def test_registering_a_retired_token_again_makes_it_active(patient, patient_client):
    retired = PushTokenFactory(patient=patient, token=FCM_TOKEN, retired_at=NOW - MINUTE)

    response = patient_client.post(
        "/api/v1/push-tokens", {"token": FCM_TOKEN, "platform": "web"}, format="json"
    )

    assert (response.status_code, response.json()["id"]) == (200, retired.pk)
    assert list(PushToken.objects.values_list("id", "platform", "retired_at")) == [
        (retired.pk, "web", None)
    ]


def test_a_token_registered_by_another_patient_is_taken_from_them(
    patient, other_patient, patient_client
):
    # The phone changed hands: the other patient's nudges must not show on it any more.
    PushTokenFactory(patient=other_patient, token=FCM_TOKEN)
    kept = PushTokenFactory(patient=other_patient, token="dGhlaXItb3duLXBob25l:APA91b")

    response = patient_client.post(
        "/api/v1/push-tokens", {"token": FCM_TOKEN, "platform": "android"}, format="json"
    )

    assert response.status_code == 201
    assert sorted(PushToken.objects.values_list("patient_id", "token")) == sorted(
        [(patient.pk, FCM_TOKEN), (other_patient.pk, kept.token)]
    )


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"token": FCM_TOKEN, "platform": "symbian"},
            {"platform": ['"symbian" is not a valid choice.']},
        ),
        ({"platform": "android"}, {"token": ["This field is required."]}),
        ({"token": "", "platform": "android"}, {"token": ["This field may not be blank."]}),
        (
            {"token": "x" * 4097, "platform": "android"},
            {"token": ["Ensure this field has no more than 4096 characters."]},
        ),
    ],
)  # fmt: skip
def test_an_invalid_registration_is_400_and_stores_nothing(patient, patient_client, body, errors):
    response = patient_client.post("/api/v1/push-tokens", body, format="json")

    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Invalid input.", "errors": errors},
    )
    assert PushToken.objects.count() == 0


# --- DELETE /api/v1/push-tokens -----------------------------------------------------------


def test_forgetting_a_push_token_deletes_it(patient, patient_client):
    PushTokenFactory(patient=patient, token=FCM_TOKEN)
    other = PushTokenFactory(patient=patient)

    response = patient_client.delete("/api/v1/push-tokens", {"token": FCM_TOKEN}, format="json")

    assert (response.status_code, response.content) == (204, b"")
    assert list(PushToken.objects.values_list("id", flat=True)) == [other.pk]


def test_forgetting_a_token_twice_or_one_never_registered_is_still_204(patient, patient_client):
    PushTokenFactory(patient=patient, token=FCM_TOKEN)
    patient_client.delete("/api/v1/push-tokens", {"token": FCM_TOKEN}, format="json")

    response = patient_client.delete("/api/v1/push-tokens", {"token": FCM_TOKEN}, format="json")

    assert response.status_code == 204
    assert PushToken.objects.count() == 0


def test_a_patient_cannot_forget_another_patients_token(other_patient, patient_client):
    theirs = PushTokenFactory(patient=other_patient, token=FCM_TOKEN)

    response = patient_client.delete("/api/v1/push-tokens", {"token": FCM_TOKEN}, format="json")

    assert response.status_code == 204  # the same answer as for any unknown token
    assert list(PushToken.objects.values_list("id", "retired_at")) == [(theirs.pk, None)]


def test_forgetting_without_a_token_is_400(patient, patient_client):
    PushTokenFactory(patient=patient, token=FCM_TOKEN)

    response = patient_client.delete("/api/v1/push-tokens", {}, format="json")

    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Invalid input.", "errors": {"token": ["This field is required."]}},
    )
    assert PushToken.objects.count() == 1
