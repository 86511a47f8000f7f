"""config/celery.py: services enqueue tasks by registered name, in any process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from celery.exceptions import NotRegistered
from django.conf import settings

from config.celery import task_named

# What a web process loads (settings, apps, URLs): no worker started there, so Celery never
# discovered the tasks modules, and no view or admin module imports them.
WEB_PROCESS = """
import sys

import django

django.setup()
import config.urls  # noqa: E402, F401

assert "alerts.tasks" not in sys.modules and "monitoring.tasks" not in sys.modules
from config.celery import task_named  # noqa: E402

for name in sys.argv[1:]:
    print(task_named(name).name)
"""


def test_a_web_process_finds_a_task_by_its_name_though_no_worker_discovered_it():
    # e.g. the admin's "retry failed evaluations" enqueues an evaluation by name
    names = [
        "alerts.tasks.route_alert_event_task",
        "monitoring.tasks.evaluate_patient_readings_task",
    ]

    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, *names],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (result.returncode, result.stdout.split()) == (0, names), result.stderr


def test_a_name_no_task_has_is_an_error():
    with pytest.raises(NotRegistered):
        task_named("alerts.tasks.no_such_task")
