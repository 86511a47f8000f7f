"""Delivering a nudge to the patient: in the app, by push (FCM), SMS or email.

Each nudge is a row of the delivery outbox (delivery.outbox: claim with a lease, a
NudgeAttempt per attempt, backoff bounded by VIGIL_NUDGE_MAX_ATTEMPTS, sweep); what is
particular to nudges is here:
- the message: the nudge text and nothing else about the patient (no name, no MRN, no
  values);
- each channel's way to the patient (their phone, their email address, every active push
  token of their app installs);
- the in-app fallback: a channel that cannot reach the patient (no phone number, no email
  address, no active push token, the channel not configured on this server) shows the nudge
  in the app's list instead (GET /api/v1/nudges) with channel `in_app`, and `last_error`
  says why;
- a reminder whose slot was done while it waited is cancelled, not sent; so is a keep-sending
  nudge whose local day got device data meanwhile.

Also here: what the patient app does with nudges and push tokens (the API's domain functions).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import pgettext

from delivery import outbox
from delivery.channels import email as email_channel
from delivery.channels import push as push_channel
from delivery.channels import sms as sms_channel
from delivery.channels.base import DeliveryError, Message
from monitoring.models import (
    Nudge,
    NudgeChannel,
    NudgePurpose,
    Patient,
    PushToken,
    SlotStatus,
)
from monitoring.nudges.keep_sending import sent_device_data_on
from monitoring.nudges.texts import message_language

logger = logging.getLogger(__name__)

# Reminders about a slot; once the slot is done they have nothing left to say.
REMINDER_PURPOSES = {NudgePurpose.MEASUREMENT_DUE, NudgePurpose.DOSE_DUE}


class Unreachable(Exception):
    """The channel has no way to this patient; the message says why (no PHI)."""


class NudgeOutbox(outbox.Outbox):
    model = Nudge
    max_attempts_setting = "VIGIL_NUDGE_MAX_ATTEMPTS"
    deliver_task = "monitoring.tasks.deliver_nudge_task"
    sweep_task = "monitoring.tasks.enqueue_pending_nudges_task"

    def load(self, row_id: int) -> Nudge:
        return Nudge.objects.select_related("patient", "slot", "variant").get(pk=row_id)

    def cancelled(self, nudge: Nudge) -> str | None:
        # Logged while this waited (a retry, a queue): never nag about what is done.
        slot = nudge.slot
        if nudge.purpose in REMINDER_PURPOSES and slot and slot.status == SlotStatus.DONE:
            return "done before delivery"
        if nudge.purpose == NudgePurpose.KEEP_SENDING and sent_device_data_on(
            patient_id=nudge.patient_id, day=nudge.local_day
        ):
            return "device data sent before delivery"
        return None

    def send(self, nudge: Nudge, *, now: datetime) -> outbox.Sent:
        try:
            status_code = SENDERS[nudge.channel](nudge, now)
        except Unreachable as reason:
            logger.info("nudge %s shown in the app instead of %s", nudge.pk, nudge.channel)
            return outbox.Sent(
                note=f"{nudge.channel} not possible ({reason}): shown in the app instead",
                changes={"channel": NudgeChannel.IN_APP},
            )
        return outbox.Sent(status_code=status_code)


NUDGES = NudgeOutbox()


def deliver_nudge(*, nudge_id: int, now: datetime | None = None) -> str:
    """Send one nudge once (delivery.outbox.deliver). Returns an outbox.Outcome.

    Writes: Nudge (claim and attempts, then status, sent_at, last_error, and channel on a
    fallback to in-app), NudgeAttempt; PushToken.retired_at for tokens FCM calls
    UNREGISTERED. A nudge already sent or failed, or held by another worker (in flight or
    backing off), is skipped; a reminder whose slot was done is cancelled.
    """
    return outbox.deliver(NUDGES, row_id=nudge_id, now=now)


def build_message(nudge: Nudge) -> Message:
    """The nudge as a channel message: its own text, a neutral title in the text's language
    (the variant's: the patient's own, or English when the clinic has no variant in it, so
    title and text never mix two languages), ids for the app."""
    language = nudge.variant.language if nudge.variant is not None else nudge.patient.language
    with translation.override(message_language(language)):
        # Read on lock screens: no name, no reading, nothing clinical (delivery.channels.base).
        title = pgettext("nudge notification title", "A reminder from Vigil")
    return Message(
        subject=title,
        text=f"{nudge.text}\n",
        short=nudge.text,
        payload={"nudge_id": str(nudge.pk), "purpose": nudge.purpose},
    )


def _send_in_app(nudge: Nudge, now: datetime) -> int | None:
    """Nothing leaves the server: the app lists the nudge."""


def _send_sms(nudge: Nudge, now: datetime) -> int | None:
    if not nudge.patient.phone:
        raise Unreachable("the patient has no phone number")
    if not sms_channel.is_enabled():
        raise Unreachable("SMS is not configured on this server")
    return sms_channel.send(target=nudge.patient.phone, message=build_message(nudge))


def _send_email(nudge: Nudge, now: datetime) -> int | None:
    if not nudge.patient.email:
        raise Unreachable("the patient has no email address")
    if not email_channel.leaves_this_machine():
        raise Unreachable("email is not configured on this server")
    return email_channel.send(target=nudge.patient.email, message=build_message(nudge))


def _send_push(nudge: Nudge, now: datetime) -> int | None:
    """To every active token of the patient (each app install); delivered if any took it.
    No one status: each token had its own answer."""
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
        return None
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


def enqueue_pending_nudges(
    *, now: datetime | None = None, older_than: timedelta | None = None
) -> int:
    """The nudges' outbox sweep (delivery.outbox.enqueue_due)."""
    return outbox.enqueue_due(NUDGES, now=now, older_than=older_than)
