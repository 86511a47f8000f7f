"""The test broker's queues, whichever broker it is: Redis (the default run) or RabbitMQ
(./scripts/test's AMQP run, CELERY_BROKER_URL=amqp://…), for the tests that start a real
worker and wait for it to drain and acknowledge.

Redis keeps a queue as a list and what a worker took but has not acknowledged (acks_late)
in the `unacked` hash; RabbitMQ counts both per queue: ready messages (a passive
queue.declare answers them) and unacknowledged ones (`rabbitmqctl list_queues`, as root or
the rabbitmq user: the AMQP protocol does not tell them).
"""

from __future__ import annotations

import subprocess
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from kombu import Connection

REDIS_UNACKED = ("unacked", "unacked_index")


def is_redis() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def purge(*queues: str) -> None:
    """Empty these queues and forget what was delivered but not acknowledged (leftovers of an
    earlier run would be delivered to, or restored into, the next worker)."""
    if is_redis():
        with redis.Redis.from_url(settings.CELERY_BROKER_URL) as client:
            # The coalesced wake-ups (config.celery) too: a flag left set by an earlier run
            # would keep the next upload from publishing its drain message.
            coalesced = client.keys("vigil:wake:*") + client.keys("vigil:items:*")
            client.delete(*queues, *REDIS_UNACKED, *coalesced)
        return
    # RabbitMQ returns an unacknowledged message to its queue when the consumer's channel
    # closes: with the tests' workers stopped, purging the queue is all.
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as connection:
        for queue in queues:
            channel = connection.channel()
            try:
                channel.queue_purge(queue)
            except connection.channel_errors:  # not declared yet: nothing in it (the
                continue  # broker closed the channel)
            channel.close()


def settled(*queues: str) -> bool:
    """Nothing waiting in these queues and nothing delivered but unacknowledged."""
    if is_redis():
        with redis.Redis.from_url(settings.CELERY_BROKER_URL) as client:
            return all(client.llen(queue) == 0 for queue in queues) and not client.hlen("unacked")
    return all(ready == 0 and unacknowledged == 0 for ready, unacknowledged in _counts(queues))


def _counts(queues: tuple[str, ...]) -> list[tuple[int, int]]:
    """(ready, unacknowledged) per queue on RabbitMQ; a queue not declared yet holds none."""
    vhost = unquote(urlsplit(settings.CELERY_BROKER_URL).path[1:]) or "/"
    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "-p", vhost,
         "name", "messages_ready", "messages_unacknowledged"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    counts = {}
    for line in listing.splitlines():
        name, ready, unacknowledged = line.split("\t")
        counts[name] = (int(ready), int(unacknowledged))
    return [counts.get(queue, (0, 0)) for queue in queues]
