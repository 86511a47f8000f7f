"""Issuing, revoking and recognising a patient's Nightscout uploader."""

from __future__ import annotations

import hashlib
import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from interop.models import NightscoutUploader, secret_digest
from monitoring.models import Patient

# 192 random bits each; URL-safe, as xDrip+ takes the secret in the URL's user part.
SLUG_BYTES = 12
SECRET_BYTES = 24
ISSUE_ATTEMPTS = 3


def issue_uploader(*, patient: Patient, created_by) -> tuple[NightscoutUploader, str]:
    """Revokes the patient's active uploader, if any, and writes a new one, in one
    transaction; returns it with the plaintext secret, which is not stored.

    The partial unique constraint nightscout_uploader_one_active_per_patient keeps one
    active uploader: of two concurrent issues, the second's insert fails when the first
    commits (its revoking UPDATE could not see the first's new row); it then tries again,
    revoking that one, so the last issue wins and both callers get a working secret until
    the next replaces it.
    """
    for attempt in range(1, ISSUE_ATTEMPTS + 1):
        plaintext = secrets.token_urlsafe(SECRET_BYTES)
        try:
            with transaction.atomic():
                NightscoutUploader.objects.filter(patient=patient, revoked_at__isnull=True).update(
                    revoked_at=timezone.now()
                )
                uploader = NightscoutUploader.objects.create(
                    patient=patient,
                    slug=secrets.token_urlsafe(SLUG_BYTES),
                    secret_hash=secret_digest(hashlib.sha1(plaintext.encode()).hexdigest()),
                    created_by=created_by,
                )
            return uploader, plaintext
        except IntegrityError:
            if attempt == ISSUE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def revoke_uploader(*, patient: Patient) -> NightscoutUploader | None:
    """Revokes the patient's active uploader; returns it, or None when there was none."""
    uploader = NightscoutUploader.objects.filter(patient=patient, revoked_at__isnull=True).first()
    if uploader is None:
        return None
    NightscoutUploader.objects.filter(pk=uploader.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return uploader


def authenticate_uploader(*, slug: str, credentials: list[str]) -> NightscoutUploader | None:
    """The active uploader of `slug` if one of `credentials` is its secret (or the secret's
    SHA-1 hex); None otherwise: an unknown, revoked or wrongly keyed base URL alike."""
    if not any(credentials):
        return None
    uploader = (
        NightscoutUploader.objects.select_related("patient")
        .filter(slug=slug, revoked_at__isnull=True)
        .first()
    )
    if uploader is None:
        return None
    if any(credential and uploader.accepts(credential) for credential in credentials):
        return uploader
    return None
