"""Staff endpoints for a patient's credentials (monitoring/views/patients.py): app tokens
and devices."""

import hashlib
from datetime import timedelta

import pytest
from django.conf import settings

from monitoring.auth import issue_app_token
from monitoring.models import Device, PatientAppToken, Reading, ReadingSource
from tests.conftest import client_with
from tests.factories import PatientFactory
from tests.monitoring.views.patients_helpers import NOW, PATIENTS_URL, errors, iso, weight_reading

# --- App tokens ---------------------------------------------------------------------------


def test_issuing_an_app_token_returns_it_once_and_stores_its_hash(
    coordinator, coordinator_client, patient, time_machine
):
    # given
    time_machine.move_to(NOW, tick=False)

    # when
    response = coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/tokens")

    # then
    assert response.status_code == 201
    body = response.json()
    stored = PatientAppToken.objects.get()
    assert body == {
        "id": stored.pk,
        "token": body["token"],
        "expires_at": iso(NOW + settings.VIGIL_APP_TOKEN_TTL),
    }
    assert body["token"].startswith("vgp_")
    assert stored.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert (stored.patient, stored.created_by) == (patient, coordinator)
    assert stored.expires_at == NOW + settings.VIGIL_APP_TOKEN_TTL
    # and the token is the patient's
    me = client_with(body["token"]).get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["id"] == patient.pk


def test_each_issue_is_a_new_token(coordinator_client, patient):
    first = coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/tokens").json()
    second = coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/tokens").json()

    assert first["token"] != second["token"]
    assert PatientAppToken.objects.filter(patient=patient).count() == 2


def test_revoking_an_app_token_ends_it_and_leaves_the_others(
    coordinator_client, patient, time_machine
):
    # given: two tokens of the patient
    time_machine.move_to(NOW, tick=False)
    revoked_row, revoked = issue_app_token(patient=patient)
    _, kept = issue_app_token(patient=patient)

    # when
    response = coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/tokens/{revoked_row.pk}")

    # then
    assert response.status_code == 204
    assert response.content == b""
    revoked_row.refresh_from_db()
    assert revoked_row.revoked_at == NOW
    assert client_with(revoked).get("/api/v1/me").status_code == 401
    assert client_with(kept).get("/api/v1/me").status_code == 200


def test_revoking_a_revoked_token_again_keeps_the_first_revocation_time(
    coordinator_client, patient, time_machine
):
    time_machine.move_to(NOW, tick=False)
    token_row, _ = issue_app_token(patient=patient)
    coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/tokens/{token_row.pk}")

    time_machine.shift(timedelta(hours=1))
    response = coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/tokens/{token_row.pk}")

    assert response.status_code == 204
    token_row.refresh_from_db()
    assert token_row.revoked_at == NOW


def test_revoking_a_token_that_does_not_exist_is_a_json_404(coordinator_client, patient):
    response = coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/tokens/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- Devices ------------------------------------------------------------------------------

DEVICE = {"kind": "scale", "model": "Withings Body+", "serial": "WB-0042"}


def test_registering_a_device_shows_its_key_once_and_stores_its_hash(
    coordinator_client, patient, patient_client, time_machine
):
    # given
    time_machine.move_to(NOW, tick=False)

    # when
    response = coordinator_client.post(
        f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json"
    )

    # then
    assert response.status_code == 201
    device = Device.objects.get()
    key = response.json()["key"]
    assert response.json() == {
        "id": device.pk,
        "kind": "scale",
        "model": "Withings Body+",
        "serial": "WB-0042",
        "created_at": "2026-03-01T10:00:00Z",
        "revoked_at": None,
        "last_seen_at": None,
        "key": key,
    }
    assert key.startswith("vgd_")
    assert device.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert device.patient == patient
    # and no later answer shows it again
    for later in (
        coordinator_client.get(f"{PATIENTS_URL}/{patient.pk}"),
        coordinator_client.get(PATIENTS_URL),
        patient_client.get("/api/v1/me"),
    ):
        assert later.status_code == 200
        assert key not in later.content.decode()


def test_a_device_key_posts_readings_for_its_patient_until_revoked(
    coordinator_client, patient, time_machine
):
    # given: a registered device
    time_machine.move_to(NOW, tick=False)
    registered = coordinator_client.post(
        f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json"
    )
    device = Device.objects.get()
    device_client = client_with(registered.json()["key"])

    # when: it posts, is revoked, and posts again
    before = device_client.post(
        "/api/v1/readings", weight_reading("7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d"), format="json"
    )
    revoked = coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/devices/{device.pk}")
    after = device_client.post(
        "/api/v1/readings", weight_reading("1c9e6a2b-0d4f-4e8a-b7c3-5f2d1a9e8b70"), format="json"
    )

    # then
    assert before.status_code == 201
    assert revoked.status_code == 204
    assert after.status_code == 401
    assert after.json() == {"detail": "Invalid, expired or revoked token."}
    stored = Reading.objects.get()
    assert (stored.patient, stored.device, stored.source) == (patient, device, ReadingSource.DEVICE)
    device.refresh_from_db()
    assert device.revoked_at == NOW


def test_a_second_active_device_with_the_same_serial_is_refused(coordinator_client, patient):
    coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json")

    response = coordinator_client.post(
        f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json"
    )

    assert errors(response) == {
        "serial": ["This patient already has an active device with this serial."]
    }
    assert Device.objects.count() == 1


def test_a_serial_may_be_registered_again_after_its_device_is_revoked(coordinator_client, patient):
    first = coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json")
    coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/devices/{first.json()['id']}")

    second = coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json")

    assert second.status_code == 201
    assert second.json()["key"] != first.json()["key"]
    assert Device.objects.filter(patient=patient, revoked_at__isnull=True).count() == 1
    assert Device.objects.count() == 2


def test_the_same_serial_may_belong_to_two_patients(coordinator_client, team, patient):
    neighbour = PatientFactory(care_team=team)
    coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/devices", DEVICE, format="json")

    response = coordinator_client.post(
        f"{PATIENTS_URL}/{neighbour.pk}/devices", DEVICE, format="json"
    )

    assert response.status_code == 201
    assert Device.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            DEVICE | {"kind": "toaster"},
            {"kind": ['"toaster" is not a valid choice.']},
            id="bad-kind",
        ),
        pytest.param(
            {"model": "X"},
            {"kind": ["This field is required."], "serial": ["This field is required."]},
            id="missing-fields",
        ),
        pytest.param(
            DEVICE | {"serial": ""}, {"serial": ["This field may not be blank."]}, id="blank-serial"
        ),
        pytest.param(
            DEVICE | {"serial": "S" * 121},
            {"serial": ["Ensure this field has no more than 120 characters."]},
            id="long-serial",
        ),
    ],
)
def test_an_invalid_device_is_refused_per_field(coordinator_client, patient, body, reason):
    response = coordinator_client.post(f"{PATIENTS_URL}/{patient.pk}/devices", body, format="json")

    assert errors(response) == reason
    assert Device.objects.count() == 0


def test_a_device_may_be_registered_without_a_model(coordinator_client, patient):
    response = coordinator_client.post(
        f"{PATIENTS_URL}/{patient.pk}/devices", {"kind": "cgm", "serial": "CGM-1"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["model"] == ""
    assert Device.objects.get().model == ""


def test_revoking_a_device_that_does_not_exist_is_a_json_404(coordinator_client, patient):
    response = coordinator_client.delete(f"{PATIENTS_URL}/{patient.pk}/devices/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
