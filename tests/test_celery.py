"""config/celery.py: services enqueue tasks by registered name, published on commit."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import NotRegistered
from django.conf import settings

from config.celery import enqueue_all_on_commit, enqueue_on_commit, task_named
from monitoring.tasks import evaluate_patient_readings_task

ROOT = Path(__file__).resolve().parent.parent
TASK_NAME = re.compile(r"""["']((?:monitoring|alerts|delivery)\.tasks\.\w+)["']""")


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


def _task_names_in_the_apps() -> set[str]:
    names = set()
    for package in ("config", "monitoring", "alerts", "delivery"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                names.update(TASK_NAME.findall(path.read_text()))
    return names


def test_every_task_name_the_apps_enqueue_is_a_registered_task():
    names = _task_names_in_the_apps()

    assert names, "the apps enqueue tasks by name; the scan found none"
    for name in sorted(names):
        assert task_named(name).name == name


def test_a_name_resolves_to_the_task_object_and_a_task_passes_through():
    name = "monitoring.tasks.evaluate_patient_readings_task"

    # shared_task gives the module a proxy of the registered task: equal, not identical.
    assert task_named(name) == evaluate_patient_readings_task
    assert task_named(evaluate_patient_readings_task) is evaluate_patient_readings_task


def test_an_unknown_name_fails_at_enqueue_time_not_after_commit(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(NotRegistered),
    ):
        enqueue_on_commit("monitoring.tasks.no_such_task", 1)

    assert callbacks == []


@pytest.mark.django_db
def test_enqueue_by_name_publishes_the_named_task_on_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_on_commit("monitoring.tasks.evaluate_patient_readings_task", 7)
        enqueue_all_on_commit([("alerts.tasks.route_alert_event_task", (8,), {})])

    assert (callbacks[0].task.name, callbacks[0].args) == (
        "monitoring.tasks.evaluate_patient_readings_task",
        (7,),
    )
    assert [(task.name, args) for task, args, _ in callbacks[1].messages] == [
        ("alerts.tasks.route_alert_event_task", (8,))
    ]
