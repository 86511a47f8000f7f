"""Give the application's database role what it needs to run Vigil, and nothing it could use
to rewrite history.

Deployments run two PostgreSQL roles: the owner, which runs migrations and owns every table,
and the application role (web, workers, beat), which owns nothing. Run this as the owner
after every `migrate` (docker-compose's migrate service does):

    python manage.py migrate && python manage.py grant_app_role vigil_app \
        --password-env VIGIL_APP_DB_PASSWORD

The application role may read and write the tables, but only read and append to the audit
log: no UPDATE or DELETE (the table's trigger refuses those from anyone, the grants too), no
TRUNCATE, and as it owns no table it can neither disable the trigger nor alter or drop a
table. Idempotent: it grants and revokes the same set every time. With `--password-env`, a
role that does not exist yet is created (LOGIN, that password), and an existing one gets the
password again, so the app's DATABASE_URL and the role never drift apart.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from psycopg import sql

from monitoring.models import AuditEvent

TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY_PRIVILEGES = "SELECT, INSERT"


def ensure_login_role(role: str, password: str) -> None:
    """Create `role` as a login role owning nothing, or set its password. Writes: the role."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        verb = "ALTER" if cursor.fetchone() else "CREATE"
        statement = sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
        cursor.execute(
            statement.format(sql.SQL(verb), sql.Identifier(role), sql.Literal(password)).as_string(
                connection.connection
            )
        )


def grant_app_role(role: str) -> list[str]:
    """Grant `role` the application's privileges on every table of the current schema;
    returns the statements run. Writes: privileges only."""
    audit = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            raise CommandError(
                f"No PostgreSQL role {role!r}: create it first (CREATE ROLE), or pass "
                "--password-env to create it."
            )
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        tables = [name for (name,) in cursor.fetchall()]
    who = sql.Identifier(role)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.SQL("public"), who),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(who),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(who),
    ]
    for table in tables:
        privileges = APPEND_ONLY_PRIVILEGES if table == audit else TABLE_PRIVILEGES
        statements.append(
            sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privileges), sql.Identifier(table), who)
        )
    run = []
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in statements:
            text = statement.as_string(connection.connection)
            cursor.execute(text)
            run.append(text)
    return run


class Command(BaseCommand):
    help = "Grant the application's database role its privileges (run as the owner)."

    def add_arguments(self, parser):
        parser.add_argument("role", help="the PostgreSQL role web, workers and beat use")
        parser.add_argument(
            "--password-env",
            metavar="NAME",
            help="create the role (or set its password) with the password in this variable",
        )

    def handle(self, *args, role: str, password_env: str | None = None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Database roles are a PostgreSQL deployment's; nothing to do.")
        if password_env:
            password = os.environ.get(password_env, "")
            if not password:
                raise CommandError(f"{password_env} is empty: the role needs a password.")
            ensure_login_role(role, password)
        statements = grant_app_role(role)
        self.stdout.write(f"granted {role}: {len(statements)} statements")
