"""Nudge message variants (editable data) and the nudges sent (read-only)."""

import json
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery, Sum
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from alerts.admin_scoping import TeamScopedAdmin
from config.admin_lists import BoundedChangeListMixin
from monitoring import nudges
from monitoring.models import (
    Nudge,
    NudgePurpose,
    NudgeVariant,
    VariantPosterior,
)
from monitoring.nudges.texts import message_language

# Scoped to the user's teams, permissions through their role there, audited: every admin
# of patient data here inherits it (alerts/admin_scoping.py).


# --- Nudges: message variants and what was sent ---------------------------------------------


# --- A message and its translations ---------------------------------------------------------
# Each language of a message is its own variant (its own row, its own record with each patient:
# the policy chooses among the variants in the patient's language), and its key names the
# language last: plain-due-en, plain-due-de. The rest of the key ("plain-due") is the message;
# the admin lists a message's languages side by side and adds a missing one from the others.


def language_name(tag: str) -> str:
    """ "German (de)"; a tag Vigil has no catalogue for as written."""
    names = dict(settings.LANGUAGES)
    code = message_language(tag)
    return f"{names[code]} ({tag})" if tag.split("-")[0] == code else tag


def message_of(key: str, language: str) -> str:
    """The message a variant's key names: the key without its language ("plain-due")."""
    suffix = f"-{language}"
    return key[: -len(suffix)] if key.endswith(suffix) and len(key) > len(suffix) else key


def translations_of(
    variant: NudgeVariant, variants: list[NudgeVariant] | None = None
) -> list[NudgeVariant]:
    """The message's variants in the other languages, by language; from `variants` when
    given (a list page reads every variant once), else from the database."""
    message = message_of(variant.key, variant.language)
    if variants is None:
        variants = list(NudgeVariant.objects.filter(key__startswith=f"{message}-"))
    return sorted(
        (
            other
            for other in variants
            if other.pk != variant.pk and message_of(other.key, other.language) == message
        ),
        key=lambda other: other.language,
    )


def add_translation_url(variant: NudgeVariant, language: str) -> str:
    query = urlencode({"translation_of": variant.pk, "language": language})
    return f"{reverse('admin:monitoring_nudgevariant_add')}?{query}"


def missing_languages(variant: NudgeVariant, translations: list[NudgeVariant]) -> list[str]:
    """The languages of settings.LANGUAGES the message has no variant in."""
    have = {message_language(v.language) for v in [variant, *translations]}
    return [code for code, _ in settings.LANGUAGES if code not in have]


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
            "their language get English. Vigil's own words in the message ({what}, the "
            "notification's title) exist in: "
            + ", ".join(f"{name} ({code})" for code, name in settings.LANGUAGES)
            + ".",
            "key": "The message's name and its language last, e.g. plain-due-de: a message's "
            "translations share the rest of the key.",
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
        self._check_key_names_language(cleaned)
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
        elif "what" in used and not self._has_catalogue(cleaned.get("language")):
            # {what} would be filled in English inside a sentence in another language.
            self.add_error(
                "text",
                "Vigil has no words for {what} in this language (config/locale): write the "
                "text without {what}, or add the language's catalogue first.",
            )
        return cleaned

    @staticmethod
    def _has_catalogue(language: str | None) -> bool:
        return bool(language) and language.split("-")[0] == message_language(language)

    def _check_key_names_language(self, cleaned: dict) -> None:
        """A new key, or a changed key or language, ends in the language: how a message's
        translations find each other (keys from before this rule stay as they are)."""
        key, language = cleaned.get("key"), cleaned.get("language")
        if not key or not language or not ({"key", "language"} & set(self.changed_data)):
            return
        if message_of(key, language) == key:
            self.add_error(
                "key", f"End the key with its language, e.g. {key.rsplit('-', 1)[0]}-{language}."
            )


@admin.register(NudgeVariant)
class NudgeVariantAdmin(admin.ModelAdmin):
    """Message variants are shared by every patient; each patient's record with a variant
    (VariantPosterior) is what the policy learns from, so variants are deactivated, not
    deleted. The outcome columns sum every patient's record."""

    form = NudgeVariantForm
    list_display = [
        "key",
        "kind",
        "language_column",
        "translations_column",
        "purposes_column",
        "active",
        "acted_share",
    ]
    list_filter = ["kind", "language", "active"]
    search_fields = ["key", "text"]

    # --- Translations: each language of a message side by side, a missing one a click away

    @admin.display(description="Language", ordering="language")
    def language_column(self, variant):
        return language_name(variant.language)

    @admin.display(description="Other languages")
    def translations_column(self, variant, variants: list[NudgeVariant] | None = None):
        """Links to the message in its other languages, and "add German" for a missing one."""
        translations = translations_of(variant, variants)
        links = [
            (reverse("admin:monitoring_nudgevariant_change", args=[other.pk]), other.language)
            for other in translations
        ]
        adds = [
            (add_translation_url(variant, code), f"add {dict(settings.LANGUAGES)[code]}")
            for code in missing_languages(variant, translations)
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links + adds) or "–"

    def get_list_display(self, request):
        # Every variant read once for the whole list (a few dozen rows), not once per row.
        variants = list(NudgeVariant.objects.only("pk", "key", "language"))

        @admin.display(description="Other languages")
        def translations_column(variant):
            return self.translations_column(variant, variants)

        return [
            translations_column if name == "translations_column" else name
            for name in super().get_list_display(request)
        ]

    @admin.display(description="Translations")
    def translations(self, variant):
        """On a variant's page: the message in each other language, its text and a link, and
        an "Add German version" link for each language it lacks."""
        translations = translations_of(variant)
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a>: “{}”{}</li>',
            (
                (
                    reverse("admin:monitoring_nudgevariant_change", args=[other.pk]),
                    language_name(other.language),
                    other.text,
                    "" if other.active else " (inactive)",
                )
                for other in translations
            ),
        )
        adds = format_html_join(
            "",
            '<li><a class="addlink" href="{}">Add {} version</a></li>',
            (
                (add_translation_url(variant, code), dict(settings.LANGUAGES)[code])
                for code in missing_languages(variant, translations)
            ),
        )
        return format_html('<ul class="variant-translations">{}{}</ul>', rows, adds)

    def get_readonly_fields(self, request, obj=None):
        return ["translations"] if obj is not None else []

    def _translating(self, request) -> NudgeVariant | None:
        """The variant an "Add … version" link translates (?translation_of=<id>)."""
        source = request.GET.get("translation_of", "")
        return NudgeVariant.objects.filter(pk=source).first() if source.isdigit() else None

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        source = self._translating(request)
        if source is None:
            return initial
        language = message_language(request.GET.get("language", ""))
        return {
            "key": f"{message_of(source.key, source.language)}-{language}",
            "kind": source.kind,
            "purposes": source.purposes,
            "language": language,
            "active": True,
        }

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        source = self._translating(request) if obj is None else None
        if source is not None:
            # The text to translate, where the translation is written.
            text = form.base_fields["text"]
            text.help_text = format_html(
                "Translate from {}: “{}”<br>{}",
                language_name(source.language),
                source.text,
                NudgeVariantForm._meta.help_texts["text"],
            )
        return form

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
        """ "40 % of 25": how often patients acted after it, of its settled outcomes."""
        total = self.outcomes(variant)
        return f"{100 * (variant.successes or 0) / total:.0f} % of {total}" if total else "–"

    @admin.display(description="Purposes")
    def purposes_column(self, variant):
        # Words that wrap, not a JSON list that widens the table.
        return ", ".join(
            NudgePurpose(p).label if p in NudgePurpose.values else p for p in variant.purposes
        )

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
