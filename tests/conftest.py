"""Personas and API clients shared by every test.

A nurse, a physician and a coordinator work in `team`; an outsider is a nurse in
`other_team`. Each team has one patient. Each persona is in its role's group, as the
product's membership paths keep it (alerts.teams.sync_role_groups). Clients carry real
credentials issued the way the product issues them.
"""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from rest_framework.test import APIClient

from monitoring.auth import issue_app_token, issue_staff_token, register_device
from tests import openapi_responses, pooled
from tests.factories import CareTeamFactory, MembershipFactory, PatientFactory, UserFactory


def pytest_report_header(config):
    database = settings.DATABASES["default"]
    return f"database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings, django_db_blocker):
    """Behind a transaction pooler (DATABASE_POOLER=transaction, ./scripts/test's pooler run)
    the test database is created and dropped on PostgreSQL itself (DATABASE_DIRECT_URL), the
    tests run through the pooler: pytest-django's CREATE and DROP DATABASE must not share
    PgBouncer's server connections, and the DROP must find none open."""
    if settings.DATABASE_POOLER:
        pooled.through_pooler = {
            alias: (
                connections[alias].settings_dict["HOST"],
                connections[alias].settings_dict["PORT"],
            )
            for alias in connections
        }
        with django_db_blocker.unblock():
            pooled.direct(connections)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    if not settings.DATABASE_POOLER:
        yield
        return
    pooled.through(connections)
    yield
    with django_db_blocker.unblock():
        pooled.direct(connections)


def pytest_collection_modifyitems(config, items):
    """On the embedded SQLite default (./scripts/test's second run, DATABASE_URL unset), the
    tests of what only PostgreSQL does (advisory locks, SKIP LOCKED races, COPY, the roles'
    grants) and those that start a Celery worker (marker `worker`: it is handed the
    PostgreSQL test database) are skipped, with the reason; all others must pass. Behind a
    transaction pooler (DATABASE_POOLER) and on a broker other than Redis, the few tests that
    cannot hold there (markers `direct_database`, `redis_broker`) are skipped with the reason,
    and the tests of the pooler itself (marker `pooler`) run only there."""
    if settings.DATABASE_POOLER:
        # ./scripts/test's pooler run: through PgBouncer in transaction pooling a server
        # connection serves whichever client has a transaction, so no worker owns a backend.
        skip = pytest.mark.skip(
            reason="asserts on a worker's own PostgreSQL backends; behind a transaction "
            "pooler server connections change hands between transactions"
        )
        for item in items:
            if item.get_closest_marker("direct_database"):
                item.add_marker(skip)
    else:
        skip = pytest.mark.skip(reason="runs behind a transaction pooler (./scripts/test --pooler)")
        for item in items:
            if item.get_closest_marker("pooler"):
                item.add_marker(skip)
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        # ./scripts/test's RabbitMQ run: the worker tests are broker-agnostic (tests/broker.py);
        # these read Redis lists and hashes, or restart a redis-server of their own.
        scheme = settings.CELERY_BROKER_URL.split(":")[0]
        skip = pytest.mark.skip(reason=f"reads Redis structures; this run's broker is {scheme}")
        for item in items:
            if item.get_closest_marker("redis_broker"):
                item.add_marker(skip)
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine.endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL; this run uses {engine.rsplit('.', 1)[-1]}")
    for item in items:
        if item.get_closest_marker("postgres") or item.get_closest_marker("worker"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The default PBKDF2 hasher costs ~0.3 s a user; tests of logins need a hash, not its cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    # Login throttles count in the cache (Redis in tests); each test starts from zero.
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _responses_match_the_openapi_document(monkeypatch):
    # Every API answer a test receives must be one the OpenAPI document describes
    # (tests/openapi_responses.py): the document is the contract the apps are built on.
    openapi_responses.install(monkeypatch)


@pytest.fixture
def team(db):
    return CareTeamFactory(name="Heart failure clinic")


@pytest.fixture
def other_team(db):
    return CareTeamFactory(name="Diabetes clinic")


@pytest.fixture
def nurse(team):
    return MembershipFactory(team=team, user=UserFactory(username="nurse"), role="nurse").user


@pytest.fixture
def physician(team):
    return MembershipFactory(
        team=team, user=UserFactory(username="physician"), role="physician", escalation_level=2
    ).user


@pytest.fixture
def coordinator(team):
    return MembershipFactory(
        team=team, user=UserFactory(username="coordinator"), role="coordinator"
    ).user


@pytest.fixture
def outsider(other_team):
    return MembershipFactory(team=other_team, user=UserFactory(username="outsider")).user


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def patient(team):
    return PatientFactory(care_team=team, timezone="America/New_York")


@pytest.fixture
def other_patient(other_team):
    return PatientFactory(care_team=other_team)


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anonymous_client():
    return APIClient()


@pytest.fixture
def patient_client(patient):
    return client_with(issue_app_token(patient=patient)[1])


@pytest.fixture
def other_patient_client(other_patient):
    return client_with(issue_app_token(patient=other_patient)[1])


@pytest.fixture
def device_client(patient):
    device, key = register_device(patient=patient, kind="scale", model="Body+", serial="SC-1")
    client = client_with(key)
    client.device = device
    return client


@pytest.fixture
def staff_client():
    """staff_client(user) -> an APIClient holding a staff token of that user."""

    def make(user) -> APIClient:
        return client_with(issue_staff_token(user=user)[1])

    return make


@pytest.fixture
def nurse_client(nurse, staff_client):
    return staff_client(nurse)


@pytest.fixture
def coordinator_client(coordinator, staff_client):
    return staff_client(coordinator)


@pytest.fixture
def outsider_client(outsider, staff_client):
    return staff_client(outsider)


@pytest.fixture
def run_concurrently():
    """run_concurrently(call, call, …) -> their results: each call in its own thread, all
    released at once, each on its own database connection (use with a transactional test).
    Raises the first exception a call raised."""
    import threading

    from django.db import connection

    def run(*calls):
        barrier = threading.Barrier(len(calls))
        results, errors = [None] * len(calls), []

        def work(position, call):
            try:
                barrier.wait(timeout=10)
                results[position] = call()
            except BaseException as error:  # handed to the test's thread below
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=work, args=pair) for pair in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        if errors:
            raise errors[0]
        return results

    return run
