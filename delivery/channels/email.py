"""Email through Django's configured email backend (SMTP in production).

SMTP says itself whether trying again can help: a 4yz reply is temporary (mailbox busy,
server shutting down), a 5yz reply permanent (no such user, rejected credentials), RFC 5321
§4.2.1. Errors without a reply (connection refused, timeout) are network errors: temporary.
"""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from delivery.channels.base import DeliveryError, Message

# Where mail stays on this machine (the default without EMAIL_HOST writes files): alert
# emails are kept there for the operator, but a patient would never see a nudge.
LOCAL_EMAIL_BACKENDS = {
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


def leaves_this_machine() -> bool:
    """Whether the configured backend sends mail out (SMTP) rather than keeping it here."""
    return settings.EMAIL_BACKEND not in LOCAL_EMAIL_BACKENDS


def smtp_reply_code(error: smtplib.SMTPException) -> int | None:
    """The server's reply code to the failed command (the worst, for refused recipients)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return max((code for code, _ in error.recipients.values()), default=None)
    return getattr(error, "smtp_code", None)


def send(*, target: str, message: Message, team=None) -> int | None:
    email = EmailMessage(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[target],
    )
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPException as error:
        code = smtp_reply_code(error)
        if code is None:
            # The server lacks what we need (no STARTTLS or AUTH): configuration, not luck.
            permanent = isinstance(error, smtplib.SMTPNotSupportedError)
        else:
            permanent = code >= 500
        verb = "refused" if permanent else "failed"
        raise DeliveryError(
            f"email {verb}: {error.__class__.__name__}", permanent=permanent, status_code=code
        ) from error
    except OSError as error:
        raise DeliveryError(f"email failed: {error.__class__.__name__}", permanent=False) from error
    return None
