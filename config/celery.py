"""Celery application: `celery -A config worker`, `celery -A config beat`."""

import logging
import os
from collections.abc import Sequence
from functools import cache

from celery import Celery
from celery.signals import task_prerun

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
    if isinstance(task, str):
        if task not in app.tasks:
            # Discovery is lazy: a worker imports every app's tasks module when it starts, a
            # web process (or a test) that has not imported one yet discovers them here.
            app.loader.import_default_modules()
        return app.tasks[task]
    return task


def enqueue_on_commit(task, *args: object, **kwargs: object) -> None:
    """Publish `task` (a task or its registered name) with these arguments once the current
    transaction commits.

    Robust: a broker outage must not turn a committed change into an error; the outbox
    sweeps re-enqueue what was not published. A named function, not functools.partial:
    Django 5.2 logs a failed robust hook by its __qualname__, which a partial lacks, and the
    resulting AttributeError would escape (Django ticket #36487).
    """
    from django.db import transaction

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
    from django.db import transaction

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


@cache
def _broker_errors() -> tuple[type[BaseException], ...]:
    """What a publish raises when the broker is down, hung or refusing: kombu's own error
    (publishes go through kombu's retry wrapper) and the transport's connection errors."""
    from kombu.exceptions import OperationalError

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
    from django.db import close_old_connections

    close_old_connections()
