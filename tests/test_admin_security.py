"""Admin hardening (config/admin.py): throttled logins counted in the real Redis cache,
two-factor logins with django-otp's TOTP devices (required with VIGIL_REQUIRE_2FA), and
sessions that expire after inactivity.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from monitoring.auth import issue_staff_token
from monitoring.models import StaffToken
from tests.factories import UserFactory

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"  # tests/factories.py UserFactory


def log_in(client: Client, username: str, password: str = PASSWORD, otp_token: str = ""):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": otp_token})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def current_code(device: TOTPDevice, offset_steps: int = 0) -> str:
    """The code an authenticator app shows now, computed by django-otp's own TOTP."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def staff(db):
    return UserFactory(username="nina", is_staff=True)


@pytest.fixture
def device(staff) -> TOTPDevice:
    return TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)


def test_the_tests_throttle_in_redis():
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


# --- Login throttling ----------------------------------------------------------------------


def test_a_username_is_locked_out_after_five_failures_even_with_the_right_password(staff):
    client = Client(REMOTE_ADDR="192.0.2.10")

    failures = [log_in(client, "nina", "wrong").status_code for _ in range(5)]
    locked = log_in(client, "nina")

    assert failures == [200] * 5
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert not logged_in(client)


def test_a_lockout_holds_the_username_at_that_address_not_everywhere(staff):
    # An attacker's five guesses must not lock the clinician out of their own desk.
    for _ in range(5):
        log_in(Client(REMOTE_ADDR="192.0.2.10"), "nina", "wrong")

    elsewhere = Client(REMOTE_ADDR="192.0.2.99")

    assert log_in(elsewhere, "nina").status_code == 302
    assert logged_in(elsewhere)


def test_the_username_count_is_case_insensitive(staff):
    client = Client(REMOTE_ADDR="192.0.2.10")
    for username in ["nina", "NINA", "Nina", "niNa", "ninA"]:
        log_in(client, username, "wrong")

    assert log_in(client, "nina").status_code == 429


def test_one_attackers_failures_do_not_lock_out_the_clinic_behind_the_same_address(staff):
    # given: 20 failed logins at other usernames from the clinic's one public address
    attacker = Client(REMOTE_ADDR="192.0.2.20")
    for n in range(20):
        log_in(attacker, f"guess{n}", "wrong")

    # when: a clinician at the same address logs in
    clinician = Client(REMOTE_ADDR="192.0.2.20")
    response = log_in(clinician, "nina")

    # then
    assert response.status_code == 302
    assert logged_in(clinician)


def test_an_address_is_locked_out_at_the_address_limit_whatever_the_usernames(staff, settings):
    settings.VIGIL_LOGIN_FAILURES_PER_ADDRESS = 3
    client = Client(REMOTE_ADDR="192.0.2.20")
    for n in range(3):
        log_in(client, f"guess{n}", "wrong")

    locked = log_in(client, "nina")

    assert locked.status_code == 429
    assert not logged_in(client)
    assert log_in(Client(REMOTE_ADDR="192.0.2.21"), "nina").status_code == 302


def test_a_forged_forwarded_for_does_not_dodge_the_count(staff):
    client = Client(REMOTE_ADDR="192.0.2.22")
    for n in range(5):
        client.post(
            LOGIN,
            {"username": "nina", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )

    response = client.post(
        LOGIN, {"username": "nina", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="198.51.100.99"
    )

    assert response.status_code == 429
    assert not logged_in(client)


def test_failed_api_logins_lock_the_admin_login_too(staff):
    api = APIClient(REMOTE_ADDR="192.0.2.23")
    for _ in range(5):
        api.post("/api/v1/auth/token", {"username": "nina", "password": "wrong"}, format="json")

    response = log_in(Client(REMOTE_ADDR="192.0.2.23"), "nina")

    assert response.status_code == 429


def test_a_success_clears_its_usernames_count(staff):
    client = Client(REMOTE_ADDR="192.0.2.30")
    for _ in range(4):
        log_in(client, "nina", "wrong")
    assert log_in(client, "nina").status_code == 302
    client.logout()

    for _ in range(4):
        log_in(client, "nina", "wrong")

    assert log_in(client, "nina").status_code == 302


def test_a_post_without_a_password_does_not_clear_the_count(staff):
    client = Client(REMOTE_ADDR="192.0.2.31")
    for _ in range(4):
        log_in(client, "nina", "wrong")

    client.post(LOGIN, {"username": "nina", "password": ""})
    log_in(client, "nina", "wrong")

    assert log_in(client, "nina").status_code == 429


def test_the_lockout_ends_with_its_window(staff, settings):
    settings.VIGIL_LOGIN_LOCKOUT = timedelta(seconds=1)
    client = Client(REMOTE_ADDR="192.0.2.40")
    for _ in range(5):
        log_in(client, "nina", "wrong")
    assert log_in(client, "nina").status_code == 429

    time.sleep(1.2)  # Redis expires the counts on its own clock

    assert log_in(client, "nina").status_code == 302
    assert logged_in(client)


def test_the_counts_are_in_the_cache_under_hashed_keys(staff):
    log_in(Client(REMOTE_ADDR="192.0.2.50"), "nina", "wrong")

    name = hashlib.sha256(b"nina").hexdigest()
    pair = hashlib.sha256(f"{name} 192.0.2.50".encode()).hexdigest()
    assert cache.get(f"login-failures:pair:{pair}") == 1
    assert cache.get(f"login-failures:user:{name}") == 1
    assert cache.get("login-failures:address:192.0.2.50") == 1
    assert [key for key in cache._cache.get_client().keys("*") if b"nina" in key] == []


# --- Two-factor ----------------------------------------------------------------------------


def test_a_user_with_a_device_must_give_its_code(device):
    client = Client()

    without = log_in(client, "nina")
    wrong = log_in(
        client, "nina", otp_token="000000" if current_code(device) != "000000" else "111111"
    )

    assert (without.status_code, wrong.status_code) == (200, 200)
    assert b"Enter the current code from your authenticator app" in without.content
    assert not logged_in(client)
    assert client.get("/admin/").status_code == 302


def test_a_user_with_a_device_and_the_current_code_reaches_the_admin(device):
    client = Client()

    response = log_in(client, "nina", otp_token=current_code(device))

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_code_is_accepted_once(device):
    code = current_code(device)
    assert log_in(Client(), "nina", otp_token=code).status_code == 302

    replay = Client()

    assert log_in(replay, "nina", otp_token=code).status_code == 200
    assert not logged_in(replay)


def test_a_session_without_the_code_of_a_user_with_a_device_reaches_nothing(device, staff):
    # e.g. a session from before the device was added
    client = Client()
    client.force_login(staff)

    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/two-factor/").status_code == 302


def test_with_2fa_required_a_user_without_a_device_is_sent_to_set_one_up(staff, settings):
    settings.VIGIL_REQUIRE_2FA = True
    client = Client()

    response = log_in(client, "nina")

    assert response.status_code == 302
    assert response["Location"] == "/admin/two-factor/"
    for url in ["/admin/", "/admin/alerts/alert/", "/admin/monitoring/patient/"]:
        assert client.get(url).status_code == 302, url
    assert client.get("/admin/", follow=True).redirect_chain[-1][0] == "/admin/two-factor/"


def test_with_2fa_required_setting_up_a_device_opens_the_admin(staff, settings):
    settings.VIGIL_REQUIRE_2FA = True
    client = Client()
    log_in(client, "nina")

    page = client.get("/admin/two-factor/")
    device = TOTPDevice.objects.get(user=staff)
    confirmed = client.post("/admin/two-factor/", {"otp_token": current_code(device)})

    assert page.status_code == 200
    key = base64.b32encode(device.bin_key).decode()
    assert key in page.content.decode()
    assert "<svg" in page.content.decode()
    assert f"otpauth://totp/Vigil%3Anina?secret={key}" in page.content.decode()
    assert confirmed.status_code == 302
    assert TOTPDevice.objects.get(pk=device.pk).confirmed is True
    assert client.get("/admin/").status_code == 200


def test_a_wrong_code_does_not_confirm_the_device_nor_open_the_admin(staff, settings):
    settings.VIGIL_REQUIRE_2FA = True
    client = Client()
    log_in(client, "nina")
    client.get("/admin/two-factor/")
    device = TOTPDevice.objects.get(user=staff)
    wrong = "000000" if current_code(device) != "000000" else "111111"

    response = client.post("/admin/two-factor/", {"otp_token": wrong})

    assert response.status_code == 400
    assert b"That code is not valid" in response.content
    assert TOTPDevice.objects.get(pk=device.pk).confirmed is False
    assert client.get("/admin/").status_code == 302


def test_with_2fa_required_a_user_with_a_device_logs_in_with_the_code(device, settings):
    settings.VIGIL_REQUIRE_2FA = True
    client = Client()

    log_in(client, "nina", otp_token=current_code(device))

    assert client.get("/admin/").status_code == 200


def test_a_logged_in_user_with_a_device_cannot_enrol_another_with_only_a_password(device, staff):
    client = Client()
    client.force_login(staff)

    response = client.post("/admin/two-factor/", {"otp_token": current_code(device, 1)})

    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user=staff)) == [device]


def test_failed_codes_count_towards_the_lockout(device):
    client = Client(REMOTE_ADDR="192.0.2.60")
    for _ in range(5):
        log_in(client, "nina", otp_token="000001")

    assert log_in(client, "nina", otp_token=current_code(device)).status_code == 429


# --- Sessions ------------------------------------------------------------------------------


def test_a_staff_session_expires_after_thirty_minutes_of_inactivity(staff, time_machine):
    time_machine.move_to("2026-03-01T09:00:00Z", tick=False)
    client = Client()
    log_in(client, "nina")

    time_machine.shift(timedelta(minutes=29))
    assert client.get("/admin/").status_code == 200  # activity renews the session
    time_machine.shift(timedelta(minutes=29))
    assert client.get("/admin/").status_code == 200
    time_machine.shift(timedelta(minutes=30, seconds=1))
    response = client.get("/admin/")

    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"


# --- Staff users: losing access, or the password, revokes API tokens ------------------------


def user_form(user, **changes) -> dict:
    """The admin's user change form as a superuser submits it, with `changes`."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **changes,
    }
    return {key: value for key, value in data.items() if value != ""}


@pytest.fixture
def admin_client(superuser):
    client = Client()
    client.force_login(superuser)
    return client


def api_works(token: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/care-teams").status_code == 200


def test_deactivating_a_user_in_the_admin_revokes_their_tokens_for_good(
    staff, superuser, admin_client
):
    # given
    _, token = issue_staff_token(user=staff)
    _, colleague = issue_staff_token(user=superuser)
    assert api_works(token)

    # when: deactivated, then reactivated, in the admin
    deactivated = admin_client.post(
        f"/admin/auth/user/{staff.pk}/change/", user_form(staff, is_active="")
    )
    staff.refresh_from_db()
    reactivated = admin_client.post(
        f"/admin/auth/user/{staff.pk}/change/", user_form(staff, is_active="on")
    )

    # then: the token was revoked when the user was deactivated; reactivation does not
    # bring it back
    assert (deactivated.status_code, reactivated.status_code) == (302, 302)
    staff.refresh_from_db()
    assert staff.is_active
    assert StaffToken.objects.get(user=staff).revoked_at is not None
    assert not api_works(token)
    assert api_works(colleague)


def test_saving_an_active_staff_user_in_the_admin_keeps_their_tokens(staff, admin_client):
    _, token = issue_staff_token(user=staff)

    response = admin_client.post(
        f"/admin/auth/user/{staff.pk}/change/", user_form(staff, first_name="Nina")
    )

    assert response.status_code == 302
    assert StaffToken.objects.get(user=staff).revoked_at is None
    assert api_works(token)


def test_setting_a_new_password_in_the_admin_revokes_the_users_tokens(staff, admin_client):
    _, token = issue_staff_token(user=staff)

    response = admin_client.post(
        f"/admin/auth/user/{staff.pk}/password/",
        {"password1": "a new passphrase 9", "password2": "a new passphrase 9"},
    )

    assert response.status_code == 302
    assert StaffToken.objects.get(user=staff).revoked_at is not None
    assert not api_works(token)


def test_a_user_changing_their_own_password_loses_their_tokens(staff):
    _, token = issue_staff_token(user=staff)
    client = Client()
    log_in(client, "nina")

    response = client.post(
        "/admin/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a new passphrase 9",
            "new_password2": "a new passphrase 9",
        },
    )

    assert response.status_code == 302
    assert not api_works(token)
    assert StaffToken.objects.get(user=staff).revoked_at is not None
