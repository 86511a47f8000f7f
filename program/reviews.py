"""Reviews, notes and the call log of a patient (issue 13.3).

A review is a care-team member's "reviewed" sign-off on the patient's data; the panel shows
the latest (who, when). A note is free text on the patient's record; a call is a note with
its outcome (reached the patient, left a message, no answer). Who may do either is asked by
the caller (REVIEW_PATIENTS, WRITE_NOTES: alerts.teams.can); these functions keep the rows
consistent and say what they write.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils import timezone

from monitoring.models import Patient
from program.models import CallOutcome, NoteKind, PatientNote, Review

NOTE_LENGTH = 4000
# The patient page lists this many notes and calls, newest first: a display count.
RECENT_NOTES = 50


def sign_off_review(
    *, patient: Patient, user, note: str = "", now: datetime | None = None
) -> Review:
    """`user` reviewed the patient's data at `now`, optionally saying what they saw.
    Writes: Review."""
    note = note.strip()
    if len(note) > NOTE_LENGTH:
        raise ValidationError({"note": [f"At most {NOTE_LENGTH} characters."]})
    return Review.objects.create(
        patient=patient, reviewer=user, at=now or timezone.now(), note=note
    )


def last_review(patient: Patient) -> Review | None:
    """The patient's latest review with its reviewer (one query on review_patient_at)."""
    return (
        Review.objects.filter(patient=patient).select_related("reviewer").order_by("-at", "-id")
    ).first()


def write_note(
    *,
    patient: Patient,
    user,
    text: str,
    kind: str = NoteKind.NOTE,
    call_outcome: str = "",
    now: datetime | None = None,
) -> PatientNote:
    """A note on the patient's record, or a call with its outcome (the text then optional).
    Raises ValidationError with a reason per field: a note without text, a call without an
    outcome, an outcome on a note. Writes: PatientNote."""
    text = text.strip()
    errors: dict[str, list[str]] = {}
    if kind not in NoteKind.values:
        errors["kind"] = [f"One of {', '.join(NoteKind.values)}."]
    elif kind == NoteKind.CALL and call_outcome not in CallOutcome.values:
        errors["call_outcome"] = [f"Say how the call went: {', '.join(CallOutcome.values)}."]
    elif kind == NoteKind.NOTE and call_outcome:
        errors["call_outcome"] = ["Only a call has an outcome."]
    if kind == NoteKind.NOTE and not text:
        errors["text"] = ["Write the note."]
    if len(text) > NOTE_LENGTH:
        errors["text"] = [f"At most {NOTE_LENGTH} characters."]
    if errors:
        raise ValidationError(errors)
    return PatientNote.objects.create(
        patient=patient,
        author=user,
        at=now or timezone.now(),
        kind=kind,
        call_outcome=call_outcome,
        text=text,
    )


def recent_notes(patient: Patient, *, limit: int = RECENT_NOTES) -> list[PatientNote]:
    """The patient's notes and calls, newest first, with their authors (one query on
    note_patient_at)."""
    return list(
        PatientNote.objects.filter(patient=patient)
        .select_related("author")
        .order_by("-at", "-id")[:limit]
    )
