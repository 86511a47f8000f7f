"""The application's database role (manage.py grant_app_role): it runs Vigil and cannot
alter the audit trail — no UPDATE, DELETE or TRUNCATE of it, no disabling its trigger."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from psycopg import errors

from monitoring.models import AuditEvent
from tests.factories import PatientFactory

# PostgreSQL roles and grants: nothing of it exists on SQLite.
pytestmark = pytest.mark.postgres

ROLE = "vigil_test_app"
PASSWORD_VARIABLE = "VIGIL_TEST_APP_DB_PASSWORD"


@pytest.fixture
def app_role(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN CREATE ROLE vigil_test_app NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    call_command("grant_app_role", ROLE)
    return ROLE


def as_app(sql: str, params=()) -> None:
    """Run one statement as the application role, inside a savepoint that is undone."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {ROLE}")
        cursor.execute(sql, params)
        transaction.set_rollback(True)


def audit_row() -> int:
    return AuditEvent.objects.create(
        actor="nurse", patient=PatientFactory(), action="view", model="patient", surface="api"
    ).pk


@pytest.mark.django_db
def test_the_app_role_reads_writes_and_appends_to_the_audit_log(app_role):
    patient_id = PatientFactory().pk

    as_app("SELECT count(*) FROM monitoring_reading")
    as_app("UPDATE monitoring_patient SET timezone = timezone WHERE id = %s", [patient_id])
    as_app(
        "INSERT INTO monitoring_auditevent (at, actor, patient_id, action, model, object_id, "
        "fields, surface, method, path, user_agent) "
        "VALUES (now(), 'nurse', %s, 'view', 'patient', '', '[]', 'api', 'GET', '/', '')",
        [patient_id],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE monitoring_auditevent SET actor = 'someone else'",
        "DELETE FROM monitoring_auditevent",
        "TRUNCATE monitoring_auditevent",
        "ALTER TABLE monitoring_auditevent DISABLE TRIGGER monitoring_auditevent_append_only",
        "DROP TABLE monitoring_auditevent",
    ],
    ids=["update", "delete", "truncate", "disable trigger", "drop"],
)
def test_the_app_role_cannot_alter_the_audit_trail(app_role, statement):
    row = audit_row()

    with pytest.raises(errors.InsufficientPrivilege):
        try:
            as_app(statement)
        except Exception as error:  # Django wraps it; the cause is PostgreSQL's own refusal
            raise error.__cause__ from None

    assert AuditEvent.objects.filter(pk=row).exists()


@pytest.mark.django_db
def test_granting_a_role_that_does_not_exist_says_so():
    with pytest.raises(CommandError, match="No PostgreSQL role 'nobody_here'"):
        call_command("grant_app_role", "nobody_here")


@pytest.mark.django_db
def test_the_role_is_created_with_the_password_of_the_named_variable(monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, "s3cret'; DROP TABLE x; --")
    try:
        call_command("grant_app_role", "vigil_test_login", password_env=PASSWORD_VARIABLE)
        call_command("grant_app_role", "vigil_test_login", password_env=PASSWORD_VARIABLE)

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                "WHERE rolname = 'vigil_test_login'"
            )
            assert cursor.fetchone() == (True, False, False, False)
            cursor.execute("SELECT count(*) FROM pg_tables WHERE tableowner = 'vigil_test_login'")
            assert cursor.fetchone() == (0,)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP OWNED BY vigil_test_login; DROP ROLE vigil_test_login")


@pytest.mark.django_db
def test_an_empty_password_variable_creates_nothing(monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, "")

    with pytest.raises(CommandError, match=f"{PASSWORD_VARIABLE} is empty"):
        call_command("grant_app_role", "vigil_test_empty", password_env=PASSWORD_VARIABLE)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'vigil_test_empty'")
        assert cursor.fetchone() == (0,)
