"""Bearer credentials for the API (staff tokens, patient app tokens and device keys), and
the failed-login store that the API's token login and the admin's login share.

Each credential is a random string with a prefix naming its kind; only its SHA-256 is
stored. A wrong, expired or revoked credential is a 401. What a valid credential may reach
is decided by the permission classes here and by the views' querysets.

A staff token also records a fingerprint of its user's password hash when issued, as
Django's sessions do (get_session_auth_hash): a password changed by any path (the admin's
forms, set_password, manage.py changepassword) no longer matches, and the token is
refused and revoked at its next use.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from config.statements import CompiledQuery
from monitoring.audit import client_ip
from monitoring.models import Device, Patient, PatientAppToken, StaffToken, hash_secret, new_secret

# last_used_at / last_seen_at are written at most this often per credential, so a device
# posting every minute does not turn every read into a write.
TOUCH_INTERVAL = timedelta(minutes=5)

User = get_user_model()


@dataclass(frozen=True)
class PatientPrincipal:
    """request.user for a patient app token or a device key."""

    patient: Patient
    device: Device | None = None
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        # Throttles and logs key on this; it names the credential, not the person.
        return f"device:{self.device.pk}" if self.device else f"patient:{self.patient.pk}"


def _touch(credential, column: str, now: datetime) -> None:
    last = getattr(credential, column)
    if last is not None and last >= now - TOUCH_INTERVAL:
        return
    # Conditional, so concurrent requests write it once per interval.
    type(credential).objects.filter(pk=credential.pk).filter(
        Q(**{f"{column}__isnull": True}) | Q(**{f"{column}__lt": now - TOUCH_INTERVAL})
    ).update(**{column: now})


# --- The credential lookup on every patient request ----------------------------------------
#
# A device or app posts one reading per request, so the lookup is on the hot path of every
# reading: building the ORM query (select_related, ordering for .first()) cost about as much
# CPU as the insert of the reading (profiled: benchmarks/README.md, "Cost per live reading").
# The statement is the ORM's own, compiled once per process and prepared once per connection
# (config/statements.py); each request executes it and builds the two objects from the row.

_credential_lookup = CompiledQuery(
    lambda model, hash_field, digest: model.objects.select_related("patient").filter(
        **{hash_field: digest}
    ),
    params=lambda model, hash_field, digest: [digest],
    shape=lambda model, hash_field, digest: (model, hash_field),
)


def credential_with_patient(model, hash_field: str, digest: str):
    """The PatientAppToken or Device whose `hash_field` is `digest`, its patient loaded
    (as `.select_related("patient").filter(...).first()` would return it), or None. The
    hash is unique, so there is one row at most."""
    found = _credential_lookup(model, hash_field, digest)
    return found[0] if found else None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword.lower().encode() or len(header) != 2:
            raise exceptions.AuthenticationFailed("Use the header 'Authorization: Bearer <token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed("Invalid token.") from error
        return self.authenticate_token(token)

    def authenticate_token(self, token: str):
        now = timezone.now()
        digest = hash_secret(token)
        prefix = token.split("_", 1)[0]
        if prefix == StaffToken.PREFIX:
            found = StaffToken.objects.select_related("user").filter(token_hash=digest).first()
            if found and found.is_usable(now):
                if staff_token_user_is_current(found):
                    _touch(found, "last_used_at", now)
                    return found.user, found
                # Password changed, deactivated or no longer staff since it was issued:
                # revoked for good, so reactivating the account does not revive it.
                revoke_stale_staff_tokens(user=found.user)
        elif prefix == PatientAppToken.PREFIX:
            found = credential_with_patient(PatientAppToken, "token_hash", digest)
            if found and found.is_usable(now):
                _touch(found, "last_used_at", now)
                return PatientPrincipal(patient=found.patient), found
        elif prefix == Device.KEY_PREFIX:
            found = credential_with_patient(Device, "key_hash", digest)
            if found and found.is_active:
                _touch(found, "last_seen_at", now)
                return PatientPrincipal(patient=found.patient, device=found), found
        raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "monitoring.auth.BearerTokenAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A staff token, a patient app token or a device key.",
        }


# --- Issuing credentials ------------------------------------------------------------------


def user_fingerprint(user) -> str:
    """An HMAC of the user's password hash: changes whenever the password does."""
    return salted_hmac(
        "monitoring.auth.user_fingerprint", user.password, algorithm="sha256"
    ).hexdigest()


def staff_token_user_is_current(token: StaffToken) -> bool:
    """The token's user is active staff with the password the token was issued under."""
    user = token.user
    return (
        user.is_active
        and user.is_staff
        and constant_time_compare(token.user_fingerprint, user_fingerprint(user))
    )


def issue_staff_token(*, user) -> tuple[StaffToken, str]:
    """Writes a StaffToken; returns it with the plaintext, which is not stored."""
    plaintext, digest = new_secret(StaffToken.PREFIX)
    token = StaffToken.objects.create(
        user=user,
        token_hash=digest,
        user_fingerprint=user_fingerprint(user),
        expires_at=timezone.now() + settings.VIGIL_STAFF_TOKEN_TTL,
    )
    return token, plaintext


def revoke_staff_token(*, token: StaffToken) -> None:
    """Marks the token revoked (a logout); a revoked one stays as it was."""
    StaffToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def revoke_staff_tokens(*, user) -> int:
    """Marks every unrevoked staff token of `user` revoked; returns how many. The admin
    calls it when it deactivates a user, takes staff status away or sets a new password
    (monitoring/admin/users.py)."""
    return StaffToken.objects.filter(user_id=user.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def revoke_stale_staff_tokens(*, user) -> int:
    """Marks revoked the staff tokens of `user` that no longer fit: every one while the user
    is not active staff, else those issued under another password (not the ones the user
    got since, with the new password). Returns how many."""
    tokens = StaffToken.objects.filter(user_id=user.pk, revoked_at__isnull=True)
    if user.is_active and user.is_staff:
        tokens = tokens.exclude(user_fingerprint=user_fingerprint(user))
    return tokens.update(revoked_at=timezone.now())


def issue_app_token(*, patient: Patient, created_by=None) -> tuple[PatientAppToken, str]:
    """Writes a PatientAppToken; returns it with the plaintext, which is not stored."""
    plaintext, digest = new_secret(PatientAppToken.PREFIX)
    token = PatientAppToken.objects.create(
        patient=patient,
        token_hash=digest,
        created_by=created_by,
        expires_at=timezone.now() + settings.VIGIL_APP_TOKEN_TTL,
    )
    return token, plaintext


def register_device(
    *, patient: Patient, kind: str, serial: str, model: str = ""
) -> tuple[Device, str]:
    """Writes a Device with a new key; returns it with the plaintext key, which is not stored."""
    plaintext, digest = new_secret(Device.KEY_PREFIX)
    device = Device.objects.create(
        patient=patient, kind=kind, model=model, serial=serial, key_hash=digest
    )
    return device, plaintext


def revoke_app_token(*, token: PatientAppToken) -> None:
    PatientAppToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def revoke_device(*, device: Device) -> None:
    Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# --- Failed logins: one store for the API's token login and the admin's ------------------
#
# Counted in the cache (Redis in deployments) over a fixed window from the first failure, in
# three buckets: the username with the address, the username from any address, and the
# address with any username, each with its own limit (settings: VIGIL_LOGIN_FAILURES_*).
# An attempt takes its place in every bucket before the password is checked (an atomic
# INCR), so concurrent guesses cannot all slip in under the limit; a success gives its
# places back and clears its username-and-address count. Keys hold SHA-256 digests, never
# a username.


def normalise_username(username: str) -> str:
    """The username as authentication sees it, case-folded: the admin's form applies NFKC
    (AbstractBaseUser.normalize_username) and both logins trim it, so "victim ", "Victim"
    and "victim" are one account to the counts."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def login_address(request) -> str:
    """The client address the counts key on; an IPv6 client by its /64, the block one
    subscriber holds, so walking through the addresses of one network is one address."""
    address = client_ip(request)
    if address is None:
        return "unknown"
    if ":" in address:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return address


def _login_buckets(request, username: str) -> dict[str, tuple[str, int]]:
    """{bucket: (cache key, failure limit)} of the counts a login attempt belongs to; a
    limit of 0 turns its bucket off."""
    name = hashlib.sha256(normalise_username(username).encode()).hexdigest()
    address = login_address(request)
    pair = hashlib.sha256(f"{name} {address}".encode()).hexdigest()
    buckets = {
        "pair": (
            f"login-failures:pair:{pair}",
            settings.VIGIL_LOGIN_FAILURES_PER_USERNAME_AND_ADDRESS,
        ),
        "username": (f"login-failures:user:{name}", settings.VIGIL_LOGIN_FAILURES_PER_USERNAME),
        "address": (f"login-failures:address:{address}", settings.VIGIL_LOGIN_FAILURES_PER_ADDRESS),
    }
    return {bucket: (key, limit) for bucket, (key, limit) in buckets.items() if limit > 0}


def _count_in(key: str) -> int:
    window = int(settings.VIGIL_LOGIN_LOCKOUT.total_seconds())
    cache.add(key, 0, timeout=window)  # the window starts at the first attempt
    try:
        return cache.incr(key)  # atomic in Redis: concurrent attempts all count
    except ValueError:  # expired between add and incr: a new window
        cache.add(key, 1, timeout=window)
        return 1


def _give_back(key: str) -> None:
    with contextlib.suppress(ValueError):  # the window ended meanwhile: nothing to give back
        cache.decr(key)


def claim_login_attempt(*, request, username: str) -> bool:
    """Counts an attempt to log in as `username` from the request's address, before the
    password is checked. False (and nothing counted) when a count is at its limit: the
    login must be refused without checking the password."""
    buckets = _login_buckets(request, username).values()
    counts = [_count_in(key) for key, _ in buckets]
    if all(count <= limit for count, (_, limit) in zip(counts, buckets, strict=True)):
        return True
    for key, _ in buckets:  # a refused attempt is not another failure
        _give_back(key)
    return False


def login_succeeded(*, request, username: str) -> None:
    """Clears the username's count at this address (its owner just proved the password
    here) and gives the username's and the address's counts back the place this attempt
    took, never more: neither the account's owner logging in nor an attacker logging in to
    an account of their own wipes failures that guessers elsewhere piled up."""
    buckets = _login_buckets(request, username)
    if "pair" in buckets:
        cache.delete(buckets["pair"][0])
    for name in ("username", "address"):
        if name in buckets:
            _give_back(buckets[name][0])


# --- Permissions --------------------------------------------------------------------------


class IsPatientApp(permissions.BasePermission):
    """A patient app token (not a device key: devices only post readings)."""

    message = "This endpoint needs a patient app token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return isinstance(user, PatientPrincipal) and user.device is None


class IsPatientAppOrDevice(permissions.BasePermission):
    message = "This endpoint needs a patient app token or a device key."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, PatientPrincipal)


class IsStaff(permissions.BasePermission):
    message = "This endpoint needs a staff token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_active and user.is_staff
