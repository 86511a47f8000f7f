"""The audit log (monitoring/audit.py, monitoring/models/audit.py): every view and change of
a patient's data through the API and the admin is one AuditEvent per patient, with who,
what, when and from where; refused calls write none; nobody can change or delete an event,
in the ORM or (PostgreSQL) in SQL; only superusers read the log in the admin.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from alerts.models import AlertStatus, Silence
from monitoring.audit import API_AUDIT, NOT_AUDITED, record
from monitoring.auth import issue_app_token
from monitoring.models import AuditEvent, AuditLogIsAppendOnly, Patient
from tests.alerts.test_admin_scoping import BUILDERS
from tests.conftest import client_with
from tests.factories import AlertFactory, PatientFactory, ReadingFactory, RuleFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AGENT = "VigilTest/1.0 (pytest)"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def events() -> list[tuple]:
    return list(
        AuditEvent.objects.order_by("id").values_list(
            "actor", "patient_id", "action", "model", "object_id", "fields", "surface", "method"
        )
    )


def weight() -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "weight",
        "value": 81.5,
        "unit": "kg",
        "measured_at": "2026-03-01T07:00:00+01:00",
    }


# --- The API -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_staff_read_of_a_patient_is_one_event_with_who_what_when_and_where(
    nurse, nurse_client, patient
):
    response = nurse_client.get(
        f"/api/v1/patients/{patient.pk}", HTTP_USER_AGENT=AGENT, REMOTE_ADDR="203.0.113.7"
    )

    assert response.status_code == 200
    event = AuditEvent.objects.get()
    assert (event.user, event.actor, event.patient_id, event.action) == (
        nurse,
        "nurse",
        patient.pk,
        "view",
    )
    assert (event.model, event.object_id, event.fields) == (
        "monitoring.patient",
        str(patient.pk),
        [],
    )
    assert (event.at, event.ip, event.user_agent) == (NOW, "203.0.113.7", AGENT)
    assert (event.surface, event.method, event.path) == (
        "api",
        "GET",
        f"/api/v1/patients/{patient.pk}",
    )


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded_for", "recorded"),
    [
        pytest.param((), "203.0.113.7", "198.51.100.1", "203.0.113.7", id="no-proxy-trusted"),
        pytest.param(
            ("10.0.0.0/8",), "10.0.0.2", "198.51.100.1", "198.51.100.1", id="through-the-proxy"
        ),
        pytest.param(
            ("10.0.0.0/8",),
            "10.0.0.2",
            "192.0.2.66, 198.51.100.1",
            "198.51.100.1",
            id="client-wrote-its-own",
        ),
        pytest.param(
            ("10.0.0.0/8", "172.16.0.1"),
            "10.0.0.2",
            "198.51.100.1, 172.16.0.1",
            "198.51.100.1",
            id="two-proxies",
        ),
        pytest.param(("10.0.0.0/8",), "10.0.0.2", "", "10.0.0.2", id="proxy-sent-none"),
        pytest.param(
            ("10.0.0.0/8",), "203.0.113.7", "198.51.100.1", "203.0.113.7", id="not-via-the-proxy"
        ),
        pytest.param((), "::ffff:203.0.113.7", "", "203.0.113.7", id="ipv4-mapped"),
    ],
)
@pytest.mark.django_db
def test_the_address_recorded_is_the_one_no_client_could_forge(
    settings, nurse_client, patient, trusted, remote, forwarded_for, recorded
):
    settings.VIGIL_TRUSTED_PROXIES = tuple(ipaddress.ip_network(t) for t in trusted)

    nurse_client.get(
        f"/api/v1/patients/{patient.pk}", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded_for
    )

    assert AuditEvent.objects.get().ip == recorded


@pytest.mark.django_db
def test_a_readings_list_is_one_event_with_its_query(nurse_client, patient):
    ReadingFactory.create_batch(3, patient=patient)

    nurse_client.get(f"/api/v1/patients/{patient.pk}/readings?type=weight")

    assert events() == [("nurse", patient.pk, "view", "monitoring.reading", "", [], "api", "GET")]
    assert AuditEvent.objects.get().path == f"/api/v1/patients/{patient.pk}/readings?type=weight"


@pytest.mark.django_db
def test_a_list_of_several_patients_is_one_event_per_patient_shown(
    superuser, staff_client, patient, other_patient
):
    staff_client(superuser).get("/api/v1/patients")

    assert events() == [
        ("root", patient.pk, "view", "monitoring.patient", "", [], "api", "GET"),
        ("root", other_patient.pk, "view", "monitoring.patient", "", [], "api", "GET"),
    ]


@pytest.mark.django_db
def test_the_alert_list_records_each_patient_once(nurse_client, team, patient):
    second = PatientFactory(care_team=team)
    AlertFactory(patient=patient)
    AlertFactory(patient=patient)
    AlertFactory(patient=second)

    nurse_client.get("/api/v1/alerts")

    assert sorted(AuditEvent.objects.values_list("patient_id", "model")) == sorted(
        [(patient.pk, "alerts.alert"), (second.pk, "alerts.alert")]
    )


@pytest.mark.django_db
def test_a_batch_of_readings_is_one_event_of_the_patient_app(patient, patient_client):
    response = patient_client.post(
        "/api/v1/readings", {"readings": [weight(), weight(), weight()]}, format="json"
    )

    assert response.json()["created"] == 3
    assert events() == [
        (f"patient:{patient.pk}", patient.pk, "create", "monitoring.reading", "", [], "api", "POST")
    ]
    assert AuditEvent.objects.get().user is None


@pytest.mark.django_db
def test_a_device_posting_is_recorded_as_the_device(patient, device_client):
    device_client.post("/api/v1/readings", weight(), format="json")

    assert events() == [
        (
            f"device:{device_client.device.pk}",
            patient.pk, "create", "monitoring.reading", "", [], "api", "POST",
        )
    ]  # fmt: skip


@pytest.mark.django_db
def test_the_patients_own_profile_is_one_view(patient, patient_client):
    patient_client.get("/api/v1/me")

    assert events() == [
        (f"patient:{patient.pk}", patient.pk, "view", "monitoring.patient", "", [], "api", "GET")
    ]


@pytest.mark.django_db
def test_a_rule_change_records_the_fields_changed(physician, staff_client, patient):
    rule = RuleFactory(patient=patient)

    staff_client(physician).patch(
        f"/api/v1/patients/{patient.pk}/rules/{rule.pk}",
        {"severity": "critical", "note": "after review"},
        format="json",
    )

    assert events() == [
        ("physician", patient.pk, "change", "monitoring.rule", str(rule.pk),
         ["note", "severity"], "api", "PATCH"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_issuing_and_revoking_an_app_token_are_a_create_and_a_change(coordinator_client, patient):
    issued = coordinator_client.post(f"/api/v1/patients/{patient.pk}/tokens").json()
    coordinator_client.delete(f"/api/v1/patients/{patient.pk}/tokens/{issued['id']}")

    assert events() == [
        ("coordinator", patient.pk, "create", "monitoring.patientapptoken", str(issued["id"]),
         [], "api", "POST"),
        ("coordinator", patient.pk, "change", "monitoring.patientapptoken", str(issued["id"]),
         ["revoked_at"], "api", "DELETE"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_acknowledging_an_alert_is_a_change_of_its_status(nurse_client, patient):
    alert = AlertFactory(patient=patient)

    nurse_client.post(f"/api/v1/alerts/{alert.pk}/acknowledge", {"note": "seen"}, format="json")

    assert events() == [
        ("nurse", patient.pk, "change", "alerts.alert", str(alert.pk), ["status"], "api", "POST")
    ]


@pytest.mark.django_db
def test_refused_calls_of_a_known_caller_are_recorded_as_refused(
    nurse_client, coordinator_client, patient, other_patient
):
    rule = RuleFactory(patient=patient)

    responses = [
        nurse_client.get(f"/api/v1/patients/{other_patient.pk}"),
        nurse_client.get(f"/api/v1/patients/{other_patient.pk}/readings"),
        coordinator_client.patch(
            f"/api/v1/patients/{patient.pk}/rules/{rule.pk}", {"severity": "info"}, format="json"
        ),
    ]

    assert [r.status_code for r in responses] == [404, 404, 403]
    assert events() == [
        ("nurse", other_patient.pk, "refused", "monitoring.patient", str(other_patient.pk), [],
         "api", "GET"),
        ("nurse", other_patient.pk, "refused", "monitoring.reading", "", [], "api", "GET"),
        ("coordinator", patient.pk, "refused", "monitoring.rule", str(rule.pk), [], "api",
         "PATCH"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_an_unauthenticated_call_names_nobody_and_writes_no_event(patient):
    response = Client().get(f"/api/v1/patients/{patient.pk}")

    assert response.status_code == 401
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_head_request_of_patient_data_is_a_view(nurse_client, patient):
    response = nurse_client.head(f"/api/v1/patients/{patient.pk}")

    assert response.status_code == 200
    assert events() == [
        ("nurse", patient.pk, "view", "monitoring.patient", str(patient.pk), [], "api", "HEAD")
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_audit_write_never_turns_a_stored_upload_into_an_error(patient, patient_client):
    # given: the audit table refuses every insert (a fault injected in PostgreSQL itself)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit storage unavailable'; END $$; "
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON monitoring_auditevent "
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        )
    try:
        # when
        item = weight()
        response = patient_client.post("/api/v1/readings", item, format="json")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse_audit ON monitoring_auditevent; DROP FUNCTION refuse_audit()"
            )

    # then: the client is told what was stored, and it was
    assert response.status_code == 201
    assert response.json()["results"] == [{"id": item["id"], "status": "created"}]
    assert patient.readings.filter(client_id=item["id"]).count() == 1
    assert not AuditEvent.objects.exists()


def _api_url_names(patterns, prefix: str = "") -> set[str]:
    names = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            names |= _api_url_names(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            names.add(pattern.name)
    return names


def test_every_api_endpoint_is_either_audited_or_says_why_not():
    served = _api_url_names(get_resolver().url_patterns)

    assert served == set(API_AUDIT) | set(NOT_AUDITED)
    assert not set(API_AUDIT) & set(NOT_AUDITED)


# --- The admin -----------------------------------------------------------------------------


@pytest.fixture
def as_nurse(nurse) -> Client:
    client = Client(HTTP_USER_AGENT=AGENT, REMOTE_ADDR="198.51.100.4")
    client.force_login(nurse)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("model", list(BUILDERS), ids=[m.__name__ for m in BUILDERS])
def test_opening_an_object_in_the_admin_is_one_view_event(as_nurse, patient, model):
    obj = BUILDERS[model](patient)
    before = AuditEvent.objects.count()
    label = f"{model._meta.app_label}_{model._meta.model_name}"

    response = as_nurse.get(reverse(f"admin:{label}_change", args=[obj.pk]))

    assert response.status_code == 200
    new = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.actor, e.patient_id, e.action, e.model, e.object_id) for e in new] == [
        ("nurse", patient.pk, "view", model._meta.label_lower, str(obj.pk))
    ]
    assert (new[0].surface, new[0].ip, new[0].user_agent) == ("admin", "198.51.100.4", AGENT)


@pytest.mark.django_db
def test_a_changelist_is_one_view_event_per_patient_on_the_page(as_nurse, team, patient):
    second = PatientFactory(care_team=team)
    AlertFactory(patient=patient)
    AlertFactory(patient=patient)
    AlertFactory(patient=second)

    as_nurse.get(reverse("admin:alerts_alert_changelist"))

    assert events() == [
        ("nurse", patient.pk, "view", "alerts.alert", "", [], "admin", "GET"),
        ("nurse", second.pk, "view", "alerts.alert", "", [], "admin", "GET"),
    ]


@pytest.mark.django_db
def test_a_change_in_the_admin_is_one_change_event_naming_the_fields(as_nurse, nurse, patient):
    silence = Silence.objects.create(
        patient=patient,
        starts_at=NOW,
        ends_at=NOW + timedelta(days=1),
        author=nurse,
        reason="Scale broken",
    )

    response = as_nurse.post(
        reverse("admin:alerts_silence_change", args=[silence.pk]),
        {
            "patient": patient.pk,
            "rule": "",
            "starts_at_0": "2026-03-01",
            "starts_at_1": "12:00:00",
            "ends_at_0": "2026-03-03",
            "ends_at_1": "12:00:00",
            "reason": "Scale broken; replacement on its way",
        },
    )

    assert response.status_code == 302
    assert events() == [
        ("nurse", patient.pk, "change", "alerts.silence", str(silence.pk),
         ["ends_at", "reason"], "admin", "POST"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_an_admin_action_is_one_change_event_per_object(as_nurse, patient):
    first, second = AlertFactory(patient=patient), AlertFactory(patient=patient)

    as_nurse.post(
        reverse("admin:alerts_alert_changelist"),
        {"action": "acknowledge", "_selected_action": [first.pk, second.pk]},
    )

    assert first.__class__.objects.filter(status=AlertStatus.ACKNOWLEDGED).count() == 2
    assert sorted(
        AuditEvent.objects.filter(action="change").values_list("object_id", "fields")
    ) == sorted([(str(first.pk), ["action:acknowledge"]), (str(second.pk), ["action:acknowledge"])])


# --- Append-only ---------------------------------------------------------------------------


@pytest.fixture
def event(nurse, patient) -> AuditEvent:
    return record(user=nurse, patient=patient, action="view", what=patient)


@pytest.mark.django_db
def test_the_orm_refuses_to_change_or_delete_an_event(event):
    event.action = "delete"

    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="delete")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.update(actor="someone else")

    assert AuditEvent.objects.values_list("pk", "action", "actor").get() == (
        event.pk,
        "view",
        "nurse",
    )


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE monitoring_auditevent SET action = 'delete'",
        "UPDATE monitoring_auditevent SET actor = 'x' WHERE id = -1",
        "DELETE FROM monitoring_auditevent",
    ],
    ids=["update", "update-no-row", "delete"],
)
def test_postgresql_refuses_to_change_or_delete_an_event_in_sql(event, sql):
    with (
        pytest.raises(DatabaseError, match="the audit log is append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    assert AuditEvent.objects.values_list("pk", "action", "actor").get() == (
        event.pk,
        "view",
        "nurse",
    )


@pytest.mark.django_db
def test_deleting_a_patient_keeps_who_saw_their_data(event, patient):
    patient_id = patient.pk

    Patient.objects.filter(pk=patient_id).delete()

    assert AuditEvent.objects.values_list("patient_id", "actor").get() == (patient_id, "nurse")


# --- Who reads the log ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["nurse", "physician", "coordinator"])
def test_staff_who_are_not_superusers_cannot_see_the_audit_log(request, persona, event):
    client = Client()
    client.force_login(request.getfixturevalue(persona))

    listing = client.get(reverse("admin:monitoring_auditevent_changelist"))
    detail = client.get(reverse("admin:monitoring_auditevent_change", args=[event.pk]))
    index = client.get(reverse("admin:index"))

    assert (listing.status_code, detail.status_code) == (403, 403)
    assert b"auditevent" not in index.content


@pytest.mark.django_db
def test_a_superuser_reads_the_log_and_cannot_edit_or_delete_it(superuser, event):
    client = Client()
    client.force_login(superuser)

    listing = client.get(reverse("admin:monitoring_auditevent_changelist"))
    change = client.post(
        reverse("admin:monitoring_auditevent_change", args=[event.pk]), {"action": "delete"}
    )
    delete = client.post(
        reverse("admin:monitoring_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    add = client.get(reverse("admin:monitoring_auditevent_add"))

    assert listing.status_code == 200
    assert event in listing.context["cl"].result_list
    assert (change.status_code, delete.status_code, add.status_code) == (403, 403, 403)
    assert AuditEvent.objects.filter(pk=event.pk, action="view").exists()
    model_admin = admin.site.get_model_admin(AuditEvent)
    assert model_admin.get_actions(listing.wsgi_request) == {}


@pytest.mark.django_db
def test_an_app_token_of_one_patient_is_recorded_for_that_patient_only(patient, other_patient):
    client_with(issue_app_token(patient=other_patient)[1]).get("/api/v1/readings")

    assert list(AuditEvent.objects.values_list("patient_id", flat=True)) == [other_patient.pk]
