"""Signed JSON webhooks to a care team's own systems.

Headers: `X-Vigil-Timestamp` (Unix seconds) and `X-Vigil-Signature: sha256=<hex>`, the
HMAC-SHA256 of "<timestamp>.<body>" with the team's webhook secret, so a receiver can check
both origin and freshness.

The payload identifies the patient (`patient_external_id`: the receiver files the alert in
the patient's record), unlike an email subject or an SMS; it goes only to the URL the team
configured for its own system.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
from django.conf import settings

from delivery.channels.base import DeliveryError, Message, classify_http_status


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def send(*, target: str, message: Message, team=None) -> int | None:
    body = json.dumps(message.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Vigil-Timestamp": timestamp,
        "User-Agent": "Vigil-Webhook/1",
    }
    if team is not None and team.webhook_secret:
        headers["X-Vigil-Signature"] = sign(team.webhook_secret, timestamp, body)
    try:
        response = httpx.post(
            target, content=body, headers=headers, timeout=settings.VIGIL_WEBHOOK_TIMEOUT
        )
    except httpx.InvalidURL as error:
        raise DeliveryError(f"invalid webhook URL: {error}", permanent=True) from error
    except httpx.HTTPError as error:
        raise DeliveryError(
            f"webhook unreachable: {error.__class__.__name__}", permanent=False
        ) from error
    permanent = classify_http_status(response.status_code)
    if permanent is not None:
        raise DeliveryError(
            f"webhook answered {response.status_code}",
            permanent=permanent,
            status_code=response.status_code,
        )
    return response.status_code
