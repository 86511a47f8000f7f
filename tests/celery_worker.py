"""A real `celery -A config worker` process for tests: on the test broker and the
pytest-django test database, in its own process group, stopped with nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings
from django.db import connection

# Starting a worker takes ~2 s here and a task runs in ms; the bound is for a loaded machine.
WAIT = 60


def worker_database_url(application_name: str | None = None) -> str:
    """DATABASE_URL pointing at the database pytest-django created for this session."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    url = parts._replace(path="/" + settings.DATABASES["default"]["NAME"]).geturl()
    if application_name:
        url += "?" + urlencode({"application_name": application_name})
    return url


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_path: Path
    application_name: str  # its PostgreSQL connections carry it

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def backends(self, *, waiting_on_a_lock: bool = False) -> list[int]:
        """PostgreSQL backend pids of the worker's open connections."""
        # Not this test's own backend: behind a transaction pooler (./scripts/test's pooler
        # run) a server connection keeps the application_name of the last client that set it,
        # and the next transaction of this test may run on it.
        sql = (
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()"
        )
        if waiting_on_a_lock:
            sql += " AND wait_event_type = 'Lock'"
        with connection.cursor() as cursor:
            cursor.execute(sql + " ORDER BY pid", [self.application_name])
            return [pid for (pid,) in cursor.fetchall()]


def start_worker(
    directory: Path, *, queues: list[str], pool: str, concurrency: int = 1, env: dict | None = None
) -> WorkerProcess:
    assert not settings.CELERY_BROKER_IS_EMBEDDED, "a worker test needs Redis or RabbitMQ"
    application_name = f"vigil-test-worker-{uuid.uuid4().hex[:8]}"
    log_path = directory / "worker.log"
    environment = (
        os.environ
        | {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": worker_database_url(application_name),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        }
        | (env or {})
    )
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--pool", pool, "--concurrency", str(concurrency), "--queues", ",".join(queues),
        "--hostname", f"{application_name}@%h", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its children go with it
        )
    return WorkerProcess(process, log_path, application_name)


def stop_worker(worker: WorkerProcess) -> None:
    process = worker.process
    if process.poll() is None:
        process.terminate()  # warm shutdown: a running task finishes, then the worker exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    # Whatever is left of the group this test started (a pool child, a hung parent).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)
    # A connection whose client died can linger in PostgreSQL and block the table flush.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            [worker.application_name],
        )


def wait_for(what: str, check: Callable[[], object], worker: WorkerProcess, timeout: float = WAIT):
    """Poll `check` until it returns something truthy; fail with the worker's log if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log()[-6000:]}"
        time.sleep(0.1)
    pytest.fail(f"no {what} after {timeout} s; worker log:\n{worker.log()[-6000:]}")
