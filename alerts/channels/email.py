"""Email through Django's configured email backend (SMTP in production)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from alerts.channels.base import DeliveryError, Message

PERMANENT = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPNotSupportedError,
)


def send(*, target: str, message: Message, team=None) -> int | None:
    email = EmailMessage(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[target],
    )
    try:
        email.send(fail_silently=False)
    except PERMANENT as error:
        raise DeliveryError(f"email refused: {error.__class__.__name__}", permanent=True) from error
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"email failed: {error.__class__.__name__}", permanent=False) from error
    return None
