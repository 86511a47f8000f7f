"""RPM episodes in the admin: coordinators start and end them, every member of the team sees
them. Starting and ending go through program.episodes (the same checks as the API: the
patient's lock, one open episode, no overlap); the form asks the same checks first so a
wrong field is shown beside it."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.utils import timezone

from alerts.admin_scoping import TeamScopedAdmin
from alerts.teams import MANAGE_EPISODES, can
from program.episodes import (
    EpisodeConflict,
    InvalidEpisode,
    clash_message,
    end_episode,
    end_reasons,
    find_clash,
    start_episode,
    validate_start,
)
from program.models import Episode

MAY_NOT_MANAGE = "Your role in this patient's care team does not manage RPM episodes."


def _reasons(reasons) -> list[str]:
    """A field's reasons as a list: a list field's are by item ({index: [reasons]})."""
    if isinstance(reasons, dict):
        return [f"Item {index + 1}: {reason}" for index, item in reasons.items() for reason in item]
    return list(reasons)


class EpisodeStartForm(forms.ModelForm):
    conditions = forms.CharField(
        help_text='ICD-10-CM codes of the conditions monitored, separated by commas: "I10, E11.9".'
    )

    class Meta:
        model = Episode
        fields = [
            "patient",
            "start",
            "consent_at",
            "consent_method",
            "billing_practitioner",
            "conditions",
            "devices",
        ]
        help_texts = {
            "start": "The patient's local day monitoring begins (today or earlier).",
            "consent_at": "When the patient consented: by the start day.",
            "billing_practitioner": "An active physician of the patient's care team.",
            "devices": "The patient's own active devices supplied for the episode.",
        }

    user = None  # set by EpisodeAdmin.get_form

    def clean_conditions(self) -> list[str]:
        return [code for code in self.cleaned_data["conditions"].split(",") if code.strip()]

    def clean(self):
        data = super().clean()
        patient = data.get("patient")
        if patient is None or self.errors:
            return data
        if not can(self.user, MANAGE_EPISODES, team_id=patient.care_team_id):
            self.add_error("patient", MAY_NOT_MANAGE)
            return data
        practitioner = data.get("billing_practitioner")
        try:
            validate_start(
                patient=patient,
                start=data["start"],
                consent_at=data.get("consent_at"),
                consent_method=data.get("consent_method", ""),
                billing_practitioner=practitioner.get_username() if practitioner else "",
                conditions=data["conditions"],
                device_ids=[device.pk for device in data.get("devices", [])],
                now=timezone.now(),
            )
        except InvalidEpisode as error:
            for field, reasons in error.errors.items():
                self.add_error(field, _reasons(reasons))
            return data
        clash = find_clash(patient=patient, start=data["start"])
        if clash is not None:
            self.add_error("start", clash_message(clash))
        return data

    def _get_validation_exclusions(self):
        # The model's constraint on one open episode per patient is the clash above, said
        # in words; the database holds it again when start_episode writes.
        return super()._get_validation_exclusions() | {"patient"}


class EpisodeEndForm(forms.ModelForm):
    class Meta:
        model = Episode
        fields = ["end"]
        help_texts = {"end": "The last day of the episode (the patient's local day, inclusive)."}

    def clean_end(self):
        end = self.cleaned_data.get("end")
        if end is None:
            raise forms.ValidationError("The day the episode ends is required to end it.")
        reasons = end_reasons(episode=self.instance, end=end)
        if reasons:
            raise forms.ValidationError(reasons)
        return end


@admin.register(Episode)
class EpisodeAdmin(TeamScopedAdmin):
    """Scoped and audited by TeamScopedAdmin; adding starts an episode (start_episode),
    changing an open one ends it (end_episode): nothing else of an episode is changed."""

    list_display = [
        "id",
        "patient",
        "start",
        "end",
        "billing_practitioner",
        "consent_method",
        "condition_list",
    ]
    list_select_related = ["patient", "billing_practitioner"]
    list_filter = ["consent_method", "patient__care_team"]
    search_fields = ["patient__external_id", "patient__name"]
    raw_id_fields = ["patient"]
    ordering = ["-start", "-id"]
    readonly_fields = ["condition_list", "created_by", "created_at", "ended_by"]
    all_fields = [
        "patient",
        "start",
        "end",
        "consent_at",
        "consent_method",
        "billing_practitioner",
        "condition_list",
        "devices",
        "created_by",
        "created_at",
        "ended_by",
    ]

    @admin.display(description="Conditions")
    def condition_list(self, episode: Episode) -> str:
        return ", ".join(episode.conditions) or "—"

    def has_delete_permission(self, request, obj=None):
        # Episodes are ended, not deleted: the ledger's lines rest on them.
        return False

    def has_change_permission(self, request, obj=None):
        # Ending is the only change; an ended episode is shown, not a form.
        if obj is not None and obj.end is not None:
            return False
        return super().has_change_permission(request, obj)

    def get_fields(self, request, obj=None):
        return EpisodeStartForm.Meta.fields if obj is None else self.all_fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        may_end = self.has_change_permission(request, obj)
        return [name for name in self.all_fields if not (may_end and name == "end")]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = EpisodeStartForm if obj is None else EpisodeEndForm
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form = type(form.__name__, (form,), {"user": request.user})
        return form

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            if "end" in form.changed_data:
                end_episode(episode=obj, end=data["end"], user=request.user)
            return
        episode = start_episode(
            patient=data["patient"],
            start=data["start"],
            consent_at=data["consent_at"],
            consent_method=data["consent_method"],
            billing_practitioner=data["billing_practitioner"].get_username(),
            conditions=data["conditions"],
            devices=[device.pk for device in data["devices"]],
            user=request.user,
        )
        # The admin logs the addition and redirects with its own instance: make it the
        # episode started.
        obj.pk, obj.created_at = episode.pk, episode.created_at
        obj._state.adding, obj._state.db = False, episode._state.db

    def save_related(self, request, form, formsets, change):
        pass  # the devices were set by start_episode; an ended episode's stay as they were

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (EpisodeConflict, InvalidEpisode) as error:
            # Another change won the patient's lock since the form was checked.
            detail = str(error) if isinstance(error, EpisodeConflict) else "The episode changed."
            self.message_user(request, detail, messages.ERROR)
            return redirect(request.get_full_path())
