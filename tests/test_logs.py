"""No patient data in the logs: database errors logged without their messages (config/logs.py,
the formatter settings.LOGGING configures), and gunicorn's access log without query strings or
referrers (the command line in scripts/run, the Dockerfile and docker-compose.yml)."""

from __future__ import annotations

import copy
import json
import logging
import logging.config
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction

from tests.factories import PatientFactory

ROOT = Path(__file__).resolve().parents[1]
MRN = "MRN-ARTHUR-ABBOTT-1931"
WITHHELD_UNIQUE = "IntegrityError(message withheld: it may quote patient data, SQLSTATE 23505)"


def configured_formatter() -> logging.Formatter:
    """The console handler's formatter, built from settings.LOGGING as dictConfig builds it."""
    config = copy.deepcopy(settings.LOGGING["formatters"]["plain"])
    return logging.config.DictConfigurator({}).configure_formatter(config)


def formatted(msg: str, *args, exc_info=None, name: str = "django.request") -> str:
    record = logging.getLogger(name).makeRecord(
        name, logging.ERROR, __file__, 1, msg, args, exc_info
    )
    return configured_formatter().format(record)


def duplicate_mrn_error(team) -> IntegrityError:
    """PostgreSQL's own unique violation: its DETAIL quotes the MRN."""
    PatientFactory(care_team=team, external_id=MRN)
    try:
        with transaction.atomic():
            PatientFactory(care_team=team, external_id=MRN)
    except IntegrityError as error:
        assert MRN in str(error)  # what would have been logged
        return error
    raise AssertionError("no IntegrityError")


@pytest.mark.postgres
def test_a_database_errors_message_is_withheld_from_its_traceback(team):
    error = duplicate_mrn_error(team)

    line = formatted("Internal Server Error: %s", "/api/v1/patients", exc_info=exc_info(error))

    assert MRN not in line
    assert line.startswith(f"{line[:23]} ERROR django.request Internal Server Error: /api/v1/")
    assert "Traceback (most recent call last):" in line
    assert f"django.db.utils.{WITHHELD_UNIQUE}" in line
    assert f"psycopg.errors.UniqueViolation{WITHHELD_UNIQUE.removeprefix('IntegrityError')}" in (
        line
    )
    assert "in duplicate_mrn_error" in line  # the frames stay: code, not data


@pytest.mark.postgres
def test_a_message_quoting_a_database_error_is_withheld_too(team):
    # Celery logs a failed task as "Task … raised unexpected: <repr of the exception>".
    error = duplicate_mrn_error(team)

    line = formatted(
        "Task %(name)s[%(id)s] %(description)s: %(exc)s",
        {
            "name": "monitoring.tasks.evaluate_readings_task",
            "id": "42",
            "description": "raised unexpected",
            "exc": repr(error),
        },
        exc_info=exc_info(error),
        name="celery.app.trace",
    )

    assert MRN not in line
    assert (
        f"Task monitoring.tasks.evaluate_readings_task[42] raised unexpected: {WITHHELD_UNIQUE}\n"
    ) in line


@pytest.mark.postgres
def test_a_value_in_an_invalid_input_error_is_withheld(db):
    # PostgreSQL quotes the statement with its values bound in ("LINE 1: SELECT 'Arthur…").
    name = "Arthur Abbott"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s::integer", [name])
    except DataError as error:
        caught = error
    assert "LINE 1: SELECT 'Arthur Abbott'::integer" in str(caught)

    line = formatted("Error calling %s in on_commit() (%s).", "notify", caught, exc_info=None)
    traceback_line = formatted("failed", exc_info=exc_info(caught))

    assert "Arthur" not in line
    assert "Arthur" not in traceback_line
    assert "DataError(message withheld: it may quote patient data, SQLSTATE 22P02)" in line


@pytest.mark.postgres
def test_another_exception_that_quotes_a_database_error_keeps_only_its_own_words(team):
    error = duplicate_mrn_error(team)
    try:
        raise RuntimeError(f"enrolment failed: {error}") from error
    except RuntimeError as wrapped:
        line = formatted("failed", exc_info=exc_info(wrapped))

    assert MRN not in line
    assert f"RuntimeError: enrolment failed: {WITHHELD_UNIQUE}" in line


def test_other_errors_are_logged_as_they_are():
    try:
        raise ValueError("reading 7 has no unit")
    except ValueError as error:
        caught = error
    line = formatted("evaluation of reading %s failed", 7, exc_info=exc_info(caught))

    assert line.endswith(
        "ERROR django.request evaluation of reading 7 failed\n"
        "Traceback (most recent call last):\n"
        f'  File "{__file__}", line {caught.__traceback__.tb_lineno}, in '
        "test_other_errors_are_logged_as_they_are\n"
        '    raise ValueError("reading 7 has no unit")\n'
        "ValueError: reading 7 has no unit"
    )


def test_django_logs_no_query_with_its_parameters():
    assert logging.getLogger("django.db.backends").getEffectiveLevel() == logging.WARNING


def exc_info(error: BaseException):
    return (type(error), error, error.__traceback__)


# --- gunicorn's access log ----------------------------------------------------------------


def access_log_formats() -> dict[str, str]:
    """The --access-logformat of each place gunicorn is started from."""
    run = (ROOT / "scripts" / "run").read_text()
    command = re.search(r"^start gunicorn .*?[^\\]$", run, re.MULTILINE | re.DOTALL).group(0)
    run_args = shlex.split(command.replace("\\\n", " "))
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    docker_args = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE).group(1))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_args = compose["services"]["web"]["command"]
    return {
        "scripts/run": option(run_args, "--access-logformat"),
        "Dockerfile": option(docker_args, "--access-logformat"),
        "docker-compose.yml": option(compose_args, "--access-logformat"),
    }


def option(args: list[str], name: str) -> str | None:
    for n, arg in enumerate(args):
        if arg == name:
            return args[n + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_gunicorn_command_line_logs_the_same_access_format():
    formats = access_log_formats()

    assert len(set(formats.values())) == 1, formats
    assert None not in formats.values()


@pytest.mark.parametrize("where", ["scripts/run"])
def test_the_access_log_holds_the_path_but_no_query_string_or_referrer(where):
    # given: gunicorn started with the project's access-log format
    log_format = access_log_formats()[where]
    assert log_format is not None, f"{where} sets no --access-logformat"
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "config.wsgi", f"--bind=127.0.0.1:{port}"),
            *("--workers=1", "--access-logfile=-", "--no-control-socket"),
            f"--access-logformat={log_format}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # gunicorn answers at all (a first request on a loaded machine can take seconds:
        # retrying the search itself would log it twice)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        # when: a search for a patient, from a page whose URL names the patient too
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/patients?q=Arthur+Abbott",
            headers={"Referer": "http://vigil.test/admin/?q=Arthur+Abbott"},
            timeout=30,
        )
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)

    # then: the access log has the path, not the query or the referrer
    assert response.status_code == 401
    lines = [line for line in log.splitlines() if "/api/v1/patients" in line]
    assert len(lines) == 1, log
    assert re.fullmatch(r"127\.0\.0\.1 \[[^]]+\] GET /api/v1/patients 401 \d+ \d+ms", lines[0])
    assert "Arthur" not in log
