"""Bearer credentials (monitoring/auth.py): the second factor on the API login.

Failed logins are counted in the real Redis cache (conftest clears it before each test).
"""

from django_otp.plugins.otp_totp.models import TOTPDevice

from monitoring.models import StaffToken
from tests.monitoring.auth_helpers import LOGIN_URL, PASSWORD, code_of, login

# --- Second factor on the API login -----------------------------------------------------------


def authenticator(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


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


def test_the_owners_login_does_not_wipe_guesses_spread_over_other_addresses(
    nurse, anonymous_client, settings
):
    # given: guesses at the nurse's account from three addresses, one short of the limit
    settings.VIGIL_LOGIN_FAILURES_PER_USERNAME = 4
    for n in range(3):
        login(anonymous_client, "nurse", "guess", REMOTE_ADDR=f"198.51.100.{n}")

    # when: the nurse logs in from her desk, then the guessing goes on
    assert login(anonymous_client, "nurse", REMOTE_ADDR="192.0.2.5").status_code == 201
    fourth = login(anonymous_client, "nurse", "guess", REMOTE_ADDR="198.51.100.9")
    fifth = login(anonymous_client, "nurse", PASSWORD, REMOTE_ADDR="198.51.100.10")

    # then
    assert fourth.status_code == 400
    assert fifth.status_code == 429
