"""config/db_router.py: read-only admin pages read the replica, everything else the primary,
and no read follows a write to the replica.

The replica here is Django's test mirror of the test database (TEST MIRROR, as settings
declare it when DATABASE_REPLICA_URL is set): a second connection to the same PostgreSQL
database, so which alias ran a query is what the tests observe.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.db import connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from alerts.models import CareTeam
from config.db_router import PIN_COOKIE, ReplicaRouter, reads_from
from monitoring.models import Patient
from tests.factories import CareTeamFactory, PatientFactory, UserFactory

# The alias exists before pytest-django sets the databases up, so it is made a mirror of
# the test database like any configured one; nothing routes to it outside these tests.
if "replica" not in connections.settings:
    _replica = copy.deepcopy(connections["default"].settings_dict)
    _replica["TEST"] = {**_replica["TEST"], "MIRROR": "default"}
    connections.settings["replica"] = _replica

router = ReplicaRouter()


@pytest.fixture(autouse=True)
def _replica_connection_closed():
    # An open connection to the mirror would keep the test database from being dropped.
    yield
    connections["replica"].close()


@pytest.fixture
def routed(settings):
    """The router and its middleware installed, as settings install them with a replica."""
    settings.DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    settings.MIDDLEWARE = ["config.db_router.ReplicaRoutingMiddleware", *settings.MIDDLEWARE]


def test_reads_outside_a_designated_request_go_to_the_primary():
    # a Celery task, a management command, the API: nothing set the replica up
    assert router.db_for_read(Patient) == "default"


@pytest.mark.django_db(databases=["default", "replica"])
def test_a_designated_block_reads_the_replica_until_it_writes(routed):
    with reads_from(replica=True) as reads:
        assert router.db_for_read(Patient) == "replica"
        assert Patient.objects.all().db == "replica"

        CareTeamFactory(name="Cardiology")  # an INSERT on the primary

        assert reads.wrote
        assert router.db_for_read(Patient) == "default"
        assert Patient.objects.all().db == "default"


@pytest.mark.django_db(databases=["default", "replica"])
def test_a_row_lock_pins_the_block_to_the_primary(team):
    with reads_from(replica=True) as reads:
        list(CareTeam.objects.select_for_update().filter(pk=team.pk).using("default"))

        assert reads.wrote
        assert router.db_for_read(Patient) == "default"


@pytest.mark.django_db(databases=["default", "replica"])
def test_reads_and_savepoints_on_the_primary_do_not_pin():
    with reads_from(replica=True) as reads:
        with transaction.atomic(), transaction.atomic():  # BEGIN, SAVEPOINT, RELEASE
            list(CareTeam.objects.using("default").all())

        assert not reads.wrote
        assert router.db_for_read(Patient) == "replica"


def test_writes_go_to_the_primary_also_for_a_row_read_from_the_replica():
    patient = Patient(pk=1)
    patient._state.db = "replica"

    with reads_from(replica=True):
        assert router.db_for_write(Patient, instance=patient) == "default"


def test_only_the_primary_is_migrated():
    assert router.allow_migrate("default", "monitoring")
    assert not router.allow_migrate("replica", "monitoring")


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_an_admin_list_reads_the_replica_and_writes_its_audit_to_the_primary(routed, team):
    # given: a superuser and a patient, committed (the replica is another connection)
    PatientFactory(care_team=team)
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))

    # when
    with (
        CaptureQueriesContext(connections["replica"]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        response = client.get("/admin/monitoring/patient/")

    # then: the list came from the replica; every write went to the primary; after the
    # first write no read went to the replica
    assert response.status_code == 200
    replica_sql = [query["sql"] for query in on_replica.captured_queries]
    primary_sql = [query["sql"] for query in on_primary.captured_queries]
    assert any('FROM "monitoring_patient"' in sql for sql in replica_sql)
    assert all(sql.lstrip().upper().startswith("SELECT") for sql in replica_sql)
    assert any(sql.startswith("INSERT") for sql in primary_sql)  # the audit event
    assert PIN_COOKIE not in response.cookies


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_a_browser_that_changed_something_reads_the_primary_for_a_while(routed, team):
    # given: a superuser who just posted (here: an admin logout form, a POST that writes)
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    posted = client.post("/admin/logout/")
    assert posted.cookies[PIN_COOKIE]["max-age"] == django_settings.DATABASE_REPLICA_PIN_SECONDS
    client.force_login(UserFactory(username="root2", is_superuser=True, is_staff=True))

    # when: the next page, a designated one, with the pin cookie
    with CaptureQueriesContext(connections["replica"]) as on_replica:
        response = client.get("/admin/monitoring/patient/")

    # then: nothing read from the replica
    assert response.status_code == 200
    assert on_replica.captured_queries == []


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_the_api_and_the_login_page_never_read_the_replica(routed, patient_client):
    with CaptureQueriesContext(connections["replica"]) as on_replica:
        assert patient_client.get("/api/v1/readings").status_code == 200
        assert Client().get("/admin/login/").status_code == 200

    assert on_replica.captured_queries == []


def test_settings_make_the_replica_a_test_mirror_and_configure_the_pooler():
    # DATABASE_REPLICA_URL and DATABASE_POOLER as a deployment sets them, in a fresh process
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "r = s.DATABASES['replica']; d = s.DATABASES['default']; "
        "print(r['HOST'], r['PORT'], r['TEST']['MIRROR'], s.DATABASE_ROUTERS[0], "
        "s.MIDDLEWARE[0], d['DISABLE_SERVER_SIDE_CURSORS'], d['OPTIONS']['prepare_threshold'], "
        "r['DISABLE_SERVER_SIDE_CURSORS'])"
    )
    environment = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": "postgres://vigil_app@pgbouncer:6432/vigil",
        "DATABASE_REPLICA_URL": "postgres://vigil_app@replica-pooler:6432/vigil",
        "DATABASE_POOLER": "transaction",
    }

    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.stdout.split() == [
        "replica-pooler", "6432", "default", "config.db_router.ReplicaRouter",
        "config.db_router.ReplicaRoutingMiddleware", "True", "None", "True",
    ], result.stderr  # fmt: skip
