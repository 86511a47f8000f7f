"""SMS through Twilio's REST API (Messages resource), enabled when TWILIO_* are set."""

from __future__ import annotations

import httpx
from django.conf import settings

from delivery.channels.base import DeliveryError, Message, classify_http_status


def is_enabled() -> bool:
    return bool(
        settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_FROM_NUMBER
    )


def send(*, target: str, message: Message, team=None) -> int | None:
    if not is_enabled():
        raise DeliveryError("SMS is not configured (TWILIO_* settings)", permanent=True)
    sid = settings.TWILIO_ACCOUNT_SID
    url = f"{settings.TWILIO_API_BASE}/2010-04-01/Accounts/{sid}/Messages.json"
    try:
        response = httpx.post(
            url,
            data={"To": target, "From": settings.TWILIO_FROM_NUMBER, "Body": message.short},
            auth=(sid, settings.TWILIO_AUTH_TOKEN),
            timeout=settings.VIGIL_WEBHOOK_TIMEOUT,
        )
    except httpx.HTTPError as error:
        raise DeliveryError(
            f"SMS gateway unreachable: {error.__class__.__name__}", permanent=False
        ) from error
    permanent = classify_http_status(response.status_code)
    if permanent is not None:
        raise DeliveryError(
            f"SMS gateway answered {response.status_code}",
            permanent=permanent,
            status_code=response.status_code,
        )
    return response.status_code
