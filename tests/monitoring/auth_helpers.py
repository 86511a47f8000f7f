"""Constants, builders and fixtures shared by test_auth.py, test_auth_second_factor.py (imported by
name: a fixture here applies only where a test module imports it)."""

from datetime import UTC, datetime

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

LOGIN_URL = "/api/v1/auth/token"


PASSWORD = "correct horse battery staple"  # UserFactory's password


NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


BAD_LOGIN = {
    "detail": "Invalid input.",
    "errors": {"non_field_errors": ["Invalid username or password, or not a staff account."]},
}


INVALID_TOKEN = {"detail": "Invalid, expired or revoked token."}


WWW_AUTHENTICATE = 'Bearer realm="api"'


def login(client, username, password=PASSWORD, **extra):
    return client.post(
        LOGIN_URL, {"username": username, "password": password}, format="json", **extra
    )


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


def code_of(device: TOTPDevice) -> str:
    """The code the authenticator app shows now, computed by django-otp's own TOTP."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"
