"""POST /api/v1/patients/{id}/reviews (docs/api.md, "The RPM program"): a team member's
"reviewed" sign-off → 201 with the review; audited; refusals write nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitoring.models import AuditEvent
from program.models import Review

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen_clock(time_machine):
    time_machine.move_to(NOW, tick=False)


def url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/reviews"


def audit(patient) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(patient_id=patient.pk)
        .order_by("id")
        .values_list("actor", "action", "model", "object_id", "surface")
    )


@pytest.mark.parametrize("persona", ["nurse", "physician", "coordinator"])
def test_every_member_of_the_team_signs_off(patient, staff_client, request, persona):
    user = request.getfixturevalue(persona)

    response = staff_client(user).post(url(patient), {"note": "Reviewed the week."}, format="json")

    assert response.status_code == 201
    review = Review.objects.get()
    assert response.json() == {
        "id": review.pk,
        "patient": patient.pk,
        "reviewer": persona,
        "at": "2026-03-01T12:00:00+00:00",
        "note": "Reviewed the week.",
    }
    assert (review.reviewer, review.at) == (user, NOW)
    assert audit(patient) == [(persona, "create", "program.review", str(review.pk), "api")]


def test_the_note_is_optional(patient, nurse_client):
    response = nurse_client.post(url(patient), {}, format="json")

    assert response.status_code == 201
    assert response.json()["note"] == ""
    assert Review.objects.get().note == ""


def test_a_note_over_4000_characters_is_a_400_by_field(patient, nurse_client):
    response = nurse_client.post(url(patient), {"note": "x" * 4001}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"note": ["Ensure this field has no more than 4000 characters."]},
    }
    assert not Review.objects.exists()
    assert audit(patient) == []


def test_another_teams_patient_is_a_404_recorded_as_refused(patient, outsider_client):
    response = outsider_client.post(url(patient), {"note": "x"}, format="json")

    assert response.status_code == 404
    assert not Review.objects.exists()
    assert audit(patient) == [("outsider", "refused", "program.review", "", "api")]


def test_a_missing_patient_is_a_404(nurse_client, patient):
    response = nurse_client.post("/api/v1/patients/999999/reviews", {}, format="json")

    assert response.status_code == 404
    assert not Review.objects.exists()


def test_without_the_capability_it_is_a_403_by_name(patient, nurse, nurse_client):
    from django.contrib.auth.models import Group, Permission

    Group.objects.get(name="nurse").permissions.remove(
        Permission.objects.get(codename="add_review")
    )

    response = nurse_client.post(url(patient), {"note": "x"}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only members of the patient's care team may sign off a review."
    }
    assert not Review.objects.exists()
    assert audit(patient) == [("nurse", "refused", "program.review", "", "api")]


def test_a_patient_token_is_refused(patient, patient_client):
    response = patient_client.post(url(patient), {"note": "x"}, format="json")

    assert response.status_code == 403
    assert not Review.objects.exists()


def test_anonymous_is_a_401(patient, anonymous_client):
    response = anonymous_client.post(url(patient), {"note": "x"}, format="json")

    assert response.status_code == 401
    assert not Review.objects.exists()
