"""The delivery outbox: each pending row is sent once, through its channel, with a record of
every attempt.

An outbox is a table of deliveries (alert notifications, patient nudges) whose rows carry
`status` (pending → sent, failed or cancelled), `attempts`, `claimed_until`, `created_at`,
`sent_at`, `last_error` and `channel`, and `attempt_log`: the reverse of the foreign key of
its attempt model (a delivery.models.Attempt, unique on row and number).
The app that owns the rows describes them with an `Outbox`: how to load one, when one must
not go out any more, how to send one, what else a failure means. The mechanics are here:

- claim: a conditional UPDATE takes the pending row unless another worker holds it (in
  flight, or waiting for its retry) and counts the attempt; never check-then-write;
- record: the attempt's row is written before the channel is called, its outcome after;
- back off: a failure that may pass holds the row until its retry is due (retry_delay), a
  bound on attempts fails it; a permanent one fails it at once;
- sweep: pending rows whose task was lost (a broker restart, a killed worker) are enqueued
  again once their lease and a grace have passed.

Tasks enqueue by name (config.celery), so nothing here imports an app above it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.celery import enqueue_all_on_commit
from delivery.channels.base import DeliveryError
from delivery.models import Attempt, AttemptOutcome

logger = logging.getLogger(__name__)

# One lease for every outbox: how long a claim holds its row while the row is sent. It must
# outlast the longest a worker can still be sending, or a sweep could hand the row to a
# second worker and the person would get it twice: Celery kills a task at its hard time
# limit (CELERY_TASK_TIME_LIMIT, 3 min by default), so no worker sends a row whose lease,
# taken from that limit, has lapsed. Before the outbox was shared, notifications held their
# row 1 min (sized from one send, which every channel bounds with 10-s timeouts, so that a
# page whose worker died went out again soon) and nudges 5 min (above the time limit, as a
# push goes to each of the patient's devices in turn). The time limit keeps the nudges'
# guarantee for both; a page whose worker died is also covered by escalation, which pages
# the next level if nobody acknowledges.
LEASE = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)

# One backoff for every outbox, for failures that may pass (network, 5xx, 408, 429): 30 s,
# then doubling (1, 2, 4, 8 … min), capped at 30 min. It was already shared (nudges used the
# notifications' retry_delay); what differs per outbox is how many attempts it allows
# (Outbox.max_attempts_setting): a page is worth trying for longer than a nudge about now.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)


class Status:
    """The status values every outbox's rows use (their TextChoices carry the labels)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outcome:
    """What one delivery run did (a task returns it: it shows in the worker's log)."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Sent:
    """A send that succeeded. `note` says how, when the row reached its person another way
    than its own (a nudge shown in the app instead): it is kept on the row and its attempt.
    `changes` are written on the row with its sent status (the channel actually used)."""

    status_code: int | None = None
    note: str = ""
    changes: dict = field(default_factory=dict)


class Outbox(ABC):
    """What the outbox needs to know about one table of deliveries; its owner subclasses it."""

    model: type[models.Model]
    # The setting bounding attempts (a failure that may pass is retried until then).
    max_attempts_setting: str
    # Registered task names: one row's delivery (takes its id), and the sweep.
    deliver_task: str
    sweep_task: str

    def load(self, row_id: int) -> models.Model:
        """The row, with what sending it reads."""
        return self.model.objects.get(pk=row_id)

    def cancelled(self, row) -> str | None:
        """Why the row must not go out any more (said on the row), or None to send it."""
        return None

    @abstractmethod
    def send(self, row, *, now: datetime) -> Sent:
        """Send the row through its channel; raises DeliveryError."""

    def failed(self, row, *, error: DeliveryError, now: datetime) -> None:  # noqa: B027
        """The row has failed for good (after it was recorded): what else that means.
        Nothing, unless the owner says (a hook with a default, not an abstract method)."""


def retry_delay(attempts: int) -> timedelta:
    """How long a delivery waits after its `attempts`-th failure that may pass."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def claim(outbox: Outbox, *, row_id: int, now: datetime) -> bool:
    """Take the pending row for one attempt, unless another worker holds it. Writes:
    claimed_until (the lease) and attempts + 1, in one conditional UPDATE, so of two
    workers racing for the row exactly one gets it."""
    return bool(
        outbox.model.objects.filter(pk=row_id, status=Status.PENDING)
        # A retry is scheduled for the moment its hold lapses (retry_delay): that moment is free.
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + LEASE, attempts=F("attempts") + 1)
    )


def deliver(outbox: Outbox, *, row_id: int, now: datetime | None = None) -> str:
    """Send one row once. Returns an Outcome.

    Writes: the row (claim, then status, sent_at, last_error, or the hold until its retry)
    and its attempt; whatever the outbox's own `send` and `failed` write. A row already
    sent, failed or cancelled, or held by another worker (in flight or backing off), is
    skipped; one the outbox calls cancelled is cancelled without an attempt.
    """
    now = now or timezone.now()
    if not claim(outbox, row_id=row_id, now=now):
        return Outcome.SKIPPED
    row = outbox.load(row_id)
    reason = outbox.cancelled(row)
    if reason:
        _update(outbox, row, status=Status.CANCELLED, claimed_until=None, last_error=reason)
        return Outcome.CANCELLED
    attempt = _start_attempt(row, now)
    started = time.monotonic()
    try:
        sent = outbox.send(row, now=now)
    except DeliveryError as error:
        return _record_failure(outbox, row, attempt, error, now, started)
    _finish_attempt(
        attempt, AttemptOutcome.SENT, started, status_code=sent.status_code, error=sent.note
    )
    _update(
        outbox,
        row,
        status=Status.SENT,
        sent_at=now,
        claimed_until=None,
        last_error=sent.note,
        **sent.changes,
    )
    logger.info("%s %s sent via %s (attempt %s)", _name(row), row.pk, row.channel, row.attempts)
    return Outcome.SENT


def retry_countdown(outbox: Outbox, *, row_id: int) -> float:
    """Seconds until the row's retry is due, for the task's retry. The row counts the
    attempts (a task the sweep enqueued starts at retries 0, so the task's own count would
    undercount) and is held for the same delay, so the retry finds it free."""
    attempts = outbox.model.objects.values_list("attempts", flat=True).get(pk=row_id)
    return retry_delay(attempts).total_seconds()


def enqueue_due(
    outbox: Outbox, *, now: datetime | None = None, older_than: timedelta | None = None
) -> int:
    """The outbox sweep: pending rows whose delivery task was lost are enqueued again.

    A row is left alone while claimed (in flight, or waiting for its retry) and for
    `older_than` (VIGIL_EVALUATION_GRACE) after, which gives the task that was due then the
    time to take it; a row whose worker died is taken once its LEASE has lapsed, plus that.
    Enqueues after commit: the deliveries, oldest first (at most VIGIL_SWEEP_BATCH), and the
    sweep itself when more remain. Returns how many deliveries it enqueued.
    """
    now = now or timezone.now()
    cutoff = now - (older_than or settings.VIGIL_EVALUATION_GRACE)
    limit = settings.VIGIL_SWEEP_BATCH
    stuck = list(
        outbox.model.objects.filter(status=Status.PENDING, created_at__lt=cutoff)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=cutoff))
        .order_by("created_at", "id")
        .values_list("id", flat=True)[: limit + 1]
    )
    messages = [(outbox.deliver_task, (pk,), {}) for pk in stuck[:limit]]
    if len(stuck) > limit:
        # Rows are claimed when they are sent, so the next batch may overlap this one
        # without sending anything twice.
        messages.append((outbox.sweep_task, (), {}))
    enqueue_all_on_commit(messages)
    return min(len(stuck), limit)


def enqueue_deliveries(outbox: Outbox, *, row_ids: list[int]) -> None:
    """Enqueue after commit one delivery per row."""
    enqueue_all_on_commit([(outbox.deliver_task, (pk,), {}) for pk in row_ids])


def _start_attempt(row, now: datetime) -> Attempt:
    """The attempt's row, written before the channel is called: if the worker dies mid-send,
    the history still shows that a message may have gone out then (outcome unknown)."""
    try:
        with transaction.atomic():
            return row.attempt_log.create(
                number=row.attempts, at=now, outcome=AttemptOutcome.UNKNOWN
            )
    except IntegrityError:
        # The claim gave this run the number; a row holding it means the claim was broken.
        logger.warning("attempt %s of %s %s recorded twice", row.attempts, _name(row), row.pk)
        return row.attempt_log.get(number=row.attempts)


def _finish_attempt(attempt, outcome, started, *, status_code=None, error="") -> None:
    attempt.outcome = outcome
    attempt.status_code = status_code
    attempt.error = error[:2000]
    attempt.duration_ms = int((time.monotonic() - started) * 1000)
    attempt.save(update_fields=["outcome", "status_code", "error", "duration_ms"])


def _record_failure(outbox: Outbox, row, attempt, error: DeliveryError, now, started) -> str:
    exhausted = row.attempts >= getattr(settings, outbox.max_attempts_setting)
    outcome = (
        AttemptOutcome.PERMANENT_FAILURE if error.permanent else (AttemptOutcome.TRANSIENT_FAILURE)
    )
    _finish_attempt(attempt, outcome, started, status_code=error.status_code, error=str(error))
    logger.warning(
        "%s %s via %s failed (attempt %s, %s): %s",
        _name(row),
        row.pk,
        row.channel,
        row.attempts,
        "permanent" if error.permanent else "transient",
        error,
    )
    if not error.permanent and not exhausted:
        # Held until the retry is due, so neither a redelivered task nor the sweep takes it
        # early (which would undo the backoff); if the retry task is lost, the sweep takes
        # it after that.
        _update(outbox, row, claimed_until=now + retry_delay(row.attempts), last_error=str(error))
        return Outcome.RETRY
    reason = str(error) if error.permanent else f"{error} (gave up after {row.attempts} attempts)"
    _update(outbox, row, status=Status.FAILED, claimed_until=None, last_error=reason)
    outbox.failed(row, error=error, now=now)
    return Outcome.FAILED


def _update(outbox: Outbox, row, *, last_error: str, **values) -> None:
    outbox.model.objects.filter(pk=row.pk).update(last_error=last_error[:2000], **values)


def _name(row) -> str:
    return row._meta.model_name
