"""Celery application: `celery -A config worker`, `celery -A config beat`."""

import contextlib
import logging
import os
from collections.abc import Sequence
from functools import cache

import redis
from celery import Celery
from celery.signals import task_prerun
from django.db import close_old_connections, transaction
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("vigil")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# CELERY_DB_REUSE_MAX (read by Celery's Django fixup) comes from Django settings like the rest.

# (task or its registered name, positional arguments, keyword arguments): one message.
Message = tuple[object, tuple, dict]


def task_named(task: object):
    """The registered Celery task for `task`: a task object, or its registered name.

    Services enqueue by name (`"monitoring.tasks.evaluate_patient_readings_task"`) so that no
    service module imports a tasks module: tasks sit above services (see .importlinter), and
    an import inside a function to dodge that cycle is what the name replaces.
    """
    if not isinstance(task, str):
        return task
    if task not in app.tasks:
        # Outside a worker nothing has imported the apps' tasks modules yet: this imports
        # them (Celery's autodiscovery, the worker's own start-up step) once per process.
        app.loader.import_default_modules()
    return app.tasks[task]


def enqueue_on_commit(task, *args: object, **kwargs: object) -> None:
    """Publish `task` (a task or its registered name) with these arguments once the current
    transaction commits.

    Robust: a broker outage must not turn a committed change into an error; the outbox
    sweeps re-enqueue what was not published. A named function, not functools.partial:
    Django 5.2 logs a failed robust hook by its __qualname__, which a partial lacks, and the
    resulting AttributeError would escape (Django ticket #36487).
    """
    task = task_named(task)

    def publish() -> None:
        _publish(task, args, kwargs)

    publish.__qualname__ = f"publish {task.name}"
    # What is about to be published, for logs and for tests reading captured callbacks.
    publish.task, publish.args, publish.kwargs = task, args, kwargs
    transaction.on_commit(publish, robust=True)


def enqueue_all_on_commit(messages: Sequence[Message]) -> None:
    """Publish these messages, in order, once the current transaction commits.

    One hook for the batch, which stops at the first failed publish: with a hung broker each
    attempt costs the socket timeout, and a sweep's 500 messages must not cost 500 of them.
    What was not published is still pending in its outbox, and its sweep enqueues it again.
    """
    if not messages:
        return
    messages = [(task_named(task), args, kwargs) for task, args, kwargs in messages]

    def publish() -> None:
        for task, args, kwargs in messages:
            if not _publish(task, args, kwargs):
                return

    publish.__qualname__ = f"publish {len(messages)} messages"
    publish.messages = messages
    transaction.on_commit(publish, robust=True)


def _publish(task, args: tuple, kwargs: dict) -> bool:
    """Publish one message; on a broker error log one line (no traceback: during an outage
    every upload and sweep fails the same way) and return False."""
    try:
        task.apply_async(args, kwargs)
    except _broker_errors() as error:
        logger.warning(
            "publish of %s failed (%s); its outbox sweep enqueues it again",
            task.name,
            type(error).__name__,
        )
        return False
    return True


# --- Coalesced wake-ups: one message for many items while a consumer is still to start -----
#
# A task that drains a set of items (patients with new readings) need not be published once
# per item: while one published message has not been taken up yet, the items that arrive meanwhile
# join its set and publish nothing. Kept in the broker's own Redis database, two keys per task:
# `vigil:wake:<task>` (a message is on its way; set with NX, so one publisher of many wins) and
# `vigil:items:<task>` (the set of items). Each side is one MULTI transaction, so an item is either
# taken by a consumer's take_coalesced() or finds the flag cleared and publishes a new message.
# On any other broker (RabbitMQ, the embedded filesystem transport) every call publishes, with
# the item as the task's argument: the same task then does the work of that item.
# The database stays the outbox: items lost with Redis are found by the sweep.

# A message that never arrives (published, then lost with a broker restart) must not silence
# publishing for long: the flag expires, and the next item publishes again.
WAKE_TTL_SECONDS = 30
# A consumer that stays awake (take_coalesced(keep_awake=True)) holds the flag for this long
# after each take: items arriving meanwhile ring `vigil:bell:<task>` instead of publishing,
# and a consumer killed while awake silences publishing for this long at most.
AWAKE_TTL_SECONDS = 5


def _wake_key(task) -> str:
    return f"vigil:wake:{task.name}"


def _items_key(task) -> str:
    return f"vigil:items:{task.name}"


def _bell_key(task) -> str:
    return f"vigil:bell:{task.name}"


_redis_clients: dict[tuple[int, str], redis.Redis] = {}


def _broker_redis() -> redis.Redis | None:
    """A client of the broker's Redis database (None for any other broker), one per process."""
    url = app.conf.broker_write_url or app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    key = (os.getpid(), url)
    client = _redis_clients.get(key)
    if client is None:
        options = app.conf.broker_transport_options or {}
        client = redis.Redis.from_url(
            url,
            socket_timeout=options.get("socket_timeout", 1),
            socket_connect_timeout=options.get("socket_connect_timeout", 1),
            # Not retried, like a publish (CELERY_TASK_PUBLISH_RETRY_POLICY): redis-py's
            # default retries a refused connection with backoff for ~4 s, during an upload.
            retry=Retry(NoBackoff(), 0),
        )
        _redis_clients[key] = client
    return client


def enqueue_coalesced_on_commit(task, item: int) -> None:
    """Once the current transaction commits, add `item` to the task's set and publish `task`
    (with `item` as its argument) unless a message published earlier has not been taken up
    yet (take_coalesced). The task must take its items with take_coalesced() and treat its
    argument as one more item. Robust like enqueue_on_commit: a broker error is logged, never
    raised; the work stays pending in its outbox."""
    task = task_named(task)

    def publish() -> None:
        _publish_coalesced(task, item)

    publish.__qualname__ = f"publish coalesced {task.name}"
    publish.task, publish.args, publish.kwargs = task, (item,), {}
    transaction.on_commit(publish, robust=True)


# One item added, as one atomic command: into the set; the bell rung for a consumer waiting
# in wait_coalesced() (one element at most); the flag set unless a message is on its way.
# Returns whether this call set the flag (and so must publish). A script rather than a MULTI
# of four commands: redis-py's pipeline was a fifth of a single-reading upload's CPU.
ADD_ITEM = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], 1)
redis.call('LTRIM', KEYS[2], -1, -1)
return redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[2])
"""
# Every item taken and the bell silenced, as one atomic command, with the flag cleared (an
# item added after this publishes a new message) or, given a TTL, held that long.
TAKE_ITEMS = """
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[1], 1, 'EX', ARGV[1])
else
  redis.call('DEL', KEYS[1])
end
local items = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2], KEYS[3])
return items
"""
_scripts: dict[tuple[int, str], object] = {}


def _script(client: redis.Redis, source: str):
    """The script registered with this client (EVALSHA, loaded again if Redis restarted and
    forgot it)."""
    script = _scripts.get((id(client), source))
    if script is None:
        script = _scripts[(id(client), source)] = client.register_script(source)
    return script


def _publish_coalesced(task, item: int) -> bool:
    client = _broker_redis()
    if client is None:
        return _publish(task, (item,), {})
    try:
        first = _script(client, ADD_ITEM)(
            keys=[_items_key(task), _bell_key(task), _wake_key(task)],
            args=[item, WAKE_TTL_SECONDS],
        )
    except redis.RedisError as error:
        _log_failed_publish(task, error)
        return False
    if not first:
        return True  # a message is on its way; it takes this item with the others
    if _publish(task, (item,), {}):
        return True
    # Nothing is on its way after all: the next item must publish again.
    with contextlib.suppress(redis.RedisError):
        client.delete(_wake_key(task))
    return False


def take_coalesced(task, *, keep_awake: bool = False) -> set[int]:
    """Take every item waiting in the task's set and, at once, clear its wake-up flag: an
    item added after this publishes a new message. Called by the task as it starts, and
    again as it runs to take what arrived meanwhile. Empty on a broker other than Redis.

    `keep_awake`: hold the flag instead (for AWAKE_TTL_SECONDS): items added after this
    publish nothing and ring the bell that wait_coalesced() waits on. A consumer that takes
    with it must end with a take without it (or give_back_coalesced), which clears the flag."""
    client = _broker_redis()
    if client is None:
        return set()
    task = task_named(task)
    try:
        items = _script(client, TAKE_ITEMS)(
            keys=[_wake_key(task), _items_key(task), _bell_key(task)],
            args=[AWAKE_TTL_SECONDS if keep_awake else 0],
        )
    except redis.RedisError as error:
        # The task still does its own item; the others wait in Redis, or in their outbox.
        logger.warning("taking the items of %s failed (%s)", task.name, type(error).__name__)
        return set()
    return {int(item) for item in items}


def wait_coalesced(task, timeout: float) -> bool:
    """Wait up to `timeout` seconds for an item to arrive (the bell rung by
    enqueue_coalesced_on_commit); True if one did. For a consumer holding the flag with
    take_coalesced(keep_awake=True); False at once on a broker other than Redis."""
    client = _broker_redis()
    if client is None or timeout <= 0:
        return False
    task = task_named(task)
    # Below the client's socket timeout (1 s, _broker_redis), which a longer BLPOP would hit.
    try:
        rung = client.blpop([_bell_key(task)], timeout=min(timeout, 0.9))
    except redis.RedisError as error:
        logger.warning("waiting for items of %s failed (%s)", task.name, type(error).__name__)
        return False
    return rung is not None


def give_back_coalesced(task, items) -> None:
    """Put items taken but not done back into the task's set and publish a message for them
    (a consumer that ran out of time, or failed, hands them on). A consumer that kept the
    flag (take_coalesced(keep_awake=True)) lets go of it with a take without keep_awake
    first, or the publish here would take its own flag for a message on its way."""
    task = task_named(task)
    items = sorted(items)
    if not items:
        return
    client = _broker_redis()
    if client is None:
        for item in items:
            _publish(task, (item,), {})
        return
    try:
        client.sadd(_items_key(task), *items)
    except redis.RedisError as error:
        _log_failed_publish(task, error)
        return
    _publish_coalesced(task, items[0])


def _log_failed_publish(task, error: BaseException) -> None:
    logger.warning(
        "publish of %s failed (%s); its outbox sweep enqueues it again",
        task.name,
        type(error).__name__,
    )


@cache
def _broker_errors() -> tuple[type[BaseException], ...]:
    """What a publish raises when the broker is down, hung or refusing: kombu's own error
    (publishes go through kombu's retry wrapper) and the transport's connection errors."""
    with app.connection_for_write() as connection:
        return (OperationalError, OSError, *connection.connection_errors)


@task_prerun.connect
def close_unusable_database_connections(sender=None, **kwargs) -> None:
    """Before each task, drop a database connection that died since the last one.

    With CELERY_DB_REUSE_MAX set, Celery's Django fixup keeps the connection between tasks
    and checks nothing: after pg_terminate_backend, a failover or a pooler restart, every
    task (and every retry) of that worker failed on the dead connection until it was
    restarted. Django's close_old_connections does for a task what it does for a request:
    a connection that saw an error is closed unless it still answers, one past
    CONN_MAX_AGE is closed, and CONN_HEALTH_CHECKS checks the rest before its first query.
    Not for a task applied eagerly: it runs inside its caller's transaction.
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    close_old_connections()
