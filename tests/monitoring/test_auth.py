"""Bearer credentials: staff login and logout, hashed storage, and every way a credential is
refused.

Failed logins are counted in the real Redis cache (conftest clears it before each test).
"""

import hashlib
import ipaddress
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from monitoring.auth import (
    claim_login_attempt,
    issue_app_token,
    issue_staff_token,
    register_device,
    revoke_app_token,
    revoke_device,
)
from monitoring.models import Device, PatientAppToken, Reading, StaffToken
from tests.conftest import client_with
from tests.factories import UserFactory
from tests.monitoring.auth_helpers import (
    BAD_LOGIN,
    INVALID_TOKEN,
    LOGIN_URL,
    NOW,
    PASSWORD,
    assert_refused,
    code_of,
    login,
    reading,
)

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


LOCKED_OUT = {"detail": "Too many failed logins. Wait 15 minutes and try again."}


def test_five_failures_of_one_username_from_one_address_lock_that_pair(nurse, anonymous_client):
    # given: five failed attempts at the nurse's account from one address
    for _ in range(5):
        assert login(anonymous_client, "nurse", "guess").status_code == 400

    # when: the right password comes next
    response = login(anonymous_client, "nurse", PASSWORD)

    # then: refused without checking it, and no token
    assert response.status_code == 429
    assert response.json() == LOCKED_OUT
    assert StaffToken.objects.count() == 0


@pytest.mark.parametrize("variant", ["nurse ", " nurse", "NURSE", "Nurse\t", "ｎｕｒｓｅ"])
def test_a_padded_recased_or_wide_username_is_the_same_account_to_the_count(
    nurse, anonymous_client, variant
):
    # Authentication trims the username (and the admin's form applies NFKC): "nurse " logs
    # in as "nurse", so it must not get five more guesses of its own.
    for _ in range(5):
        login(anonymous_client, "nurse", "guess")

    response = login(anonymous_client, variant, PASSWORD)

    assert response.status_code == 429
    assert StaffToken.objects.count() == 0


def test_guesses_rotating_the_padding_and_a_forged_forwarded_for_are_stopped(
    nurse, anonymous_client
):
    # given: the attack as reported: each guess with another X-Forwarded-For and the
    # username padded differently, all from one real address
    statuses = [
        login(
            anonymous_client,
            "nurse" + " " * n,
            f"guess{n}",
            REMOTE_ADDR="203.0.113.9",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n in range(12)
    ]

    # when: then the right password
    response = login(
        anonymous_client, "nurse", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.200"
    )

    # then
    assert statuses == [400] * 5 + [429] * 7
    assert response.status_code == 429
    assert StaffToken.objects.count() == 0


def test_behind_a_trusted_proxy_the_address_it_saw_is_counted(nurse, anonymous_client, settings):
    settings.VIGIL_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)

    def login_via_proxy(forwarded_for, password=PASSWORD):
        return login(
            anonymous_client,
            "nurse",
            password,
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=forwarded_for,
        )

    # given: five failures from the client 198.51.100.7, as the proxy reports it
    for _ in range(5):
        assert login_via_proxy("198.51.100.7", "guess").status_code == 400

    # when / then: that client is locked out, even writing another address in front
    assert login_via_proxy("198.51.100.7").status_code == 429
    assert login_via_proxy("192.0.2.1, 198.51.100.7").status_code == 429
    # and the nurse logging in through the same proxy from elsewhere is not
    assert login_via_proxy("198.51.100.8").status_code == 201
    assert StaffToken.objects.filter(user=nurse).count() == 1


def test_an_office_behind_one_address_is_not_locked_out_by_one_attackers_guesses(
    nurse, anonymous_client
):
    # given: 35 failed logins at other usernames from the clinic's one public address
    statuses = {login(anonymous_client, f"guess{n}", "wrong").status_code for n in range(35)}

    # when: a nurse at the same address logs in
    response = login(anonymous_client, "nurse")

    # then
    assert statuses == {400}
    assert response.status_code == 201
    assert StaffToken.objects.filter(user=nurse).count() == 1


def test_one_address_trying_many_usernames_is_stopped_at_the_address_limit(
    nurse, anonymous_client, settings
):
    settings.VIGIL_LOGIN_FAILURES_PER_ADDRESS = 3
    for username in ("alice", "bob", "carol"):
        assert login(anonymous_client, username).status_code == 400

    here = login(anonymous_client, "nurse")
    elsewhere = login(anonymous_client, "nurse", REMOTE_ADDR="192.0.2.77")

    assert here.status_code == 429
    assert elsewhere.status_code == 201
    assert StaffToken.objects.count() == 1


def test_guesses_at_one_username_spread_over_addresses_stop_at_the_username_limit(
    nurse, anonymous_client, settings
):
    settings.VIGIL_LOGIN_FAILURES_PER_USERNAME = 3
    for n in range(3):
        assert (
            login(anonymous_client, "nurse", "guess", REMOTE_ADDR=f"192.0.2.{n}").status_code == 400
        )

    response = login(anonymous_client, "nurse", REMOTE_ADDR="192.0.2.50")

    assert response.status_code == 429
    assert StaffToken.objects.count() == 0


def test_addresses_of_one_ipv6_network_count_as_one(nurse, anonymous_client):
    for n in range(1, 6):
        assert (
            login(anonymous_client, "nurse", "guess", REMOTE_ADDR=f"2001:db8::{n}").status_code
            == 400
        )

    same_network = login(anonymous_client, "nurse", REMOTE_ADDR="2001:db8::ff:1")
    other_network = login(anonymous_client, "nurse", REMOTE_ADDR="2001:db8:0:1::1")

    assert same_network.status_code == 429
    assert other_network.status_code == 201


def test_a_success_clears_the_usernames_failures(nurse, anonymous_client):
    for _ in range(4):
        login(anonymous_client, "nurse", "guess")
    assert login(anonymous_client, "nurse").status_code == 201

    for _ in range(4):
        login(anonymous_client, "nurse", "guess")

    assert login(anonymous_client, "nurse").status_code == 201
    assert StaffToken.objects.count() == 2


def test_wrong_authenticator_codes_count_towards_the_lockout(nurse, anonymous_client):
    device = TOTPDevice.objects.create(user=nurse, name="phone", confirmed=True)
    wrong = "000000" if code_of(device) != "000000" else "111111"
    for _ in range(5):
        response = anonymous_client.post(
            LOGIN_URL,
            {"username": "nurse", "password": PASSWORD, "otp_token": wrong},
            format="json",
        )
        assert response.status_code == 400

    response = anonymous_client.post(
        LOGIN_URL,
        {"username": "nurse", "password": PASSWORD, "otp_token": code_of(device)},
        format="json",
    )

    assert response.status_code == 429
    assert StaffToken.objects.count() == 0


def test_a_lockout_ends_with_its_window(nurse, anonymous_client, settings):
    settings.VIGIL_LOGIN_LOCKOUT = timedelta(seconds=1)
    for _ in range(5):
        login(anonymous_client, "nurse", "guess")
    assert login(anonymous_client, "nurse").status_code == 429

    time.sleep(1.2)  # Redis expires the counts on its own clock

    assert login(anonymous_client, "nurse").status_code == 201


def test_failed_admin_logins_lock_the_api_login_too(nurse, anonymous_client):
    for _ in range(5):
        Client().post("/admin/login/", {"username": "nurse", "password": "guess"})

    response = login(anonymous_client, "nurse")

    assert response.status_code == 429
    assert StaffToken.objects.count() == 0


def test_concurrent_guesses_cannot_all_slip_under_the_limit(db):
    # Each attempt takes its place in the counts (an atomic INCR) before the password is
    # checked: of 20 guesses racing, exactly the limit's 5 are let through.
    request = RequestFactory().post(LOGIN_URL, REMOTE_ADDR="203.0.113.20")
    barrier = threading.Barrier(20)

    def attempt(_):
        barrier.wait()
        return claim_login_attempt(request=request, username="nurse")

    with ThreadPoolExecutor(max_workers=20) as pool:
        claimed = list(pool.map(attempt, range(20)))

    assert claimed.count(True) == 5


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


@pytest.mark.postgres
def test_a_staff_token_is_stored_only_as_its_sha256(nurse, anonymous_client):
    token = login(anonymous_client, "nurse").json()["token"]

    assert StaffToken.objects.get().token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in table_text(StaffToken)
    assert token.split("_", 1)[1] not in table_text(StaffToken)


@pytest.mark.postgres
def test_an_app_token_is_stored_only_as_its_sha256(patient):
    _, token = issue_app_token(patient=patient)

    assert PatientAppToken.objects.get().token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.split("_", 1)[1] not in table_text(PatientAppToken)


@pytest.mark.postgres
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


# --- Revoking staff tokens: logout, new password, deactivation -----------------------------


def test_logout_revokes_the_token_it_carries_and_no_other(nurse, time_machine):
    # given: two tokens of the nurse (two devices)
    time_machine.move_to(NOW, tick=False)
    used_row, used = issue_staff_token(user=nurse)
    other_row, other = issue_staff_token(user=nurse)

    # when
    response = client_with(used).delete(LOGIN_URL)

    # then
    assert response.status_code == 204
    assert response.content == b""
    assert StaffToken.objects.get(pk=used_row.pk).revoked_at == NOW
    assert StaffToken.objects.get(pk=other_row.pk).revoked_at is None
    assert_refused(client_with(used).get("/api/v1/patients"))
    assert client_with(other).get("/api/v1/patients").status_code == 200


def test_logout_without_a_staff_token_revokes_nothing(nurse, patient, anonymous_client):
    _, staff = issue_staff_token(user=nurse)
    _, app = issue_app_token(patient=patient)

    anonymous = anonymous_client.delete(LOGIN_URL)
    as_app = client_with(app).delete(LOGIN_URL)

    assert_refused(anonymous, {"detail": "Authentication credentials were not provided."})
    assert (as_app.status_code, as_app.json()) == (
        403,
        {"detail": "This endpoint needs a staff token."},
    )
    assert StaffToken.objects.filter(revoked_at__isnull=False).count() == 0
    assert PatientAppToken.objects.filter(revoked_at__isnull=False).count() == 0
    assert client_with(staff).get("/api/v1/patients").status_code == 200


def test_a_login_with_a_stale_bearer_header_still_logs_in(nurse):
    response = client_with("vgs_revoked-long-ago").post(
        LOGIN_URL, {"username": "nurse", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 201


def test_a_new_password_revokes_every_staff_token_of_the_user(nurse, physician):
    # given
    _, first = issue_staff_token(user=nurse)
    _, second = issue_staff_token(user=nurse)
    _, colleague = issue_staff_token(user=physician)

    # when: the password is changed the way every path changes it
    nurse.set_password("a whole new passphrase")
    nurse.save()

    # then: both of the nurse's tokens are refused, and marked revoked once met
    assert_refused(client_with(first).get("/api/v1/patients"))
    assert StaffToken.objects.filter(user=nurse, revoked_at__isnull=True).count() == 0
    assert_refused(client_with(second).get("/api/v1/patients"))
    assert client_with(colleague).get("/api/v1/patients").status_code == 200


def test_an_old_token_presented_after_a_new_login_does_not_revoke_the_new_one(nurse):
    # given: the nurse changed her password and logged in again on one device
    old_row, old = issue_staff_token(user=nurse)
    nurse.set_password("a whole new passphrase")
    nurse.save()
    new_row, new = issue_staff_token(user=nurse)

    # when: her other device still sends the old token
    assert_refused(client_with(old).get("/api/v1/patients"))

    # then: only the old one is revoked
    assert StaffToken.objects.get(pk=old_row.pk).revoked_at is not None
    assert StaffToken.objects.get(pk=new_row.pk).revoked_at is None
    assert client_with(new).get("/api/v1/patients").status_code == 200


def test_a_token_of_a_deactivated_user_stays_revoked_when_the_user_is_reactivated(nurse):
    _, token = issue_staff_token(user=nurse)
    nurse.is_active = False
    nurse.save()
    assert_refused(client_with(token).get("/api/v1/patients"))

    nurse.is_active = True
    nurse.save()

    assert_refused(client_with(token).get("/api/v1/patients"))
    assert StaffToken.objects.get().revoked_at is not None
