"""Bearer credentials: staff login, hashed storage, and every way a credential is refused.

The login throttle counts in the real Redis cache (conftest clears it before each test).
"""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from monitoring.auth import (
    issue_app_token,
    issue_staff_token,
    register_device,
    revoke_app_token,
    revoke_device,
)
from monitoring.models import Device, PatientAppToken, Reading, StaffToken
from monitoring.views import LoginIpThrottle
from tests.conftest import client_with
from tests.factories import UserFactory

LOGIN_URL = "/api/v1/auth/token"
PASSWORD = "correct horse battery staple"  # UserFactory's password
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BAD_LOGIN = {
    "detail": "Invalid input.",
    "errors": {"non_field_errors": ["Invalid username or password, or not a staff account."]},
}
INVALID_TOKEN = {"detail": "Invalid, expired or revoked token."}
WWW_AUTHENTICATE = 'Bearer realm="api"'


def login(client, username, password=PASSWORD):
    return client.post(LOGIN_URL, {"username": username, "password": password}, format="json")


def rate_count(scope: str) -> int:
    """How many requests per period the configured rate ("5/min") allows."""
    return int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope].split("/")[0])


def reading(reading_id: str = "7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d") -> dict:
    return {
        "id": reading_id,
        "type": "weight",
        "value": 81.5,
        "unit": "kg",
        "measured_at": "2026-03-01T07:00:00+01:00",
    }


def assert_refused(response, body=INVALID_TOKEN):
    assert response.status_code == 401
    assert response.json() == body
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


# --- Staff login: unhappy paths -----------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("nurse", "wrong password", id="wrong-password"),
        pytest.param("nobody", PASSWORD, id="unknown-user"),
        pytest.param("retired", PASSWORD, id="inactive-user"),
        pytest.param("receptionist", PASSWORD, id="non-staff-user"),
    ],
)
def test_login_is_refused_with_one_reason_and_issues_no_token(
    nurse, anonymous_client, username, password
):
    UserFactory(username="retired", is_active=False)
    UserFactory(username="receptionist", is_staff=False)

    response = login(anonymous_client, username, password)

    # The same reason for every case: the answer must not tell which usernames exist.
    assert response.status_code == 400
    assert response.json() == BAD_LOGIN
    assert StaffToken.objects.count() == 0


def test_login_without_fields_names_each_missing_field(anonymous_client, db):
    response = anonymous_client.post(LOGIN_URL, {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "username": ["This field is required."],
            "password": ["This field is required."],
        },
    }
    assert StaffToken.objects.count() == 0


def test_login_with_blank_fields_names_each_blank_field(anonymous_client, db):
    response = anonymous_client.post(LOGIN_URL, {"username": "", "password": ""}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "username": ["This field may not be blank."],
            "password": ["This field may not be blank."],
        },
    }
    assert StaffToken.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param('["nurse", "secret"]', "application/json", 400, id="json-list"),
        pytest.param("{not json", "application/json", 400, id="malformed-json"),
        pytest.param("username=nurse", "application/x-www-form-urlencoded", 415, id="form"),
    ],
)
def test_login_with_an_unusable_body_is_a_json_4xx(
    nurse, anonymous_client, body, content_type, status
):
    response = anonymous_client.post(LOGIN_URL, body, content_type=content_type)

    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)
    assert StaffToken.objects.count() == 0


def test_login_attempts_against_one_username_are_throttled(nurse, anonymous_client):
    # given: the configured number of failed attempts against one account
    allowed = rate_count("login_username")
    for _ in range(allowed):
        assert login(anonymous_client, "nurse", "guess").status_code == 400

    # when: the right password comes next, still within the minute
    response = login(anonymous_client, "NURSE", PASSWORD)

    # then: refused without checking it (case does not dodge the count), and no token
    assert response.status_code == 429
    assert response.json()["detail"].startswith("Request was throttled.")
    assert response.json().keys() == {"detail"}
    assert StaffToken.objects.count() == 0


def test_the_username_throttle_does_not_lock_out_other_accounts(nurse, physician, anonymous_client):
    for _ in range(rate_count("login_username") + 1):
        login(anonymous_client, "nurse", "guess")

    response = login(anonymous_client, "physician")

    assert response.status_code == 201
    assert StaffToken.objects.get().user == physician


def test_a_throttled_username_may_log_in_again_after_the_period(
    nurse, anonymous_client, time_machine
):
    time_machine.move_to(NOW, tick=False)
    for _ in range(rate_count("login_username")):
        login(anonymous_client, "nurse", "guess")
    assert login(anonymous_client, "nurse").status_code == 429

    time_machine.shift(timedelta(seconds=61))
    response = login(anonymous_client, "nurse")

    assert response.status_code == 201
    assert StaffToken.objects.filter(user=nurse).count() == 1


def test_login_attempts_from_one_address_are_throttled_across_usernames(
    nurse, anonymous_client, monkeypatch
):
    # DRF binds DEFAULT_THROTTLE_RATES when the throttle module is imported, so overriding
    # settings has no effect; set the rate on the throttle to keep the test short.
    monkeypatch.setattr(LoginIpThrottle, "rate", "3/min", raising=False)
    for username in ("alice", "bob", "carol"):
        assert login(anonymous_client, username).status_code == 400

    response = login(anonymous_client, "nurse")

    assert response.status_code == 429
    assert StaffToken.objects.count() == 0


# --- Staff login: success -----------------------------------------------------------------


def test_login_issues_a_staff_token_that_works_on_staff_endpoints(
    nurse, patient, anonymous_client, time_machine
):
    # given
    time_machine.move_to(NOW, tick=False)

    # when
    response = login(anonymous_client, "nurse")

    # then: the token is shown once, with its expiry
    assert response.status_code == 201
    body = response.json()
    assert body.keys() == {"token", "expires_at"}
    assert body["token"].startswith("vgs_")
    assert body["expires_at"] == "2026-03-01T22:00:00Z"
    stored = StaffToken.objects.get()
    assert stored.user == nurse
    assert stored.expires_at == NOW + settings.VIGIL_STAFF_TOKEN_TTL
    # and it opens the staff endpoints
    patients = client_with(body["token"]).get("/api/v1/patients")
    assert patients.status_code == 200
    assert [p["id"] for p in patients.json()["results"]] == [patient.pk]


# --- Credentials are stored hashed --------------------------------------------------------


def table_text(model) -> str:
    """Every row of the model's table as text, as anyone reading the database would see it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(string_agg(row_to_json(t)::text, ' '), '') "
            f"FROM {model._meta.db_table} t"
        )
        return cursor.fetchone()[0]


def test_a_staff_token_is_stored_only_as_its_sha256(nurse, anonymous_client):
    token = login(anonymous_client, "nurse").json()["token"]

    assert StaffToken.objects.get().token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in table_text(StaffToken)
    assert token.split("_", 1)[1] not in table_text(StaffToken)


def test_an_app_token_is_stored_only_as_its_sha256(patient):
    _, token = issue_app_token(patient=patient)

    assert PatientAppToken.objects.get().token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.split("_", 1)[1] not in table_text(PatientAppToken)


def test_a_device_key_is_stored_only_as_its_sha256(patient):
    _, key = register_device(patient=patient, kind="scale", model="Body+", serial="SC-1")

    assert Device.objects.get().key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.split("_", 1)[1] not in table_text(Device)


# --- Refused credentials ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/api/v1/me", "/api/v1/readings", "/api/v1/patients", "/api/v1/care-teams"]
)
def test_a_request_without_credentials_is_401_with_a_challenge(anonymous_client, db, url):
    response = anonymous_client.get(url)

    assert_refused(response, {"detail": "Authentication credentials were not provided."})


def test_posting_readings_without_credentials_is_401_and_stores_nothing(anonymous_client, db):
    response = anonymous_client.post("/api/v1/readings", reading(), format="json")

    assert_refused(response, {"detail": "Authentication credentials were not provided."})
    assert Reading.objects.count() == 0


HEADER_SHAPE = {"detail": "Use the header 'Authorization: Bearer <token>'."}


@pytest.mark.parametrize(
    ("header", "body"),
    [
        pytest.param("Bearer", HEADER_SHAPE, id="bearer-without-token"),
        pytest.param("Bearer two parts", HEADER_SHAPE, id="token-with-a-space"),
        pytest.param("Token {staff}", HEADER_SHAPE, id="wrong-keyword"),
        pytest.param("Basic bnVyc2U6c2VjcmV0", HEADER_SHAPE, id="basic-auth"),
        pytest.param("Bearer garbage", INVALID_TOKEN, id="garbage"),
        pytest.param("Bearer vgs_", INVALID_TOKEN, id="prefix-only"),
        pytest.param("Bearer {staff}x", INVALID_TOKEN, id="wrong-staff-token"),
        pytest.param("Bearer {staff_as_app}", INVALID_TOKEN, id="staff-secret-as-app-token"),
        pytest.param("Bearer {staff_as_device}", INVALID_TOKEN, id="staff-secret-as-device"),
        pytest.param("Bearer {staff_unprefixed}", INVALID_TOKEN, id="secret-without-prefix"),
        pytest.param("Bearer vgs_caf\xe9", {"detail": "Invalid token."}, id="not-ascii"),
    ],
)
def test_a_wrong_or_malformed_bearer_is_401_with_a_challenge(
    nurse, patient, anonymous_client, header, body
):
    # given: a real staff token, so each variant is one mistake away from a valid credential
    _, staff = issue_staff_token(user=nurse)
    secret = staff.split("_", 1)[1]
    authorization = header.format(
        staff=staff,
        staff_as_app=f"{PatientAppToken.PREFIX}_{secret}",
        staff_as_device=f"{Device.KEY_PREFIX}_{secret}",
        staff_unprefixed=secret,
    )

    # when
    response = anonymous_client.get("/api/v1/patients", HTTP_AUTHORIZATION=authorization)

    # then
    assert_refused(response, body)
    assert StaffToken.objects.get().last_used_at is None


def test_an_app_token_works_until_the_moment_it_expires(patient, time_machine):
    # given
    time_machine.move_to(NOW, tick=False)
    token_row, token = issue_app_token(patient=patient)
    assert token_row.expires_at == NOW + settings.VIGIL_APP_TOKEN_TTL
    client = client_with(token)

    # when / then
    time_machine.move_to(NOW + settings.VIGIL_APP_TOKEN_TTL - timedelta(seconds=1), tick=False)
    assert client.get("/api/v1/me").status_code == 200
    time_machine.move_to(NOW + settings.VIGIL_APP_TOKEN_TTL, tick=False)
    assert_refused(client.get("/api/v1/me"))
    assert_refused(client.post("/api/v1/readings", reading(), format="json"))
    assert Reading.objects.count() == 0


def test_a_revoked_app_token_is_401(patient):
    token_row, token = issue_app_token(patient=patient)
    client = client_with(token)
    assert client.get("/api/v1/me").status_code == 200

    revoke_app_token(token=token_row)

    assert_refused(client.get("/api/v1/me"))
    assert_refused(client.post("/api/v1/readings", reading(), format="json"))
    assert Reading.objects.count() == 0


def test_a_revoked_device_key_is_401_and_stores_nothing(device_client):
    revoke_device(device=device_client.device)

    response = device_client.post("/api/v1/readings", reading(), format="json")

    assert_refused(response)
    assert Reading.objects.count() == 0


def test_a_staff_token_works_until_the_moment_it_expires(nurse, time_machine):
    time_machine.move_to(NOW, tick=False)
    _, token = issue_staff_token(user=nurse)
    client = client_with(token)

    time_machine.move_to(NOW + settings.VIGIL_STAFF_TOKEN_TTL - timedelta(seconds=1), tick=False)
    assert client.get("/api/v1/patients").status_code == 200
    time_machine.move_to(NOW + settings.VIGIL_STAFF_TOKEN_TTL, tick=False)
    assert_refused(client.get("/api/v1/patients"))


def test_a_revoked_staff_token_is_401(nurse):
    _, token = issue_staff_token(user=nurse)
    StaffToken.objects.update(revoked_at=datetime(2026, 1, 1, tzinfo=UTC))

    assert_refused(client_with(token).get("/api/v1/patients"))


@pytest.mark.parametrize(
    "change", [{"is_active": False}, {"is_staff": False}], ids=["deactivated", "no-longer-staff"]
)
def test_a_staff_token_stops_working_when_its_user_loses_staff_access(nurse, patient, change):
    # given: a token issued while the nurse was active staff
    _, token = issue_staff_token(user=nurse)
    client = client_with(token)
    assert client.get("/api/v1/patients").status_code == 200

    # when
    for name, value in change.items():
        setattr(nurse, name, value)
    nurse.save()

    # then: every use of the token is refused, including issuing patient credentials
    assert_refused(client.get("/api/v1/patients"))
    assert_refused(client.post(f"/api/v1/patients/{patient.pk}/tokens"))
    assert PatientAppToken.objects.count() == 0


# --- Second factor on the API login -----------------------------------------------------------


def authenticator(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def code_of(device: TOTPDevice) -> str:
    """The code the authenticator app shows now, computed by django-otp's own TOTP."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_a_user_with_an_authenticator_needs_its_code_for_a_staff_token(nurse, anonymous_client):
    device = authenticator(nurse)

    without = login(anonymous_client, "nurse")
    right = anonymous_client.post(
        LOGIN_URL,
        {"username": "nurse", "password": PASSWORD, "otp_token": code_of(device)},
        format="json",
    )

    assert (without.status_code, without.json()["errors"]) == (
        400,
        {"otp_token": ["The authenticator code is required."]},
    )
    assert right.status_code == 201
    assert StaffToken.objects.filter(user=nurse).count() == 1


def test_a_wrong_authenticator_code_gets_no_staff_token(nurse, anonymous_client):
    authenticator(nurse)

    response = anonymous_client.post(
        LOGIN_URL,
        {"username": "nurse", "password": PASSWORD, "otp_token": "000000"},
        format="json",
    )

    assert (response.status_code, response.json()["errors"]) == (
        400,
        {"otp_token": ["The authenticator code is wrong or was used."]},
    )
    assert StaffToken.objects.count() == 0


def test_when_two_factor_is_required_a_user_without_an_authenticator_gets_no_token(
    settings, nurse, anonymous_client
):
    settings.VIGIL_REQUIRE_2FA = True

    response = login(anonymous_client, "nurse")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["otp_token"]
    assert StaffToken.objects.count() == 0


def test_without_an_authenticator_or_the_requirement_the_password_is_enough(
    nurse, anonymous_client
):
    assert login(anonymous_client, "nurse").status_code == 201
