"""The real Redis broker the tests publish to, and brokers that fail in the ways brokers do.

Tests read the broker's Redis database directly: kombu's Redis transport keeps a queue as a
list of that name (LPUSH to publish, BRPOP to consume), so its length is what is enqueued.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings

from config.celery import app as celery_app


@dataclass(frozen=True)
class QueuedTask:
    name: str
    args: list
    kwargs: dict


class BrokerQueue:
    """One Celery queue as it sits in the broker's Redis database."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = client
        self.name = name

    def __len__(self) -> int:
        return self.client.llen(self.name)

    def tasks(self) -> list[QueuedTask]:
        """The queued task messages, oldest first (the order a worker takes them)."""
        return [_decode(raw) for raw in reversed(self.client.lrange(self.name, 0, -1))]

    def purge(self) -> None:
        """Drop the queued messages, and with them the coalesced wake-ups they carried
        (config.celery.enqueue_coalesced_on_commit): the next upload publishes again."""
        self.client.delete(self.name, *self.client.keys("vigil:wake:*"))
        self.client.delete(*self.client.keys("vigil:items:*") or ["vigil:items:"])
        self.client.delete(*self.client.keys("vigil:bell:*") or ["vigil:bell:"])

    def waiting(self, task) -> set[int]:
        """The items waiting in a coalesced task's set."""
        return {int(item) for item in self.client.smembers(f"vigil:items:{task.name}")}


def _decode(raw: bytes) -> QueuedTask:
    message = json.loads(raw)
    assert message["properties"]["body_encoding"] == "base64"
    assert message["content-type"] == "application/json"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return QueuedTask(name=message["headers"]["task"], args=args, kwargs=kwargs)


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A client of the broker's own Redis database (scripts/test: CELERY_BROKER_URL)."""
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "tests need a Redis broker"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    client.close()


@pytest.fixture
def evaluation_queue(broker) -> Iterator[BrokerQueue]:
    """The 'evaluation' queue, empty at the start and purged afterwards."""
    queue = BrokerQueue(broker, "evaluation")
    queue.purge()
    yield queue
    queue.purge()


@contextlib.contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """Make the Celery app publish to `url` for the duration, then back to the test broker.

    `broker_write_url` is Celery's own setting for where producers connect. (Assigning
    `broker_url` would not do: the namespaced CELERY_BROKER_URL from Django settings shadows
    it.) Celery keeps the connection pool (`app.pool`) and producer pool
    (`app.amqp.producer_pool`) it built on first use; dropping both, as Celery itself does
    after a fork (`Celery._after_fork`), makes the next publish build them for the new URL.
    kombu keeps pools per URL, so switching back reuses the test broker's pool.
    """
    original = celery_app.conf.broker_write_url

    def use(write_url: str | None) -> None:
        celery_app.conf.broker_write_url = write_url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    use(url)
    try:
        publishing = celery_app.amqp.producer_pool.connections.connection
        target = urlsplit(url)
        assert (publishing.hostname, publishing.port) == (target.hostname, target.port)
        yield
    finally:
        use(original)


@pytest.fixture
def refused_broker() -> Callable[[], contextlib.AbstractContextManager]:
    """`with refused_broker():` the app publishes where nothing listens (connection refused)."""
    return lambda: publishing_to("redis://127.0.0.1:1/0")


@pytest.fixture
def silent_broker() -> Iterator[Callable[[], contextlib.AbstractContextManager]]:
    """`with silent_broker():` the app publishes to a broker that connects and never answers.

    A listening socket that is never accept()ed: the kernel completes the handshake, then
    nothing replies, as with a hung Redis or a connection lost in a network partition.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        host, port = listener.getsockname()
        yield lambda: publishing_to(f"redis://{host}:{port}/0")


# --- Reminder sweep ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NudgeCall:
    function: str  # "nudge_patient" or "handle_missed_slot"
    purpose: str  # the missed purpose for handle_missed_slot
    slot_id: int
    now: datetime


@pytest.fixture
def nudge_calls(monkeypatch) -> list[NudgeCall]:
    """Every call the reminder sweep (monitoring/nudges/sweeps.py) makes to nudge_patient and
    handle_missed_slot, in order; each call then runs the real function. A spy, not a mock:
    the nudges' own rules (caps, quiet hours, dedupe) still decide what is written, and
    tests read how often the sweep asked. Appending to a list is safe across threads."""
    from monitoring.nudges import sweeps

    calls: list[NudgeCall] = []
    real_nudge_patient, real_handle_missed_slot = sweeps.nudge_patient, sweeps.handle_missed_slot

    def nudge_patient(*, patient, purpose, slot, now, rng=None):
        calls.append(NudgeCall("nudge_patient", purpose, slot.pk if slot else None, now))
        return real_nudge_patient(patient=patient, purpose=purpose, slot=slot, now=now, rng=rng)

    def handle_missed_slot(*, slot, now):
        purpose = "dose_missed" if slot.plan_id else "measurement_missed"
        calls.append(NudgeCall("handle_missed_slot", purpose, slot.pk, now))
        return real_handle_missed_slot(slot=slot, now=now)

    # handle_missed_slot calls nudge_patient through the module's globals: the spy sees those
    # 'missed' nudges too, with their purpose.
    monkeypatch.setattr(sweeps, "nudge_patient", nudge_patient)
    monkeypatch.setattr(sweeps, "handle_missed_slot", handle_missed_slot)
    return calls
