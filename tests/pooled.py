"""The test session behind a transaction pooler: which address each connection uses.

pytest-django creates the test database over the connections' settings, so for the
creation and the drop they point at PostgreSQL itself (DATABASE_DIRECT_URL), and for the
tests at the pooler (DATABASE_URL). PostgreSQL drops no database with sessions open on it,
and PgBouncer keeps server connections open and opens new ones for any client still
connected: before the drop, PgBouncer's console KILLs the test database (its clients and
server connections; a client arriving later waits), and the backends still open on it are
ended. Before the creation, the same, for a test database left over by an interrupted run;
then RESUME, so that the tests' connections get through.
"""

from __future__ import annotations

import contextlib
import os

import dj_database_url
import psycopg

# alias -> (host, port) through the pooler, as settings had them.
through_pooler: dict[str, tuple[str, int]] = {}


def _set(connections, addresses: dict[str, tuple[str, int]]) -> None:
    for alias, (host, port) in addresses.items():
        connection = connections[alias]
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = host, port


def _console(connection, *commands: str) -> None:
    """Run commands on PgBouncer's admin console (scripts/pgbouncer makes the test user its
    admin); a pooler without one for this user is left alone."""
    host, port = through_pooler["default"]
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(
            host=host, port=port, dbname="pgbouncer", user=connection.settings_dict["USER"],
            password=connection.settings_dict["PASSWORD"] or None, autocommit=True,
            connect_timeout=5,
        ) as console,
    ):  # fmt: skip
        for command in commands:
            with contextlib.suppress(psycopg.Error):
                console.execute(command)


def _end_sessions(connection, database: str) -> None:
    with connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )


def direct(connections) -> None:
    """Before the test database is created: connections to PostgreSQL itself, and nothing
    left open on a test database of the same name."""
    url = os.environ.get("DATABASE_DIRECT_URL")
    if not url:
        raise RuntimeError("DATABASE_POOLER is set: DATABASE_DIRECT_URL must name PostgreSQL")
    config = dj_database_url.parse(url)
    _set(connections, {alias: (config["HOST"], config["PORT"]) for alias in through_pooler})
    connection = connections["default"]
    name = connection.settings_dict["NAME"]
    test_name = name if name.startswith("test_") else connection.creation._get_test_db_name()
    _console(connection, f'KILL "{test_name}"')
    try:
        _end_sessions(connection, test_name)
    finally:
        if test_name != name:  # set-up, not tear-down: the tests connect through the pooler
            _console(connection, f'RESUME "{test_name}"')


def through(connections) -> None:
    """Point every connection back at the pooler, for the tests."""
    _set(connections, through_pooler)
