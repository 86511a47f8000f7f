"""What a single-reading upload costs the web process: the credential lookup is one
statement built once per process, its last-use write at most once per TOUCH_INTERVAL, and
the whole upload is five statements and one transaction for the readings and their keys
(benchmarks/README.md, "Cost per live reading")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.auth import (
    TOUCH_INTERVAL,
    BearerTokenAuthentication,
    credential_with_patient,
    issue_app_token,
    register_device,
)
from monitoring.models import AuditEvent, Device, PatientAppToken, Reading, hash_secret
from tests.conftest import client_with
from tests.factories import ReadingItemFactory


def field_values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["app token", "device key"])
def test_the_compiled_lookup_returns_what_the_orm_lookup_returns(patient, kind):
    # given
    if kind == "app token":
        credential, plaintext = issue_app_token(patient=patient)
        model, column = PatientAppToken, "token_hash"
    else:
        credential, plaintext = register_device(patient=patient, kind="scale", serial="SC-9")
        model, column = Device, "key_hash"
    expected = model.objects.select_related("patient").get(pk=credential.pk)

    # when
    with CaptureQueriesContext(connection) as queries:
        found = credential_with_patient(model, column, hash_secret(plaintext))
        patient_of_found = found.patient

    # then: one statement, the patient came with it, every field as the ORM loads it
    assert len(queries) == 1
    assert type(found) is model
    assert field_values(found) == field_values(expected)
    assert field_values(patient_of_found) == field_values(expected.patient)
    assert found._state.adding is False
    assert found._state.db == "default"


@pytest.mark.django_db
def test_the_compiled_lookup_finds_nothing_for_an_unknown_hash(patient):
    issue_app_token(patient=patient)

    assert credential_with_patient(PatientAppToken, "token_hash", hash_secret("vat_nope")) is None


@pytest.mark.django_db
def test_last_used_at_is_written_at_most_once_per_interval(patient):
    # given: a token used just now
    token, plaintext = issue_app_token(patient=patient)
    auth = BearerTokenAuthentication()
    auth.authenticate_token(plaintext)
    first = PatientAppToken.objects.get(pk=token.pk).last_used_at
    assert first is not None

    # when: used again within the interval
    with CaptureQueriesContext(connection) as queries:
        auth.authenticate_token(plaintext)

    # then: one read, no write
    assert [q["sql"].split()[0] for q in queries] == ["SELECT"]
    assert PatientAppToken.objects.get(pk=token.pk).last_used_at == first

    # when: the last use is older than the interval
    stale = timezone.now() - TOUCH_INTERVAL - timedelta(seconds=1)
    PatientAppToken.objects.filter(pk=token.pk).update(last_used_at=stale)
    with CaptureQueriesContext(connection) as queries:
        auth.authenticate_token(plaintext)

    # then: written once more
    assert [q["sql"].split()[0] for q in queries] == ["SELECT", "UPDATE"]
    assert PatientAppToken.objects.get(pk=token.pk).last_used_at > stale


@pytest.mark.django_db
def test_a_revoked_token_is_refused_by_the_compiled_lookup(patient):
    token, plaintext = issue_app_token(patient=patient)
    PatientAppToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())

    response = client_with(plaintext).post(
        "/api/v1/readings", {"readings": [ReadingItemFactory()]}, format="json"
    )

    assert response.status_code == 401
    assert not Reading.objects.exists()


@pytest.mark.postgres  # the statements are PostgreSQL's (one WITH for keys and readings)
@pytest.mark.django_db(transaction=True)
def test_a_single_reading_upload_is_five_statements_and_one_transaction(
    patient, django_capture_on_commit_callbacks
):
    # given: a token whose last use was just written (within TOUCH_INTERVAL)
    _, plaintext = issue_app_token(patient=patient)
    client = client_with(plaintext)
    client.post("/api/v1/readings", {"readings": [ReadingItemFactory()]}, format="json")

    # when: the steady state of a device posting a reading at a time
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/readings", {"readings": [ReadingItemFactory()]}, format="json"
        )

    # then: the credential (with its patient), the readings' transaction (one statement:
    # the keys claimed and the readings inserted, monitoring/ingest/store.py), the audit row
    assert response.status_code == 201
    statements = [q["sql"].split()[0] for q in queries]
    assert statements == ["SELECT", "BEGIN", "WITH", "COMMIT", "INSERT"]
    assert "INSERT INTO monitoring_readingkey" in queries[2]["sql"]
    assert "INSERT INTO monitoring_reading " in queries[2]["sql"]
    assert "monitoring_patientapptoken" in queries[0]["sql"]
    assert 'INSERT INTO "monitoring_auditevent"' in queries[-1]["sql"]
    assert Reading.objects.filter(patient=patient).count() == 2
    event = AuditEvent.objects.filter(patient=patient).order_by("-id").first()
    assert (event.action, event.model, event.actor) == (
        "create",
        "monitoring.reading",
        f"patient:{patient.pk}",
    )
