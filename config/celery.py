"""Celery application: `celery -A config worker`, `celery -A config beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("vigil")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _expose_db_reuse(sender: Celery, **kwargs: object) -> None:
    # Celery's Django fixup reads this key verbatim from the app config, without the
    # namespace mapping, so copy it across from Django settings.
    from django.conf import settings

    sender.conf.CELERY_DB_REUSE_MAX = settings.CELERY_DB_REUSE_MAX
