"""Broken object-level authorization, endpoint by endpoint.

A patient or device reaches only its own patient; a staff member only the patients of their
care teams. Another team's object is a 404, exactly like a missing one (no existence leak);
a credential of the wrong kind is a 403. Nothing is created or revoked on any refusal.
"""

import re
import uuid

import pytest
from django.urls import URLResolver, get_resolver

from alerts.models import Alert, CareTeam, CareTeamMembership
from interop.models import NightscoutUploader
from monitoring.auth import issue_app_token, issue_staff_token, register_device
from monitoring.models import (
    Device,
    MeasurementSchedule,
    MedicationPlan,
    Patient,
    PatientAppToken,
    Reading,
    Rule,
    StaffToken,
)
from program.models import Episode, Review, TimeEntry
from tests.conftest import client_with
from tests.factories import MembershipFactory, PatientFactory, ReadingFactory

NOT_FOUND = {"detail": "Not found."}
NEEDS_STAFF = {"detail": "This endpoint needs a staff token."}
NEEDS_APP = {"detail": "This endpoint needs a patient app token."}
NEEDS_APP_OR_DEVICE = {"detail": "This endpoint needs a patient app token or a device key."}


def row_counts() -> dict[str, int]:
    models = (
        Patient, PatientAppToken, Device, Reading, Rule, Alert, CareTeam, CareTeamMembership,
        StaffToken, MeasurementSchedule, MedicationPlan, NightscoutUploader, Review, Episode,
        TimeEntry,
    )  # fmt: skip
    return {model.__name__: model.objects.count() for model in models}


def active_credentials() -> set[tuple[str, int]]:
    tokens = PatientAppToken.objects.filter(revoked_at=None).values_list("pk", flat=True)
    devices = Device.objects.filter(revoked_at=None).values_list("pk", flat=True)
    return {("token", pk) for pk in tokens} | {("device", pk) for pk in devices}


def weight(reading_id=None) -> dict:
    return {
        "id": str(reading_id or uuid.uuid4()),
        "type": "weight",
        "value": 81.5,
        "unit": "kg",
        "measured_at": "2026-03-01T07:00:00+01:00",
    }


class Target:
    """A patient with one app token and one device, the objects the matrix aims at."""

    def __init__(self, patient):
        self.patient = patient
        self.token, _ = issue_app_token(patient=patient)
        self.device, _ = register_device(
            patient=patient, kind="scale", model="Body+", serial=f"SC-{patient.pk}"
        )

    def url(self, template: str) -> str:
        # Rules and alerts are refused before their lookup here; any id will do.
        return template.format(
            patient=self.patient.pk,
            token=self.token.pk,
            device=self.device.pk,
            rule=999999,
            alert=999999,
            schedule=999999,
            plan=999999,
            episode=999999,
            entry=999999,
        )


SCHEDULE = {"key": "weight", "metric": "weight", "times": ["07:00"], "window_minutes": 60}
PLAN = {"medication": "m", "name": "M", "dose_times": ["08:00"], "window_minutes": 60}
EPISODE = {
    "start": "2026-03-01",
    "consent_at": "2026-03-01T09:00:00Z",
    "consent_method": "verbal",
    "billing_practitioner": "physician",
    "conditions": ["I10"],
}
TIME_ENTRY = {"started_at": "2026-03-01T09:00:00Z", "minutes": 5, "activity": "data_review"}

# Every staff operation on one patient: (method, URL template, body).
PATIENT_OPERATIONS = [
    ("get", "/api/v1/patients/{patient}", None),
    ("get", "/api/v1/patients/{patient}/readings", None),
    ("post", "/api/v1/patients/{patient}/tokens", None),
    ("delete", "/api/v1/patients/{patient}/tokens/{token}", None),
    ("post", "/api/v1/patients/{patient}/devices", {"kind": "scale", "serial": "NEW-1"}),
    ("delete", "/api/v1/patients/{patient}/devices/{device}", None),
    ("get", "/api/v1/patients/{patient}/rules", None),
    ("post", "/api/v1/patients/{patient}/rules", {"metric": "weight"}),
    ("get", "/api/v1/patients/{patient}/schedules", None),
    ("post", "/api/v1/patients/{patient}/schedules", SCHEDULE),
    ("get", "/api/v1/patients/{patient}/medications", None),
    ("post", "/api/v1/patients/{patient}/medications", PLAN),
    ("post", "/api/v1/patients/{patient}/nightscout", None),
    ("delete", "/api/v1/patients/{patient}/nightscout", None),
    # The RPM program (issue 13).
    ("post", "/api/v1/patients/{patient}/reviews", {"note": "seen"}),
    ("get", "/api/v1/patients/{patient}/billing", None),
    ("get", "/api/v1/patients/{patient}/episodes", None),
    ("post", "/api/v1/patients/{patient}/episodes", EPISODE),
    ("get", "/api/v1/patients/{patient}/time-entries", None),
    ("post", "/api/v1/patients/{patient}/time-entries", TIME_ENTRY),
]
PATIENT_OPERATION_IDS = [f"{method}-{url}" for method, url, _ in PATIENT_OPERATIONS]

STAFF_OPERATIONS = [
    ("get", "/api/v1/patients", None),
    ("post", "/api/v1/patients", "enrolment"),
    ("get", "/api/v1/care-teams", None),
    ("post", "/api/v1/care-teams", {"name": "Patients' own team", "members": []}),
    *PATIENT_OPERATIONS,
    ("patch", "/api/v1/patients/{patient}/rules/{rule}", {"severity": "info"}),
    ("patch", "/api/v1/patients/{patient}/schedules/{schedule}", {"times": ["06:00"]}),
    ("delete", "/api/v1/patients/{patient}/schedules/{schedule}", None),
    ("patch", "/api/v1/patients/{patient}/medications/{plan}", {"dose_times": ["06:00"]}),
    ("delete", "/api/v1/patients/{patient}/medications/{plan}", None),
    ("get", "/api/v1/alerts", None),
    ("post", "/api/v1/alerts/{alert}/acknowledge", {"note": "seen"}),
    ("post", "/api/v1/alerts/{alert}/resolve", {"note": "fine"}),
    ("get", "/api/v1/billing/ledger", None),
    ("patch", "/api/v1/patients/{patient}/episodes/{episode}", {"end": "2026-03-01"}),
    ("post", "/api/v1/time-entries/{entry}/approve", None),
    # The RPM program (issue 13): another team's patients never appear on it
    # (tests/program/test_panel*.py).
    ("get", "/api/v1/panel", None),
]
STAFF_OPERATION_IDS = [f"{method}-{url}" for method, url, _ in STAFF_OPERATIONS]
PATIENT_ENDPOINTS = [
    ("get", "/api/v1/me"),
    ("get", "/api/v1/readings"),
    ("post", "/api/v1/readings"),
    # Nudges and push tokens: staff and device refusals in views/test_nudges.py.
    ("get", "/api/v1/nudges"),
    ("post", "/api/v1/nudges/{id}/opened"),
    ("post", "/api/v1/push-tokens"),
    ("delete", "/api/v1/push-tokens"),
]
LOGIN = ("post", "/api/v1/auth/token")
LOGOUT = ("delete", "/api/v1/auth/token")  # refusals: test_logout_by_a_patient_credential…


def call(client, method, url, body):
    return (
        getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
    )


# --- Staff of another team ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "template", "body"), PATIENT_OPERATIONS, ids=PATIENT_OPERATION_IDS
)
def test_staff_get_404_for_every_operation_on_another_teams_patient(
    nurse_client, other_patient, method, template, body
):
    # given: the other team's patient, with live credentials and a reading
    target = Target(other_patient)
    ReadingFactory(patient=other_patient)
    before, active = row_counts(), active_credentials()

    # when
    response = call(nurse_client, method, target.url(template), body)

    # then: as if the patient did not exist, and nothing changed
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert row_counts() == before
    assert active_credentials() == active


@pytest.mark.parametrize(
    ("method", "template", "body"), PATIENT_OPERATIONS, ids=PATIENT_OPERATION_IDS
)
def test_another_teams_patient_answers_exactly_like_a_missing_one(
    nurse_client, other_patient, method, template, body
):
    target = Target(other_patient)
    missing = template.format(patient=999999, token=target.token.pk, device=target.device.pk)

    hidden = call(nurse_client, method, target.url(template), body)
    absent = call(nurse_client, method, missing, body)

    assert (hidden.status_code, hidden.json()) == (absent.status_code, absent.json())


@pytest.mark.parametrize(
    "template",
    ["/api/v1/patients/{patient}/tokens/{token}", "/api/v1/patients/{patient}/devices/{device}"],
    ids=["token", "device"],
)
def test_a_credential_of_another_patient_is_404_under_ones_own_patient(
    nurse_client, patient, other_patient, template
):
    # given: the nurse's own patient in the URL, another team's token / device id after it
    mine, theirs = Target(patient), Target(other_patient)
    url = template.format(patient=mine.patient.pk, token=theirs.token.pk, device=theirs.device.pk)
    active = active_credentials()

    # when
    response = nurse_client.delete(url)

    # then: nothing revoked, on either patient
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert active_credentials() == active


@pytest.mark.parametrize(
    "template",
    ["/api/v1/patients/{patient}/tokens/{token}", "/api/v1/patients/{patient}/devices/{device}"],
    ids=["token", "device"],
)
def test_a_credential_of_a_teammates_patient_is_404_under_the_wrong_patient(
    nurse_client, team, patient, template
):
    # given: both patients are the nurse's, but the id belongs to the other one
    first, second = Target(patient), Target(PatientFactory(care_team=team))
    url = template.format(patient=first.patient.pk, token=second.token.pk, device=second.device.pk)
    active = active_credentials()

    response = nurse_client.delete(url)

    assert response.status_code == 404
    assert active_credentials() == active


def test_another_teams_patients_are_absent_from_the_list(nurse_client, patient, other_patient):
    response = nurse_client.get("/api/v1/patients")

    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [patient.pk]
    assert response.json()["count"] == 1


def test_a_staff_member_of_two_teams_sees_both_teams_patients_once(
    nurse, nurse_client, other_team, patient, other_patient
):
    MembershipFactory(team=other_team, user=nurse, role="physician")

    response = nurse_client.get("/api/v1/patients")

    assert [p["id"] for p in response.json()["results"]] == [patient.pk, other_patient.pk]
    assert response.json()["count"] == 2


def test_another_teams_readings_are_not_shown(nurse_client, patient, other_patient):
    ReadingFactory(patient=other_patient)

    response = nurse_client.get(f"/api/v1/patients/{patient.pk}/readings")

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_staff_lose_access_when_they_leave_the_team(nurse, nurse_client, patient):
    assert nurse_client.get(f"/api/v1/patients/{patient.pk}").status_code == 200

    CareTeamMembership.objects.filter(user=nurse).delete()

    assert nurse_client.get(f"/api/v1/patients/{patient.pk}").status_code == 404
    assert nurse_client.post(f"/api/v1/patients/{patient.pk}/tokens").status_code == 404
    assert PatientAppToken.objects.count() == 0


# --- Superuser ----------------------------------------------------------------------------


def test_a_superuser_sees_every_teams_patients(superuser, staff_client, patient, other_patient):
    client = staff_client(superuser)

    listed = client.get("/api/v1/patients")
    detail = client.get(f"/api/v1/patients/{other_patient.pk}")
    issued = client.post(f"/api/v1/patients/{other_patient.pk}/tokens")

    assert [p["id"] for p in listed.json()["results"]] == [patient.pk, other_patient.pk]
    assert detail.status_code == 200
    assert issued.status_code == 201
    assert PatientAppToken.objects.get().patient == other_patient


# --- Patient app tokens and device keys on staff endpoints -------------------------------


def _credential_client(kind, target):
    if kind == "app token":
        return client_with(issue_app_token(patient=target.patient)[1])
    _, key = register_device(patient=target.patient, kind="cgm", model="G7", serial="CGM-9")
    return client_with(key)


@pytest.mark.parametrize("kind", ["app token", "device key"])
@pytest.mark.parametrize(("method", "template", "body"), STAFF_OPERATIONS, ids=STAFF_OPERATION_IDS)
def test_a_patient_credential_is_403_on_every_staff_endpoint_even_for_its_own_patient(
    team, patient, kind, method, template, body
):
    # given: the patient's own credential, aimed at the patient's own objects
    target = Target(patient)
    client = _credential_client(kind, target)
    if body == "enrolment":
        body = {"external_id": "MRN-9", "name": "Self", "timezone": "UTC", "care_team": team.pk}
    before, active = row_counts(), active_credentials()

    # when
    response = call(client, method, target.url(template), body)

    # then
    assert response.status_code == 403
    assert response.json() == NEEDS_STAFF
    assert row_counts() == before
    assert active_credentials() == active


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [("get", "/api/v1/me", None), ("get", "/api/v1/readings", None)],
    ids=["me", "list-readings"],
)
def test_a_device_key_may_only_post_readings(device_client, patient, method, url, body):
    ReadingFactory(patient=patient)

    response = call(device_client, method, url, body)

    assert response.status_code == 403
    assert response.json() == NEEDS_APP


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("get", "/api/v1/me", NEEDS_APP),
        ("get", "/api/v1/readings", NEEDS_APP),
        ("post", "/api/v1/readings", NEEDS_APP_OR_DEVICE),
    ],
    ids=["me", "list-readings", "post-readings"],
)
def test_a_staff_token_is_403_on_patient_endpoints(nurse_client, patient, method, url, expected):
    response = call(nurse_client, method, url, weight() if method == "post" else None)

    assert response.status_code == 403
    assert response.json() == expected
    assert Reading.objects.count() == 0


# --- Patients and devices reach only their own patient -----------------------------------


def test_a_patient_lists_only_their_own_readings(patient, other_patient, patient_client):
    # given: readings of both patients, the other's newer
    own = ReadingFactory(patient=patient)
    ReadingFactory(patient=other_patient)
    ReadingFactory(patient=other_patient)

    # when: even when asking for the other patient by a query parameter
    response = patient_client.get("/api/v1/readings", {"patient": other_patient.pk})

    # then
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(own.client_id)]


def test_the_other_patient_sees_only_theirs(patient, other_patient, other_patient_client):
    ReadingFactory(patient=patient)
    theirs = ReadingFactory(patient=other_patient)

    response = other_patient_client.get("/api/v1/readings")

    assert [r["id"] for r in response.json()["results"]] == [str(theirs.client_id)]


def test_me_is_always_the_credentials_patient(patient, other_patient, patient_client):
    response = patient_client.get("/api/v1/me", {"id": other_patient.pk})

    assert response.json()["id"] == patient.pk


@pytest.mark.parametrize("credential", ["device", "app"])
def test_a_reading_is_stored_for_the_credentials_patient_whatever_the_body_says(
    patient, other_patient, device_client, patient_client, credential
):
    # given: a batch that names the other patient
    client = device_client if credential == "device" else patient_client
    body = {"patient": other_patient.pk, "patient_id": other_patient.pk, "readings": [weight()]}

    # when
    response = client.post("/api/v1/readings", body, format="json")

    # then
    assert response.status_code == 201
    assert Reading.objects.get().patient == patient
    assert Reading.objects.filter(patient=other_patient).count() == 0


def test_a_reading_item_naming_another_patient_is_rejected_not_redirected(
    patient, other_patient, device_client
):
    item = weight() | {"patient": other_patient.pk}

    response = device_client.post("/api/v1/readings", item, format="json")

    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "id": item["id"],
            "status": "rejected",
            "errors": {"patient": ["Not a field of a weight reading."]},
        }
    ]
    assert Reading.objects.count() == 0


def test_the_same_reading_id_is_independent_per_patient(
    patient, other_patient, patient_client, other_patient_client
):
    # The idempotency key is per patient: another patient's id never makes ours a duplicate.
    reading_id = uuid.uuid4()
    theirs = other_patient_client.post("/api/v1/readings", weight(reading_id), format="json")
    assert theirs.status_code == 201

    response = patient_client.post("/api/v1/readings", weight(reading_id), format="json")

    assert response.status_code == 201
    assert response.json()["results"] == [{"id": str(reading_id), "status": "created"}]
    assert Reading.objects.filter(client_id=reading_id).count() == 2


def test_a_device_key_names_its_own_device_whatever_serial_the_body_gives(
    patient, other_patient, device_client
):
    register_device(patient=other_patient, kind="scale", model="Body+", serial="THEIRS-1")

    response = device_client.post(
        "/api/v1/readings", weight() | {"device": "THEIRS-1"}, format="json"
    )

    assert response.status_code == 201
    stored = Reading.objects.get()
    assert (stored.patient, stored.device) == (patient, device_client.device)


def test_a_staff_token_of_one_user_is_not_anothers(nurse, coordinator, patient):
    # Tokens are bearer secrets tied to their user: the coordinator's token acts as the
    # coordinator.
    _, token = issue_staff_token(user=coordinator)

    response = client_with(token).post(f"/api/v1/patients/{patient.pk}/tokens")

    assert response.status_code == 201
    assert PatientAppToken.objects.get().created_by == coordinator


@pytest.mark.parametrize("credential", ["app", "device"])
def test_logout_by_a_patient_credential_is_refused_and_revokes_nothing(nurse, patient, credential):
    _, staff = issue_staff_token(user=nurse)
    if credential == "app":
        secret = issue_app_token(patient=patient)[1]
    else:
        secret = register_device(patient=patient, kind="scale", serial="SC-9")[1]

    response = client_with(secret).delete("/api/v1/auth/token")

    assert (response.status_code, response.json()) == (403, NEEDS_STAFF)
    assert StaffToken.objects.filter(revoked_at__isnull=False).count() == 0
    assert PatientAppToken.objects.filter(revoked_at__isnull=False).count() == 0
    assert Device.objects.filter(revoked_at__isnull=False).count() == 0
    assert client_with(staff).get("/api/v1/patients").status_code == 200


# --- The matrix covers the whole API ------------------------------------------------------


def served_operations(patterns=None, prefix="/") -> set[tuple[str, str]]:
    """(method, route) for every view in the URLconf, routes with parameters as {}."""
    operations = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            operations |= served_operations(pattern.url_patterns, route)
            continue
        view = getattr(pattern.callback, "cls", None)
        if view is None or not route.startswith("/api/v1/"):
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method):
                operations.add((method, re.sub(r"<[^>]+>", "{}", route)))
    return operations


def test_every_api_operation_is_in_the_isolation_matrix():
    classified = [(method, url) for method, url, _ in STAFF_OPERATIONS]
    classified += [*PATIENT_ENDPOINTS, LOGIN, LOGOUT]

    assert served_operations() == {(m, re.sub(r"\{[^}]+\}", "{}", url)) for m, url in classified}
