"""Celery application: `celery -A config worker`, `celery -A config beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("vigil")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# CELERY_DB_REUSE_MAX (read by Celery's Django fixup) comes from Django settings like the rest.


def enqueue_on_commit(task, *args: object, **kwargs: object) -> None:
    """Publish `task` with these arguments once the current transaction commits.

    Robust: a broker outage must not turn a committed change into an error; the outbox
    sweeps re-enqueue what was not published. A named function, not functools.partial:
    Django 5.2 logs a failed robust hook by its __qualname__, which a partial lacks, and the
    resulting AttributeError would escape (Django ticket #36487).
    """
    from django.db import transaction

    def publish() -> None:
        task.delay(*args, **kwargs)

    publish.__qualname__ = f"publish {task.name}"
    # What is about to be published, for logs and for tests reading captured callbacks.
    publish.task, publish.args, publish.kwargs = task, args, kwargs
    transaction.on_commit(publish, robust=True)
