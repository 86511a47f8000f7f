"""The "reviewed" sign-off (program.reviews.sign_off_review) and the patient page's "Mark
reviewed" button with the last review (who, when), audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from monitoring.models import AuditEvent
from program.models import Review
from program.reviews import last_review, sign_off_review
from tests.program.pages import logged_in, patient_page

# Monday 9 March 2026, 12:00 in New York (EDT), where `patient` lives.
NOW = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def sign_off_url(patient) -> str:
    return reverse("admin:monitoring_patient_sign_off_review", args=[patient.pk])


def reviews(patient) -> list[tuple]:
    return list(
        Review.objects.filter(patient=patient)
        .order_by("id")
        .values_list("reviewer__username", "at", "note")
    )


def changes(patient) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(patient=patient)
        .exclude(action="view")
        .order_by("id")
        .values_list("actor", "action", "model", "object_id", "fields", "surface")
    )


# --- The service --------------------------------------------------------------------------


def test_a_sign_off_records_who_when_and_the_note(patient, nurse):
    review = sign_off_review(patient=patient, user=nurse, note="  BP at target.  ", now=NOW)

    assert reviews(patient) == [("nurse", NOW, "BP at target.")]
    assert last_review(patient) == review


def test_the_last_review_is_the_latest_by_time_not_by_insertion(patient, nurse, physician):
    later = sign_off_review(patient=patient, user=physician, now=NOW)
    sign_off_review(patient=patient, user=nurse, now=NOW - timedelta(hours=3))

    assert last_review(patient) == later
    assert last_review(patient).reviewer == physician


def test_no_review_yet(patient):
    assert last_review(patient) is None


def test_a_note_over_4000_characters_is_refused_and_nothing_written(patient, nurse):
    with pytest.raises(ValidationError) as refused:
        sign_off_review(patient=patient, user=nurse, note="x" * 4001, now=NOW)

    assert refused.value.message_dict == {"note": ["At most 4000 characters."]}
    assert reviews(patient) == []


# --- The patient page ---------------------------------------------------------------------


def test_the_page_says_not_reviewed_yet_and_offers_the_button(patient, nurse):
    html = logged_in(nurse).get(patient_page(patient)).content.decode()

    assert "Not reviewed yet." in html
    assert 'value="Mark reviewed"' in html
    assert f'action="{sign_off_url(patient)}"' in html


def test_mark_reviewed_signs_off_audits_and_shows_who_and_when(patient, nurse, physician):
    # given: an earlier review by the physician
    sign_off_review(patient=patient, user=physician, now=NOW - timedelta(days=2))
    client = logged_in(nurse)

    # when
    response = client.post(sign_off_url(patient), {"note": "Weights stable."})

    # then
    assert response.status_code == 302
    assert response.url == f"{patient_page(patient)}#reviews"
    assert reviews(patient)[-1] == ("nurse", NOW, "Weights stable.")
    review = Review.objects.get(reviewer=nurse)
    assert changes(patient) == [("nurse", "create", "program.review", str(review.pk), [], "admin")]
    shown = client.get(patient_page(patient))
    assert shown.context["reviews_and_notes"].last_review == review
    html = shown.content.decode()
    # In the patient's zone (New York, EDT).
    assert "Last reviewed 9 Mar 2026, 12:00 EDT by <strong>nurse</strong>" in html
    assert "Weights stable." in html


@pytest.mark.parametrize("note", ["", "   "])
def test_mark_reviewed_without_a_note_is_a_sign_off_too(patient, nurse, note):
    logged_in(nurse).post(sign_off_url(patient), {"note": note})

    assert reviews(patient) == [("nurse", NOW, "")]


def test_another_team_gets_404_and_nothing_is_written(patient, outsider):
    response = logged_in(outsider).post(sign_off_url(patient), {"note": "x"})

    assert response.status_code == 404
    assert reviews(patient) == []
    assert changes(patient) == []


def test_a_user_without_the_capability_gets_403(patient, team, nurse):
    # given: the review permission taken from the nurse role's group (a clinic's choice)
    from django.contrib.auth.models import Group, Permission

    Group.objects.get(name="nurse").permissions.remove(
        Permission.objects.get(codename="add_review")
    )
    client = logged_in(nurse)

    # when
    response = client.post(sign_off_url(patient), {"note": "x"})

    # then
    assert response.status_code == 403
    assert reviews(patient) == []
    assert changes(patient) == []
    assert 'value="Mark reviewed"' not in client.get(patient_page(patient)).content.decode()


def test_mark_reviewed_answers_only_post(patient, nurse):
    response = logged_in(nurse).get(sign_off_url(patient))

    assert response.status_code == 405
    assert reviews(patient) == []


def test_a_note_over_4000_characters_from_the_page_writes_nothing(patient, nurse):
    client = logged_in(nurse)

    response = client.post(sign_off_url(patient), {"note": "x" * 4001})

    assert response.status_code == 302
    assert reviews(patient) == []
    assert changes(patient) == []
    messages = [str(m) for m in client.get(response.url).context["messages"]]
    assert messages == ["Ensure this value has at most 4000 characters (it has 4001)."]
