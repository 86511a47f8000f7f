"""The test session behind a transaction pooler: which address each connection uses.

pytest-django creates the test database over the connections' settings, so for the
creation and the drop they point at PostgreSQL itself (DATABASE_DIRECT_URL), and for the
tests at the pooler (DATABASE_URL). Before the drop, the pooler's server connections to the
test database are ended: PostgreSQL drops no database with sessions open on it.
"""

from __future__ import annotations

import os

import dj_database_url

# alias -> (host, port) through the pooler, as settings had them.
through_pooler: dict[str, tuple[str, int]] = {}


def _set(connections, addresses: dict[str, tuple[str, int]]) -> None:
    for alias, (host, port) in addresses.items():
        connection = connections[alias]
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = host, port


def direct(connections) -> None:
    """Point every connection at PostgreSQL itself and end the pooler's server connections
    to the test database (the tests are over, or have not begun)."""
    url = os.environ.get("DATABASE_DIRECT_URL")
    if not url:
        raise RuntimeError("DATABASE_POOLER is set: DATABASE_DIRECT_URL must name PostgreSQL")
    config = dj_database_url.parse(url)
    _set(connections, {alias: (config["HOST"], config["PORT"]) for alias in through_pooler})
    connection = connections["default"]
    if connection.settings_dict["NAME"].startswith("test_"):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connection.close()


def through(connections) -> None:
    """Point every connection back at the pooler, for the tests."""
    _set(connections, through_pooler)
