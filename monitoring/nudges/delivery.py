"""Delivering a nudge to the patient: in the app, by push (FCM), SMS or email.

`deliver_nudge` claims the pending row with a lease (conditional UPDATE), sends it through
the nudge's channel and records the outcome on the row:
- sent (`sent_at`);
- retried later when the failure may pass (network, 5xx, 408, 429): the row is held until
  the retry is due, so a redelivered task cannot send early; bounded by
  VIGIL_NUDGE_MAX_ATTEMPTS;
- failed with `last_error` when it cannot succeed (other 4xx, bad configuration) or the
  attempts ran out.
A channel that cannot reach the patient (no phone number, no email address, no active push
token, the channel not configured on this server) falls back to in-app: the nudge is shown in
the app's list (GET /api/v1/nudges) with channel `in_app`, and `last_error` says why.

Messages carry the nudge text and nothing else about the patient: no name, no MRN, no values.

Also here: what the patient app does with nudges and push tokens (the API's domain functions).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext

from alerts.channels import email as email_channel
from alerts.channels import push as push_channel
from alerts.channels import sms as sms_channel
from alerts.channels.base import DeliveryError, Message
from alerts.notify import retry_delay
from config.celery import enqueue_on_commit
from monitoring.models import (
    Nudge,
    NudgeChannel,
    NudgePurpose,
    NudgeStatus,
    Patient,
    PushToken,
    SlotStatus,
)

logger = logging.getLogger(__name__)

# Longer than any delivery can run (the task's hard time limit, CELERY_TASK_TIME_LIMIT, is
# 3 min): a worker that died mid-send frees the row when it lapses, not before.
LEASE = timedelta(minutes=5)

# Where mail stays on this machine (the default without EMAIL_HOST writes files): alert
# emails are kept there for the operator, but a patient would never see a nudge.
LOCAL_EMAIL_BACKENDS = {
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


class NudgeOutcome:
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# Reminders about a slot; once the slot is done they have nothing left to say.
REMINDER_PURPOSES = {NudgePurpose.MEASUREMENT_DUE, NudgePurpose.DOSE_DUE}


class Unreachable(Exception):
    """The channel has no way to this patient; the message says why (no PHI)."""


def deliver_nudge(*, nudge_id: int, now: datetime | None = None) -> str:
    """Send one nudge once. Returns a NudgeOutcome.

    Writes: Nudge (claim and attempts, then status, sent_at, last_error, and channel on a
    fallback to in-app); PushToken.retired_at for tokens FCM calls UNREGISTERED. A nudge
    already sent or failed, or held by another worker (in flight or backing off), is skipped.
    """
    now = now or timezone.now()
    claimed = (
        Nudge.objects.filter(pk=nudge_id, status=NudgeStatus.PENDING)
        # A retry is scheduled for the moment its hold lapses (retry_delay): that moment is free.
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return NudgeOutcome.SKIPPED
    nudge = Nudge.objects.select_related("patient", "slot").get(pk=nudge_id)
    if nudge.purpose in REMINDER_PURPOSES and nudge.slot and nudge.slot.status == SlotStatus.DONE:
        # Logged while this waited (a retry, a queue): never nag about what is done.
        Nudge.objects.filter(pk=nudge.pk).update(
            status=NudgeStatus.CANCELLED, claimed_until=None, last_error="done before delivery"
        )
        return NudgeOutcome.CANCELLED
    try:
        SENDERS[nudge.channel](nudge, now)
    except Unreachable as reason:
        return _fall_back_to_in_app(nudge, str(reason), now)
    except DeliveryError as error:
        return _record_failure(nudge, error, now)
    Nudge.objects.filter(pk=nudge.pk).update(
        status=NudgeStatus.SENT, sent_at=now, claimed_until=None, last_error=""
    )
    logger.info("nudge %s sent via %s (attempt %s)", nudge.pk, nudge.channel, nudge.attempts)
    return NudgeOutcome.SENT


def build_message(nudge: Nudge) -> Message:
    """The nudge as a channel message: its own text, a neutral title, ids for the app."""
    with translation.override(nudge.patient.language):
        title = gettext("A reminder from Vigil")
    return Message(
        subject=title,
        text=f"{nudge.text}\n",
        short=nudge.text,
        payload={"nudge_id": str(nudge.pk), "purpose": nudge.purpose},
    )


def _send_in_app(nudge: Nudge, now: datetime) -> None:
    """Nothing leaves the server: the app lists the nudge."""


def _send_sms(nudge: Nudge, now: datetime) -> None:
    if not nudge.patient.phone:
        raise Unreachable("the patient has no phone number")
    if not sms_channel.is_enabled():
        raise Unreachable("SMS is not configured on this server")
    sms_channel.send(target=nudge.patient.phone, message=build_message(nudge))


def _send_email(nudge: Nudge, now: datetime) -> None:
    if not nudge.patient.email:
        raise Unreachable("the patient has no email address")
    if settings.EMAIL_BACKEND in LOCAL_EMAIL_BACKENDS:
        raise Unreachable("email is not configured on this server")
    email_channel.send(target=nudge.patient.email, message=build_message(nudge))


def _send_push(nudge: Nudge, now: datetime) -> None:
    """To every active token of the patient (each app install); delivered if any took it."""
    if not push_channel.is_enabled():
        raise Unreachable("push is not configured on this server")
    tokens = list(
        PushToken.objects.filter(patient_id=nudge.patient_id, retired_at__isnull=True).order_by(
            "id"
        )
    )
    if not tokens:
        raise Unreachable("the patient has no active push token")
    message = build_message(nudge)
    delivered, errors = 0, []
    for token in tokens:
        try:
            push_channel.send(target=token.token, message=message)
        except push_channel.UnregisteredToken:
            # The app was uninstalled or its token replaced: never try this token again.
            PushToken.objects.filter(pk=token.pk, retired_at__isnull=True).update(retired_at=now)
            logger.info("push token %s retired: FCM says it is unregistered", token.pk)
            continue
        except DeliveryError as error:
            errors.append(error)
            logger.warning("nudge %s push to token %s failed: %s", nudge.pk, token.pk, error)
            continue
        delivered += 1
    if delivered:
        return
    if not errors:
        raise Unreachable("every push token of the patient is unregistered")
    # One failure that may pass is worth a retry, even if other tokens failed for good.
    raise next((error for error in errors if not error.permanent), errors[0])


SENDERS = {
    NudgeChannel.IN_APP: _send_in_app,
    NudgeChannel.PUSH: _send_push,
    NudgeChannel.SMS: _send_sms,
    NudgeChannel.EMAIL: _send_email,
}


def _fall_back_to_in_app(nudge: Nudge, reason: str, now: datetime) -> str:
    Nudge.objects.filter(pk=nudge.pk).update(
        channel=NudgeChannel.IN_APP,
        status=NudgeStatus.SENT,
        sent_at=now,
        claimed_until=None,
        last_error=f"{nudge.channel} not possible ({reason}): shown in the app instead",
    )
    logger.info("nudge %s shown in the app instead of %s", nudge.pk, nudge.channel)
    return NudgeOutcome.SENT


def _record_failure(nudge: Nudge, error: DeliveryError, now: datetime) -> str:
    exhausted = nudge.attempts >= settings.VIGIL_NUDGE_MAX_ATTEMPTS
    logger.warning(
        "nudge %s via %s failed (attempt %s, %s): %s",
        nudge.pk,
        nudge.channel,
        nudge.attempts,
        "permanent" if error.permanent else "transient",
        error,
    )
    if not error.permanent and not exhausted:
        # Held until the retry is due, so a redelivered task does not undo the backoff.
        Nudge.objects.filter(pk=nudge.pk).update(
            claimed_until=now + retry_delay(nudge.attempts), last_error=str(error)[:2000]
        )
        return NudgeOutcome.RETRY
    reason = str(error) if error.permanent else f"{error} (gave up after {nudge.attempts} attempts)"
    Nudge.objects.filter(pk=nudge.pk).update(
        status=NudgeStatus.FAILED, claimed_until=None, last_error=reason[:2000]
    )
    return NudgeOutcome.FAILED


# --- The patient app ----------------------------------------------------------------------


def open_nudge(*, patient: Patient, nudge_id: int, now: datetime | None = None) -> Nudge | None:
    """The patient opened the nudge in the app. Writes Nudge.opened_at the first time only
    (a re-sent request keeps the first time). None when the patient has no such nudge."""
    now = now or timezone.now()
    Nudge.objects.filter(pk=nudge_id, patient=patient, opened_at__isnull=True).update(opened_at=now)
    return Nudge.objects.filter(pk=nudge_id, patient=patient).first()


def register_push_token(*, patient: Patient, token: str, platform: str) -> tuple[PushToken, bool]:
    """The app's FCM registration token, stored once per patient; returns (token, created).

    Writes: the PushToken (a retired one is active again; the platform is updated). A token
    names one app install, so the same token of another patient (the phone changed hands,
    another patient logged in) is deleted: their nudges must not show on this phone.
    """
    with transaction.atomic():
        PushToken.objects.filter(token=token).exclude(patient=patient).delete()
        try:
            with transaction.atomic():
                return (
                    PushToken.objects.create(patient=patient, token=token, platform=platform),
                    True,
                )
        except IntegrityError:
            pass  # registered before (or by a concurrent request): the unique constraint
        PushToken.objects.filter(patient=patient, token=token).update(
            platform=platform, retired_at=None
        )
        return PushToken.objects.get(patient=patient, token=token), False


def forget_push_token(*, patient: Patient, token: str) -> int:
    """The app logged out or lost its token. Deletes the patient's PushToken; returns how
    many rows went (0 for a token the patient does not have: nothing to do)."""
    deleted, _ = PushToken.objects.filter(patient=patient, token=token).delete()
    return deleted


def enqueue_pending_nudges(*, now: datetime | None = None, older_than=timedelta(minutes=2)) -> int:
    """The outbox sweep: pending nudges whose delivery task was lost are enqueued again.

    A nudge is left alone while held (in flight, or backing off to its own retry) and for
    `older_than` after. Enqueues after commit: one delivery per nudge (at most
    VIGIL_SWEEP_BATCH), and the sweep again when more remain.
    """
    from monitoring.tasks import deliver_nudge_task, enqueue_pending_nudges_task

    now = now or timezone.now()
    limit = settings.VIGIL_SWEEP_BATCH
    stuck = list(
        Nudge.objects.filter(status=NudgeStatus.PENDING, created_at__lt=now - older_than)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now - older_than))
        .order_by("created_at", "id")
        .values_list("id", flat=True)[: limit + 1]
    )
    with transaction.atomic():
        for nudge_id in stuck[:limit]:
            enqueue_on_commit(deliver_nudge_task, nudge_id)
        if len(stuck) > limit:
            enqueue_on_commit(enqueue_pending_nudges_task)
    return min(len(stuck), limit)
