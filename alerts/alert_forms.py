"""The alert page's forms and the queue's resolve form: what a person writes or picks when
they act on an alert (alerts/admin.py calls alerts.lifecycle with it)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from alerts.models import PERSON_REASONS, Alert, CareTeamMembership

NOTE_LENGTH = 4000


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
        help_text="Optional; kept in the alert's timeline.",
    )


class ResolveForm(forms.Form):
    """A note and a reason, both required: the reasons feed the rule's statistics."""

    reason = forms.ChoiceField(
        choices=PERSON_REASONS,
        widget=forms.RadioSelect,
        error_messages={"required": "Pick why the alert is resolved."},
        help_text="Counted in the rule's statistics (how often it is a false alarm).",
    )
    note = forms.CharField(
        max_length=NOTE_LENGTH,
        error_messages={"required": "Write a note to resolve the alert."},
        widget=forms.Textarea(attrs={"rows": 3, "cols": 50}),
        help_text="What was done or decided; kept in the alert's timeline.",
    )


class NoteForm(forms.Form):
    note = forms.CharField(
        max_length=NOTE_LENGTH,
        error_messages={"required": "Write the note."},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
        help_text="Kept in the alert's timeline; the alert's state does not change.",
    )


def assignable_users(alert: Alert):
    """The users an alert may be given to: the active nurses and physicians of the patient's
    team (alerts.lifecycle.may_be_assigned asks the same), by name."""
    members = CareTeamMembership.objects.on_call().filter(team_id=alert.patient.care_team_id)
    return get_user_model().objects.filter(pk__in=members.values("user_id")).order_by("username")


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        empty_label=None,
        error_messages={
            "required": "Pick whom to assign the alert to.",
            "invalid_choice": "Only an active nurse or physician of the patient's team may "
            "be assigned the alert.",
        },
    )

    def __init__(self, *args, alert: Alert, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = assignable_users(alert)
        self.fields["assignee"].label_from_instance = lambda user: user.get_username()
