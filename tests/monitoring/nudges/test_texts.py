"""Nudge variants as data (monitoring/nudges/texts.py, the variant admin). Time is frozen."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

import importlib
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from monitoring.admin import NudgeVariantForm
from monitoring.models import Metric, NudgePurpose, NudgeVariant, VariantKind
from monitoring.nudges import placeholders_of
from monitoring.nudges.texts import render
from tests.factories import MeasurementScheduleFactory, MedicationPlanFactory, NudgeVariantFactory
from tests.monitoring.nudges.helpers import (  # noqa: F401
    NOW,
    clock,
    dose,
    patient,
    remind,
    weighing,
)

# --- Variants as data ---------------------------------------------------------------------


# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


# The migrations that seed default variants (each inserts its own once).
SEEDING_MIGRATIONS = ["0007_default_nudge_variants", "0019_keep_sending_nudges"]


def test_the_default_variants_cover_every_kind_in_english_and_german():
    rows = [
        row
        for name in SEEDING_MIGRATIONS
        for row in importlib.import_module(f"monitoring.migrations.{name}").DEFAULT_VARIANTS
    ]

    kinds = {(kind, language) for _, kind, _, language, _ in rows}
    assert kinds == {(kind, language) for kind in VariantKind.values for language in ("en", "de")}
    assert len({key for key, *_ in rows}) == len(rows)
    for key, _, purposes, _, text in rows:
        if purposes == ["streak"]:
            allowed = {"streak"}
        elif purposes == ["keep_sending"]:
            allowed = {"days", "needed", "left"}
        else:
            allowed = {"what", "time"}
        assert placeholders_of(text) <= allowed, key
        assert set(purposes) <= set(NudgePurpose.values), key
    # every purpose has a message in both languages
    for purpose in NudgePurpose.values:
        for language in ("en", "de"):
            assert any(purpose in p and lang == language for _, _, p, lang, _ in rows)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("purposes", "text", "errors"),
    [
        (["measurement_due"], "Reminder: {what} at {time}.", set()),
        (["streak"], "{streak} days!", set()),
        (["measurement_due"], "{streak} days!", {"text"}),
        (["streak"], "Reminder: {what}.", {"text"}),
        (["measurement_due"], "Reminder: {waht}.", {"text"}),
        (["measurement_due"], "Reminder: {what.upper}.", {"text"}),
        (["measurement_due"], "Reminder: {what", {"text"}),
        (["measurement_due", "streak"], "Well done!", {"purposes"}),
        (["keep_sending"], "{days} of {needed} days, days left: {left}.", set()),
        (["keep_sending"], "Reminder: {what} at {time}.", {"text"}),
        (["measurement_due"], "{days} of {needed} days.", {"text"}),
        (["streak"], "{streak} days, {days} of {needed}.", {"text"}),
        (["keep_sending", "measurement_due"], "A reading today helps.", {"purposes"}),
        (["measurement_later"], "Reminder.", {"purposes"}),
        ([], "Reminder.", {"purposes"}),
    ],
)
def test_the_variant_admin_accepts_only_texts_monitoring_can_fill_in(purposes, text, errors):
    form = NudgeVariantForm(
        data={
            "key": "reminder-test-en",
            "kind": "plain",
            "purposes": json.dumps(purposes),
            "language": "EN",
            "text": text,
            "active": True,
        }
    )

    assert set(form.errors) == errors
    if not errors:
        assert form.cleaned_data["language"] == "en"


@pytest.mark.django_db
def test_the_nudge_and_variant_admin_pages_show(client, superuser, patient, variants):
    nudge = remind(patient, weighing(patient))
    client.force_login(superuser)

    for url in [
        "/admin/monitoring/nudgevariant/",
        f"/admin/monitoring/nudgevariant/{variants['plain'].pk}/change/",
        "/admin/monitoring/nudge/",
        f"/admin/monitoring/nudge/{nudge.pk}/change/",
    ]:
        assert client.get(url).status_code == 200, url


# --- Vigil's own words in the variant's language (config/locale) ----------------------------

GERMAN_WHAT = {
    Metric.GLUCOSE: "Ihre Blutzuckermessung",
    Metric.BLOOD_PRESSURE: "Ihre Blutdruckmessung",
    Metric.WEIGHT: "Ihre Gewichtsmessung",
    Metric.INR: "Ihre INR-Messung",
    Metric.HEART_RATE: "Ihre Pulsmessung",
    Metric.SPO2: "Ihre Messung der Sauerstoffsättigung",
    Metric.TEMPERATURE: "Ihre Temperaturmessung",
}


def fill(variant, slot) -> str:
    return render(variant=variant, slot=slot, zone=slot.patient.zone, now=NOW, streak=None)


@pytest.mark.django_db
@pytest.mark.parametrize(("metric", "what"), sorted(GERMAN_WHAT.items()))
def test_a_german_variant_names_each_measurement_from_the_german_catalogue(patient, metric, what):
    slot = weighing(patient, schedule=MeasurementScheduleFactory(patient=patient, metric=metric))
    variant = NudgeVariantFactory(language="de", text="Erinnerung: {what} ist um {time} fällig.")

    assert fill(variant, slot) == f"Erinnerung: {what} ist um 08:00 fällig."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("de", "Erinnerung: {what}.", "Erinnerung: Ihre Dosis Warfarin 5 mg."),
        ("de-AT", "Erinnerung: {what}.", "Erinnerung: Ihre Dosis Warfarin 5 mg."),
        ("en", "Reminder: {what}.", "Reminder: your Warfarin 5 mg dose."),
        # No catalogue for French: Vigil's phrase stays English (the admin refuses {what} in
        # a language without one: test_the_variant_admin_refuses_what_without_a_catalogue).
        ("fr", "Rappel : {what}.", "Rappel : your Warfarin 5 mg dose."),
    ],
)
def test_a_dose_is_named_in_the_variants_language(patient, language, text, expected):
    slot = dose(MedicationPlanFactory(patient=patient))
    variant = NudgeVariantFactory(language=language, text=text)

    assert fill(variant, slot) == expected


@pytest.mark.django_db
def test_rendering_in_german_leaves_the_active_language_english(patient):
    slot = weighing(patient)

    fill(NudgeVariantFactory(language="de", text="{what}"), slot)

    assert translation.get_language() == "en-us"
    assert fill(NudgeVariantFactory(language="en", text="{what}"), slot) == "your weight check"


# --- Translations in the admin ----------------------------------------------------------------


def variant_form(data: dict, instance=None) -> NudgeVariantForm:
    fields = {"kind": "plain", "purposes": json.dumps(["measurement_due"]), "active": True}
    return NudgeVariantForm(data={**fields, **data}, instance=instance)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "language", "text", "errors"),
    [
        ("reminder-de", "de", "Erinnerung: {what}.", set()),
        ("reminder-de-at", "de-AT", "Erinnerung: {what}.", set()),
        # The key names the language last: how a message's translations find each other.
        ("reminder", "de", "Erinnerung: {what}.", {"key"}),
        ("reminder-en", "de", "Erinnerung: {what}.", {"key"}),
        # No catalogue for French: {what} would be English inside a French sentence.
        ("reminder-fr", "fr", "Rappel : {what} à {time}.", {"text"}),
        ("reminder-fr", "fr", "Rappel : votre mesure à {time}.", set()),
    ],
)
def test_a_variant_names_its_language_and_uses_what_only_where_vigil_has_the_words(
    key, language, text, errors
):
    form = variant_form({"key": key, "language": language, "text": text})

    assert set(form.errors) == errors, form.errors


@pytest.mark.django_db
def test_a_variant_from_before_the_key_rule_is_edited_without_renaming_it():
    old = NudgeVariantFactory(key="reminder", language="en")

    form = variant_form({"key": "reminder", "language": "en", "text": "Now: {what}."}, old)

    assert form.is_valid(), form.errors


@pytest.mark.django_db
def test_the_variant_list_shows_each_message_in_its_languages_and_what_is_missing(
    client, superuser
):
    # given: the seeded defaults (every message in English and German) and a new English one
    english = NudgeVariantFactory(key="test-only-en", language="en")
    client.force_login(superuser)

    # when
    page = client.get("/admin/monitoring/nudgevariant/?q=plain-due").content.decode()
    with CaptureQueriesContext(connection) as one_row:
        only = client.get("/admin/monitoring/nudgevariant/?q=test-only").content.decode()
    with CaptureQueriesContext(connection) as every_row:
        client.get("/admin/monitoring/nudgevariant/")

    # then
    german = NudgeVariant.objects.get(key="plain-due-de")
    assert "German (de)" in page and "English (en)" in page
    assert f'<a href="/admin/monitoring/nudgevariant/{german.pk}/change/">de</a>' in page
    add = f"/admin/monitoring/nudgevariant/add/?translation_of={english.pk}&amp;language=de"
    assert f'<a href="{add}">add German</a>' in only
    # the languages of every row from one query, not one per row
    assert len(every_row.captured_queries) == len(one_row.captured_queries)


@pytest.mark.django_db
def test_adding_the_german_version_starts_from_the_english_one(client, superuser):
    english = NudgeVariantFactory(
        key="test-weigh-en", kind="benefit", purposes=["measurement_due"], text="Weigh: {what}."
    )
    client.force_login(superuser)
    url = f"/admin/monitoring/nudgevariant/add/?translation_of={english.pk}&language=de"

    # when: the "add German" link, then the form sent with the German text
    form = client.get(url).context["adminform"].form
    response = client.post(
        url,
        {
            **{name: form[name].value() for name in ("key", "kind", "language")},
            "purposes": form["purposes"].value(),
            "text": "Wiegen: {what}.",
            "active": "on",
        },
    )

    # then: the form started from the English variant, showing its text to translate
    assert (form["key"].value(), form["kind"].value(), form["language"].value()) == (
        "test-weigh-de",
        "benefit",
        "de",
    )
    assert json.loads(form["purposes"].value()) == ["measurement_due"]
    assert "Translate from English (en): “Weigh: {what}.”" in form.fields["text"].help_text
    assert response.status_code == 302
    german = NudgeVariant.objects.get(key="test-weigh-de")
    assert (german.kind, german.purposes, german.language, german.text, german.active) == (
        "benefit",
        ["measurement_due"],
        "de",
        "Wiegen: {what}.",
        True,
    )
    page = client.get(f"/admin/monitoring/nudgevariant/{english.pk}/change/").content.decode()
    assert f'<a href="/admin/monitoring/nudgevariant/{german.pk}/change/">German (de)</a>' in page
    assert "Wiegen: {what}." in page
