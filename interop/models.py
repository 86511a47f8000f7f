"""Interop's own rows: Nightscout uploaders and the Nightscout documents that are not readings.

Glucose values that arrive through Nightscout are Readings (monitoring), stored by the one
ingest path; what Nightscout keeps besides them (treatments, device status, calibrations and
sensor error codes) is kept here as the uploader sent it, under Nightscout's identity keys.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from monitoring.models import Patient


def secret_digest(sha1_hex: str) -> str:
    """What is stored of an uploader secret: SHA-256 of its SHA-1 hex.

    Uploaders send the SHA-1 hex of the secret in the `api-secret` header (Nightscout's
    lib/server/enclave.js `isApiKey`), so the SHA-1 hex is itself a credential and must not be
    stored; its SHA-256 is not one. The secret is 192 random bits: a fast hash is enough.
    """
    return hashlib.sha256(sha1_hex.lower().encode()).hexdigest()


class NightscoutUploader(models.Model):
    """A patient's Nightscout base URL (/nightscout/<slug>/) and its secret.

    One active uploader per patient (nightscout_uploader_one_active_per_patient): issuing a
    new one revokes the old in the same transaction, and the database refuses a second.
    """

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="nightscout_uploaders"
    )
    # Random, in the URL: names the patient to Nightscout clients without an id to guess.
    slug = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(revoked_at__isnull=True),
                name="nightscout_uploader_one_active_per_patient",
            )
        ]

    def __str__(self) -> str:
        return f"Nightscout uploader {self.pk} of patient {self.patient_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def accepts(self, credential: str) -> bool:
        """Is `credential` this uploader's secret, or its SHA-1 hex (what uploaders send)?"""
        candidates = [hashlib.sha1(credential.encode()).hexdigest()]
        if len(credential) == 40:
            candidates.append(credential)
        return any(
            hmac.compare_digest(secret_digest(candidate), self.secret_hash)
            for candidate in candidates
        )


class NightscoutCollection(models.TextChoices):
    ENTRIES = "entries", "Entries (calibrations, sensor codes)"
    TREATMENTS = "treatments", "Treatments"
    DEVICESTATUS = "devicestatus", "Device status"


class NightscoutDocument(models.Model):
    """One Nightscout document of a patient that is not a glucose reading, as it was sent.

    `key` is Nightscout's identity of the document in its collection (entries: type and
    date; treatments: eventType and created_at, lib/server/treatments.js upsertQueryFor;
    device status: created_at and device), so a re-post replaces nothing and adds no row.
    `document_id` is the `_id` answered to clients, derived from the key.
    """

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="nightscout_documents", db_index=False
    )
    collection = models.CharField(max_length=16, choices=NightscoutCollection.choices)
    key = models.CharField(max_length=200)
    document_id = models.CharField(max_length=24)
    # The document's own time (entries' date, others' created_at): what queries order by.
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    document = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "collection", "key"], name="nightscout_document_key"
            )
        ]
        indexes = [
            # GET treatments.json / devicestatus.json: a patient's newest first.
            models.Index(
                "patient",
                "collection",
                models.F("occurred_at").desc(),
                name="nightscout_document_time",
            )
        ]

    def __str__(self) -> str:
        return f"Nightscout {self.collection} {self.document_id} of patient {self.patient_id}"
