"""A web request's queries are bounded by PostgreSQL's statement_timeout (config/settings.py),
and a query it cancels answers a clean 503 (config.api.StatementTimeoutMiddleware), not a
stack trace: gunicorn killing a worker at its timeout does not stop the worker's query.

The cancellations here are PostgreSQL's own: a pg_sleep past a short statement_timeout. On a
transactional database, as in production: a cancelled statement ends no request's later
queries (the audit log's, the session's)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from monitoring.admin.records import ReadingAdmin
from monitoring.views.readings import ReadingListCreateApi
from tests.factories import UserFactory

pytestmark = pytest.mark.postgres


@pytest.fixture
def short_statement_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 200")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET statement_timeout")


def sleep_in_the_database(*args, **kwargs):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(5)")


@pytest.mark.django_db(transaction=True)
def test_an_admin_page_whose_query_is_cancelled_answers_a_503_page(
    monkeypatch, short_statement_timeout, caplog
):
    # given: the readings list's query runs past the statement timeout
    original = ReadingAdmin.get_queryset
    monkeypatch.setattr(
        ReadingAdmin,
        "get_queryset",
        lambda self, request: sleep_in_the_database() or original(self, request),
    )
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))

    # when
    response = client.get(reverse("admin:monitoring_reading_changelist"))

    # then
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert b"took longer than the database allows a page" in response.content
    assert "statement timeout: GET /admin/monitoring/reading/ cancelled" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_an_api_list_whose_query_is_cancelled_answers_a_503_json(
    monkeypatch, patient_client, short_statement_timeout
):
    monkeypatch.setattr(ReadingListCreateApi, "get", sleep_in_the_database)

    response = patient_client.get("/api/v1/readings")

    assert response.status_code == 503
    assert response.json() == {
        "detail": "This request took longer than the database allows a page and was stopped. "
        "Try again, or ask for less (a shorter period, one patient)."
    }


@pytest.mark.django_db(transaction=True)
def test_another_database_error_is_not_taken_for_a_timeout(monkeypatch, patient_client):
    def fail(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")

    monkeypatch.setattr(ReadingListCreateApi, "get", fail)
    patient_client.raise_request_exception = True

    with pytest.raises(Exception, match="division by zero"):
        patient_client.get("/api/v1/readings")


def statement_timeout_of(**environment) -> str:
    """SHOW statement_timeout in a fresh process with this environment."""
    code = (
        "import django; django.setup(); from django.db import connection; "
        "cursor = connection.cursor(); cursor.execute('SHOW statement_timeout'); "
        "print(cursor.fetchone()[0])"
    )
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_PROCESS"}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": _database_url()}
    env |= environment
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _database_url() -> str:
    database = settings.DATABASES["default"]
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST'] or 'localhost'}"
        f":{database['PORT'] or 5432}/{database['NAME']}"
    )


@pytest.mark.django_db
def test_the_web_process_has_the_web_statement_timeout_and_a_shell_none():
    assert statement_timeout_of(VIGIL_PROCESS="web") == "30s"
    assert statement_timeout_of(VIGIL_PROCESS="web", DATABASE_STATEMENT_TIMEOUT_MS="1500") == (
        "1500ms"
    )
    # a worker: its task's hard time limit (CELERY_TASK_TIME_LIMIT, 180 s)
    assert statement_timeout_of(VIGIL_PROCESS="worker") == "3min"
    # migrations, shells: none (an index build on a big table may take longer)
    assert statement_timeout_of() == "0"
