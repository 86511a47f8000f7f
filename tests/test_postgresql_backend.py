"""config/postgresql: Django's PostgreSQL backend whose health check asks `SELECT 1` only
when the kept connection's socket says something happened to it."""

from __future__ import annotations

import time
from unittest import mock

import psycopg
import pytest
from django.db import close_old_connections, connection

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.direct_database,
    pytest.mark.django_db(transaction=True),
]


def backend_pid() -> int:
    """What a request's first query does: take the kept connection, health check first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def next_request() -> None:
    """Django's request_started (and the worker's task_prerun): the next first query checks."""
    close_old_connections()


def from_another_connection(sql: str, params: list) -> None:
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
    ) as other:
        other.execute(sql, params)


def test_a_kept_connection_nothing_happened_to_is_taken_without_a_round_trip():
    # given
    before = backend_pid()
    next_request()

    # when
    with mock.patch.object(connection, "is_usable", wraps=connection.is_usable) as full_check:
        after = backend_pid()

    # then
    assert full_check.call_count == 0
    assert after == before
    assert connection.health_check_done is True


def test_a_connection_the_server_ended_is_replaced_before_the_first_query():
    # given: the server ends the session (pg_terminate_backend, a restart, a failover)
    lost = backend_pid()
    from_another_connection("SELECT pg_terminate_backend(%s)", [lost])
    time.sleep(0.2)  # the FATAL and the end of stream reach the socket
    next_request()

    # when
    with mock.patch.object(connection, "is_usable", wraps=connection.is_usable) as full_check:
        replaced = backend_pid()

    # then: the full check ran, failed, and the query ran on a new connection
    assert full_check.call_count == 1
    assert replaced != lost


def test_anything_the_server_sent_unasked_makes_the_full_check_run_and_keep_a_live_connection():
    # given: a notification waits on the socket
    with connection.cursor() as cursor:
        cursor.execute("LISTEN vigil_backend_test")
    kept = backend_pid()
    from_another_connection("SELECT pg_notify('vigil_backend_test', '')", [])
    time.sleep(0.2)
    next_request()

    # when
    with mock.patch.object(connection, "is_usable", wraps=connection.is_usable) as full_check:
        after = backend_pid()

    # then
    assert full_check.call_count == 1
    assert after == kept
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")


def test_the_backend_is_djangos_own_with_the_quiet_check():
    assert connection.settings_dict["ENGINE"] == "config.postgresql"
    assert connection.vendor == "postgresql"
