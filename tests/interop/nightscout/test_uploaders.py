"""Issuing and revoking a patient's Nightscout uploader, and its credentials."""

import hashlib

import pytest
from django.db import IntegrityError, transaction

from interop.models import NightscoutUploader, secret_digest
from interop.nightscout.uploaders import issue_uploader
from monitoring.models import AuditEvent
from tests.interop.nightscout.conftest import Uploader

pytestmark = pytest.mark.django_db

UNAUTHORIZED = {"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}


def test_a_coordinator_issues_the_patients_base_url_and_secret_shown_once(
    coordinator_client, patient
):
    response = coordinator_client.post(f"/api/v1/patients/{patient.pk}/nightscout")

    assert response.status_code == 201
    body = response.json()
    uploader = NightscoutUploader.objects.get(patient=patient)
    assert body["base_url"] == f"http://testserver/nightscout/{uploader.slug}/"
    assert len(body["api_secret"]) == 32
    # Only a hash of the SHA-1 hex (itself a credential, as uploaders send it) is kept.
    sha1 = hashlib.sha1(body["api_secret"].encode()).hexdigest()
    assert uploader.secret_hash == secret_digest(sha1)
    assert body["api_secret"] not in uploader.secret_hash
    assert sha1 not in uploader.secret_hash
    assert uploader.created_by.username == "coordinator"
    assert (
        Uploader(uploader, body["api_secret"]).get("verifyauth").json()["message"]["message"]
        == "OK"
    )
    assert list(AuditEvent.objects.values_list("action", "model", "patient_id")) == [
        ("create", "interop.nightscoutuploader", patient.pk)
    ]


def test_a_new_uploader_replaces_the_old_one(coordinator_client, patient):
    first = coordinator_client.post(f"/api/v1/patients/{patient.pk}/nightscout").json()
    second = coordinator_client.post(f"/api/v1/patients/{patient.pk}/nightscout").json()

    old, new = NightscoutUploader.objects.filter(patient=patient).order_by("id")
    assert (old.revoked_at is not None, new.revoked_at) == (True, None)
    assert first["base_url"] != second["base_url"]
    assert Uploader(old, first["api_secret"]).get("status.json").status_code == 401
    assert Uploader(new, second["api_secret"]).get("status.json").status_code == 200


def test_the_database_holds_one_active_uploader_per_patient(patient, coordinator):
    issue_uploader(patient=patient, created_by=coordinator)

    with pytest.raises(IntegrityError), transaction.atomic():
        NightscoutUploader.objects.create(patient=patient, slug="second", secret_hash="x")


def test_revoking_stops_the_base_url_at_once(coordinator_client, patient, uploader):
    response = coordinator_client.delete(f"/api/v1/patients/{patient.pk}/nightscout")

    assert response.status_code == 204
    assert uploader.get("entries.json").json() == UNAUTHORIZED
    again = coordinator_client.delete(f"/api/v1/patients/{patient.pk}/nightscout")
    assert again.status_code == 204


def test_only_the_patients_coordinators_issue_or_revoke(
    staff_client, nurse, outsider_client, patient, uploader
):
    nurse_client = staff_client(nurse)

    refused = nurse_client.post(f"/api/v1/patients/{patient.pk}/nightscout")
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "Only the patient's coordinators may issue Nightscout uploaders.",
    )
    assert nurse_client.delete(f"/api/v1/patients/{patient.pk}/nightscout").status_code == 403
    assert outsider_client.post(f"/api/v1/patients/{patient.pk}/nightscout").status_code == 404
    # Nothing changed: the one uploader is still the active one and still answers.
    assert list(NightscoutUploader.objects.values_list("pk", "revoked_at")) == [
        (uploader.record.pk, None)
    ]
    assert uploader.get("status.json").status_code == 200


@pytest.mark.parametrize(
    "how",
    ["sha1 header", "secret header", "sha1 upper-case header", "token query", "secret query"],
)
def test_the_credentials_nightscout_clients_send(uploader, how):
    sha1 = hashlib.sha1(uploader.secret.encode()).hexdigest()
    url = "status.json"
    headers = {
        "sha1 header": {"api-secret": sha1},
        "secret header": {"api-secret": uploader.secret},
        "sha1 upper-case header": {"api-secret": sha1.upper()},
    }.get(how, {"x-none": ""})
    if how == "token query":
        url += f"?token={uploader.secret}"
    if how == "secret query":
        url += f"?secret={sha1}"

    assert uploader.get(url, **headers).status_code == 200


@pytest.mark.parametrize("path", ["status.json", "entries.json", "treatments", "devicestatus"])
def test_anything_else_is_401_in_nightscouts_shape(uploader, other_patient, coordinator, path):
    _, other_secret = issue_uploader(patient=other_patient, created_by=coordinator)
    wrong = hashlib.sha1(b"not the secret").hexdigest()

    for headers in (
        {"api-secret": wrong},
        {"api-secret": other_secret},  # another patient's secret on this base URL
        {"x-none": ""},
    ):
        response = uploader.get(path, **headers)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    posted = uploader.post(path, {"type": "sgv", "sgv": 50, "date": 1}, **{"api-secret": wrong})
    assert (posted.status_code, posted.json()) == (401, UNAUTHORIZED)
    assert uploader.record.patient.readings.count() == 0


def test_an_unknown_base_url_is_401_not_404(client):
    response = client.get("/nightscout/nosuchslug/api/v1/status.json", headers={"api-secret": "x"})

    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_verifyauth_answers_200_either_way(uploader):
    # lib/api/verifyauth.js; tests/api.verifyauth.test.js
    assert uploader.get("verifyauth").json() == {
        "status": 200,
        "message": {
            "canRead": True,
            "canWrite": True,
            "isAdmin": True,
            "message": "OK",
            "rolefound": "NOTFOUND",
            "permissions": "ROLE",
        },
    }
    refused = uploader.get("verifyauth", **{"x-none": ""})
    assert refused.status_code == 200
    assert refused.json()["message"] == {
        "canRead": False,
        "canWrite": False,
        "isAdmin": False,
        "message": "UNAUTHORIZED",
        "rolefound": "NOTFOUND",
        "permissions": "DEFAULT",
    }


def test_status_json_as_uploaders_read_it(uploader, time_machine):
    time_machine.move_to("2026-03-01T12:00:00Z", tick=False)

    response = uploader.get("status.json")

    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "status": "ok",
        "name": "Vigil",
        "version": "15.0.7",
        "serverTime": "2026-03-01T12:00:00.000Z",
        "serverTimeEpoch": 1772366400000,
        "apiEnabled": True,
        "careportalEnabled": True,
        "boluscalcEnabled": False,
        "settings": {
            "units": "mg/dl",
            "timeFormat": 24,
            "enable": ["careportal", "devicestatus"],
            "authDefaultRoles": "denied",
            "customTitle": "Vigil",
        },
        "extendedSettings": {"devicestatus": {"advanced": True}},
        "authorized": None,
        "runtimeState": "loaded",
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_leave_one_active_uploader(patient, coordinator, run_concurrently):
    issued = run_concurrently(
        lambda: issue_uploader(patient=patient, created_by=coordinator),
        lambda: issue_uploader(patient=patient, created_by=coordinator),
    )

    assert NightscoutUploader.objects.filter(patient=patient).count() == 2
    [active] = NightscoutUploader.objects.filter(patient=patient, revoked_at=None)
    assert active.pk in {uploader.pk for uploader, _ in issued}


def test_uploads_and_reads_are_audited_as_the_uploader(uploader, patient):
    uploader.post("entries", {"type": "sgv", "sgv": 100, "date": 1768732200000})
    uploader.get("entries/sgv.json")
    uploader.get("treatments.json")

    actor = f"nightscout:{uploader.record.pk}"
    events = AuditEvent.objects.order_by("id").values_list(
        "actor", "patient_id", "action", "model", "surface", "method"
    )
    assert list(events) == [
        (actor, patient.pk, "create", "monitoring.reading", "other", "POST"),
        (actor, patient.pk, "view", "monitoring.reading", "other", "GET"),
        (actor, patient.pk, "view", "interop.nightscoutdocument", "other", "GET"),
    ]


def test_experiments_test_is_where_loop_checks_its_credentials(uploader):
    # lib/api/experiments/index.js
    assert uploader.get("experiments/test").json() == {"status": "ok"}
    refused = uploader.get("experiments/test", **{"x-none": ""})
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
