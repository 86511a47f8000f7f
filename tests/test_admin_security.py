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
    # from another address too: the count is the account's
    assert log_in(Client(REMOTE_ADDR="192.0.2.99"), "nina").status_code == 429


def test_the_username_count_is_case_insensitive(staff):
    client = Client(REMOTE_ADDR="192.0.2.10")
    for username in ["nina", "NINA", "Nina", "niNa", "ninA"]:
        log_in(client, username, "wrong")

    assert log_in(client, "nina").status_code == 429


def test_an_address_is_locked_out_after_twenty_failures_whatever_the_usernames(staff):
    client = Client(REMOTE_ADDR="192.0.2.20")
    for n in range(20):
        log_in(client, f"guess{n}", "wrong")

    locked = log_in(client, "nina")

    assert locked.status_code == 429
    assert not logged_in(client)
    assert log_in(Client(REMOTE_ADDR="192.0.2.21"), "nina").status_code == 302


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
    settings.VIGIL_ADMIN_LOGIN_LOCKOUT = timedelta(seconds=1)
    client = Client(REMOTE_ADDR="192.0.2.40")
    for _ in range(5):
        log_in(client, "nina", "wrong")
    assert log_in(client, "nina").status_code == 429

    time.sleep(1.2)  # Redis expires the counts on its own clock

    assert log_in(client, "nina").status_code == 302
    assert logged_in(client)


def test_the_counts_are_in_the_cache_under_hashed_keys(staff):
    log_in(Client(REMOTE_ADDR="192.0.2.50"), "nina", "wrong")

    digest = hashlib.sha256(b"nina").hexdigest()
    assert cache.get(f"admin-login-failures:user:{digest}") == 1
    assert cache.get("admin-login-failures:ip:192.0.2.50") == 1


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
