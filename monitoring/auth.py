"""Bearer credentials for the API: staff tokens, patient app tokens and device keys.

Each credential is a random string with a prefix naming its kind; only its SHA-256 is
stored. A wrong, expired or revoked credential is a 401. What a valid credential may reach
is decided by the permission classes here and by the views' querysets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

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
            if found and found.is_usable(now) and found.user.is_active and found.user.is_staff:
                _touch(found, "last_used_at", now)
                return found.user, found
        elif prefix == PatientAppToken.PREFIX:
            found = (
                PatientAppToken.objects.select_related("patient").filter(token_hash=digest).first()
            )
            if found and found.is_usable(now):
                _touch(found, "last_used_at", now)
                return PatientPrincipal(patient=found.patient), found
        elif prefix == Device.KEY_PREFIX:
            found = Device.objects.select_related("patient").filter(key_hash=digest).first()
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


def issue_staff_token(*, user) -> tuple[StaffToken, str]:
    """Writes a StaffToken; returns it with the plaintext, which is not stored."""
    plaintext, digest = new_secret(StaffToken.PREFIX)
    token = StaffToken.objects.create(
        user=user, token_hash=digest, expires_at=timezone.now() + settings.VIGIL_STAFF_TOKEN_TTL
    )
    return token, plaintext


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
