"""The patient page's reviews, notes and call log (issue 13.3): a "Mark reviewed" button
with the last review (who, when), and the notes and calls newest first with the form that
writes one. PatientAdmin (monitoring/admin/patients.py) mixes PatientReviewsAdmin in; the
writes go through program.reviews and are audited here."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_POST

from alerts.teams import REVIEW_PATIENTS, WRITE_NOTES, can
from monitoring.audit import record
from monitoring.display import format_instant
from monitoring.models import AuditAction, Patient
from program.models import CallOutcome, NoteKind, PatientNote, Review
from program.reviews import (
    NOTE_LENGTH,
    RECENT_NOTES,
    last_review,
    recent_notes,
    sign_off_review,
    write_note,
)


class ReviewForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
        help_text="Optional: what you saw or decided.",
    )


class PatientNoteForm(forms.Form):
    kind = forms.ChoiceField(choices=NoteKind.choices, initial=NoteKind.NOTE)
    call_outcome = forms.ChoiceField(
        choices=[("", "—"), *CallOutcome.choices],
        required=False,
        help_text="For a call: how it went.",
    )
    text = forms.CharField(
        required=False,
        max_length=NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


class ReviewsAndNotes:
    """What the patient page's reviews-and-notes section shows: two queries, built when the
    page renders."""

    recent_count = RECENT_NOTES

    def __init__(self, *, request, patient: Patient):
        self.patient = patient
        self.zone = patient.zone
        self.may_review = can(request.user, REVIEW_PATIENTS, team_id=patient.care_team_id)
        self.may_write_notes = can(request.user, WRITE_NOTES, team_id=patient.care_team_id)
        self.review_form = ReviewForm()
        self.note_form = PatientNoteForm()

    @cached_property
    def last_review(self) -> Review | None:
        return last_review(self.patient)

    @cached_property
    def last_review_at(self) -> str:
        return format_instant(self.last_review.at, self.zone) if self.last_review else ""

    @cached_property
    def notes(self) -> list[tuple[str, PatientNote]]:
        """(local time, note), newest first."""
        return [(format_instant(note.at, self.zone), note) for note in recent_notes(self.patient)]


def _patient_url(patient: Patient, anchor: str) -> str:
    return f"{reverse('admin:monitoring_patient_change', args=[patient.pk])}#{anchor}"


class PatientReviewsAdmin:
    """For PatientAdmin (before TeamScopedAdmin in its bases): the section's context and its
    two POST views. Another team's patient is a 404 (visible_patient); a role without the
    capability a 403."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:patient_id>/reviews/sign-off/",
                view(require_POST(self.sign_off_review_view)),
                name="monitoring_patient_sign_off_review",
            ),
            path(
                "<int:patient_id>/notes/write/",
                view(require_POST(self.write_note_view)),
                name="monitoring_patient_write_note",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["reviews_and_notes"] = ReviewsAndNotes(request=request, patient=obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _program_patient(self, request, patient_id: int, capability: str) -> Patient:
        patient = self.visible_patient(request, patient_id)
        if not can(request.user, capability, team_id=patient.care_team_id):
            raise PermissionDenied
        return patient

    def sign_off_review_view(self, request, patient_id: int):
        patient = self._program_patient(request, patient_id, REVIEW_PATIENTS)
        form = ReviewForm(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
            return redirect(_patient_url(patient, "reviews"))
        review = sign_off_review(
            patient=patient, user=request.user, note=form.cleaned_data["note"], now=timezone.now()
        )
        record(
            user=request.user,
            patient=patient,
            action=AuditAction.CREATE,
            what=review,
            request=request,
        )
        messages.success(request, "Marked reviewed.")
        return redirect(_patient_url(patient, "reviews"))

    def write_note_view(self, request, patient_id: int):
        patient = self._program_patient(request, patient_id, WRITE_NOTES)
        form = PatientNoteForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError(form.errors)
            note = write_note(patient=patient, user=request.user, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect(_patient_url(patient, "notes"))
        record(
            user=request.user,
            patient=patient,
            action=AuditAction.CREATE,
            what=note,
            request=request,
        )
        messages.success(request, "Call logged." if note.kind == NoteKind.CALL else "Note added.")
        return redirect(_patient_url(patient, "notes"))
