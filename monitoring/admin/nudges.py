"""Nudge message variants (editable data) and the nudges sent (read-only)."""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery, Sum
from django.utils.html import format_html

from alerts.admin_scoping import TeamScopedAdmin
from config.admin_lists import BoundedChangeListMixin
from monitoring import nudges
from monitoring.models import (
    Nudge,
    NudgePurpose,
    NudgeVariant,
    VariantPosterior,
)

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).


# --- Nudges: message variants and what was sent ---------------------------------------------


class NudgeVariantForm(forms.ModelForm):
    """A message as data: its purposes from NudgePurpose, and only the placeholders
    monitoring.nudges fills in ({what} and {time} for slots, {streak} for streaks, {days},
    {needed} and {left} for keep_sending)."""

    class Meta:
        model = NudgeVariant
        fields = ["key", "kind", "purposes", "language", "text", "active"]
        help_texts = {
            "purposes": 'e.g. ["measurement_due", "dose_due"]; one of: '
            + ", ".join(NudgePurpose.values),
            "language": 'A language tag, e.g. "en" or "de"; patients without a variant in '
            "their language get English.",
            "text": "Placeholders: {what} (e.g. “your weight check”), {time} (the slot's "
            "local time), {streak} (days, streak messages only); keep_sending messages only: "
            "{days} (with device data so far this period), {needed} (for a full period), "
            "{left} (days left, today included).",
        }

    def clean_purposes(self):
        purposes = self.cleaned_data.get("purposes")
        if (
            not isinstance(purposes, list)
            or not purposes
            or any(purpose not in NudgePurpose.values for purpose in purposes)
        ):
            raise ValidationError(f"A non-empty list of: {', '.join(NudgePurpose.values)}.")
        return sorted(set(purposes), key=purposes.index)

    def clean_language(self):
        language = (self.cleaned_data.get("language") or "").strip().lower()
        if not language:
            raise ValidationError("A language tag, e.g. en or de.")
        return language

    def clean(self):
        cleaned = super().clean()
        text, purposes = cleaned.get("text"), cleaned.get("purposes")
        if text is None or purposes is None:
            return cleaned
        try:
            used = nudges.placeholders_of(text)
        except ValueError:
            self.add_error("text", "Unbalanced braces: write placeholders as {what}.")
            return cleaned
        allowed = nudges.placeholders_for(purposes)
        if NudgePurpose.STREAK in purposes and len(purposes) > 1:
            self.add_error("purposes", "A streak message serves streaks only.")
        elif NudgePurpose.KEEP_SENDING in purposes and len(purposes) > 1:
            self.add_error("purposes", "A keep_sending message serves keep_sending only.")
        elif used - allowed:
            unknown = ", ".join("{" + name + "}" for name in sorted(used - allowed))
            shown = ", ".join("{" + name + "}" for name in sorted(allowed))
            self.add_error("text", f"Not filled in for these purposes: {unknown}; use {shown}.")
        return cleaned


@admin.register(NudgeVariant)
class NudgeVariantAdmin(admin.ModelAdmin):
    """Message variants are shared by every patient; each patient's record with a variant
    (VariantPosterior) is what the policy learns from, so variants are deactivated, not
    deleted. The outcome columns sum every patient's record."""

    form = NudgeVariantForm
    list_display = ["key", "kind", "language", "purposes", "active", "outcomes", "acted_share"]
    list_filter = ["kind", "language", "active"]
    search_fields = ["key", "text"]

    def get_queryset(self, request):
        totals = (
            VariantPosterior.objects.filter(variant=OuterRef("pk"))
            .values("variant")
            .annotate(total=Sum("successes"), failed=Sum("failures"))
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                successes=Subquery(totals.values("total")),
                failures=Subquery(totals.values("failed")),
            )
        )

    @admin.display(description="Outcomes")
    def outcomes(self, variant):
        return (variant.successes or 0) + (variant.failures or 0)

    @admin.display(description="Acted")
    def acted_share(self, variant):
        total = self.outcomes(variant)
        return f"{100 * (variant.successes or 0) / total:.0f} %" if total else "–"

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Nudge)
class NudgeAdmin(BoundedChangeListMixin, TeamScopedAdmin):
    """Read-only: nudges are written by monitoring.nudges, with the decision that chose
    their variant, and settled when their outcome window closes."""

    list_display = [
        "id",
        "patient",
        "purpose",
        "variant",
        "channel",
        "status",
        "created_at",
        "acted",
    ]
    list_filter = ["purpose", "status", "channel", "acted"]
    # A growing table (config/admin_lists.py): newest first by the primary key, no
    # count, no date hierarchy, no sorting by a column no index serves.
    ordering = ["-id"]
    sortable_by = ()
    search_fields = ["patient__external_id"]
    list_select_related = ["patient", "variant"]
    exclude = ["decision"]
    readonly_fields = ["decision_log"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Nudge._meta.fields if f.name != "decision"] + ["decision_log"]

    @admin.display(description="Decision")
    def decision_log(self, nudge):
        return format_html("<pre>{}</pre>", json.dumps(nudge.decision, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
