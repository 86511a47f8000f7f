"""What a single-reading upload costs the web process: the credential lookup is one
statement built once per process, its last-use write at most once per TOUCH_INTERVAL, and
on PostgreSQL the whole upload is two statements: the lookup, and one that claims the keys,
inserts the readings and writes the audit event, its own transaction (benchmarks/README.md,
"Cost per live reading")."""

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
def test_a_single_reading_upload_is_two_statements_and_the_audit_event_rides_with_the_insert(
    patient, django_capture_on_commit_callbacks
):
    # given: a token whose last use was just written (within TOUCH_INTERVAL)
    _, plaintext = issue_app_token(patient=patient)
    client = client_with(plaintext)
    client.post(
        "/api/v1/readings",
        {"readings": [ReadingItemFactory()]},
        format="json",
        HTTP_USER_AGENT="CuffApp/2.1",
    )

    # when: the steady state of a device posting a reading at a time
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/readings",
            {"readings": [ReadingItemFactory()]},
            format="json",
            HTTP_USER_AGENT="CuffApp/2.1",
        )

    # then: the credential (with its patient), then one statement in autocommit (no BEGIN,
    # no COMMIT): the keys claimed, the readings inserted, the audit event written
    assert response.status_code == 201
    statements = [q["sql"].split()[0] for q in queries]
    assert statements == ["SELECT", "WITH"]
    assert "monitoring_patientapptoken" in queries[0]["sql"]
    assert "INSERT INTO monitoring_readingkey" in queries[1]["sql"]
    assert "INSERT INTO monitoring_reading " in queries[1]["sql"]
    assert "INSERT INTO monitoring_auditevent" in queries[1]["sql"]
    assert Reading.objects.filter(patient=patient).count() == 2
    # one event per upload, as the audit middleware writes for any other call
    events = AuditEvent.objects.filter(patient=patient).order_by("id")
    assert events.count() == 2
    event = events.last()
    assert (
        event.action,
        event.model,
        event.actor,
        event.user_id,
        event.object_id,
        event.fields,
        event.surface,
        event.method,
        event.path,
        event.ip,
        event.user_agent,
    ) == (
        "create",
        "monitoring.reading",
        f"patient:{patient.pk}",
        None,
        "",
        [],
        "api",
        "POST",
        "/api/v1/readings",
        "127.0.0.1",
        "CuffApp/2.1",
    )


@pytest.mark.django_db
def test_an_upload_of_only_rejected_items_is_audited_by_the_middleware(patient):
    # given: nothing valid to store, so no insert statement carries the event
    _, plaintext = issue_app_token(patient=patient)

    # when
    response = client_with(plaintext).post(
        "/api/v1/readings",
        {"readings": [{"id": "not-a-uuid", "type": "glucose"}]},
        format="json",
    )

    # then: answered, nothing stored, the call audited once all the same
    assert response.status_code == 200
    assert response.json()["rejected"] == 1
    assert not Reading.objects.exists()
    assert list(
        AuditEvent.objects.filter(patient=patient).values_list("action", "model", "method")
    ) == [("create", "monitoring.reading", "POST")]


@pytest.mark.django_db
def test_a_batch_with_a_pulse_is_audited_once(patient):
    # given: a blood pressure with its pulse (two statements in one transaction)
    _, plaintext = issue_app_token(patient=patient)
    item = ReadingItemFactory(type="blood_pressure", pulse=71)

    # when
    response = client_with(plaintext).post("/api/v1/readings", {"readings": [item]}, format="json")

    # then
    assert response.status_code == 201, response.json()
    assert sorted(Reading.objects.filter(patient=patient).values_list("metric", flat=True)) == [
        "blood_pressure",
        "heart_rate",
    ]
    assert AuditEvent.objects.filter(patient=patient).count() == 1
