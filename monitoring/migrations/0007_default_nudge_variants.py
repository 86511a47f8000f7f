"""The default nudge variants: every kind in English and German, editable in the admin.

Placeholders: {what} (e.g. "your weight check" / "Ihre Gewichtsmessung", or the dose of a
named medication), {time} (the slot's local time, HH:MM), {streak} (days). The texts make no
clinical claim: they remind, describe the programme (the care team follows what is logged)
and encourage; none advises on taking or skipping a dose.

Variants are inserted once and never overwritten (a clinic's edits stay); the reverse
migration keeps them, since patients' records with them (VariantPosterior) depend on them.
"""

from django.db import migrations

DUE = ["measurement_due", "dose_due"]
MISSED = ["measurement_missed", "dose_missed"]
STREAK = ["streak"]

DEFAULT_VARIANTS = [
    # key, kind, purposes, language, text
    ("plain-due-en", "plain", DUE, "en", "Reminder: {what} is due at {time}."),
    ("plain-due-de", "plain", DUE, "de", "Erinnerung: {what} ist um {time} fällig."),
    (
        "benefit-due-en",
        "benefit",
        DUE,
        "en",
        "Time for {what} ({time}). Each entry adds to the picture you and your care team "
        "have of how you are doing.",
    ),
    (
        "benefit-due-de",
        "benefit",
        DUE,
        "de",
        "Zeit für {what} ({time}). Jeder Eintrag ergänzt das Bild, das Sie und Ihr "
        "Behandlungsteam von Ihrem Verlauf haben.",
    ),
    (
        "care-team-due-en",
        "care_team",
        DUE,
        "en",
        "Your care team follows what you log: {what} is due at {time}.",
    ),
    (
        "care-team-due-de",
        "care_team",
        DUE,
        "de",
        "Ihr Behandlungsteam verfolgt Ihre Einträge: {what} ist um {time} fällig.",
    ),
    (
        "supportive-missed-en",
        "supportive",
        MISSED,
        "en",
        "Nothing was logged for {what} at {time}. If you did it and just didn't log it, "
        "you can still add it in the app.",
    ),
    (
        "supportive-missed-de",
        "supportive",
        MISSED,
        "de",
        "Für {what} um {time} wurde nichts eingetragen. Falls Sie es erledigt und nur nicht "
        "eingetragen haben, können Sie es in der App nachtragen.",
    ),
    (
        "care-team-missed-en",
        "care_team",
        MISSED,
        "en",
        "It happens: {what} at {time} was missed. If something makes it hard, your care "
        "team is there to help.",
    ),
    (
        "care-team-missed-de",
        "care_team",
        MISSED,
        "de",
        "Dass {what} um {time} ausgefallen ist, kommt vor. Wenn Ihnen etwas dabei "
        "schwerfällt, ist Ihr Behandlungsteam für Sie da.",
    ),
    (
        "streak-en",
        "streak",
        STREAK,
        "en",
        "{streak} days in a row with everything logged. Well done!",
    ),
    (
        "streak-de",
        "streak",
        STREAK,
        "de",
        "{streak} Tage in Folge alles eingetragen. Gut gemacht!",
    ),
    (
        "streak-care-team-en",
        "streak",
        STREAK,
        "en",
        "{streak} days in a row with everything logged. That gives your care team a clear "
        "picture. Keep it up!",
    ),
    (
        "streak-care-team-de",
        "streak",
        STREAK,
        "de",
        "{streak} Tage in Folge alles eingetragen. So hat Ihr Behandlungsteam ein klares "
        "Bild. Weiter so!",
    ),
]


def add_default_variants(apps, schema_editor):
    NudgeVariant = apps.get_model("monitoring", "NudgeVariant")
    NudgeVariant.objects.bulk_create(
        [
            NudgeVariant(key=key, kind=kind, purposes=purposes, language=language, text=text)
            for key, kind, purposes, language, text in DEFAULT_VARIANTS
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0006_auditevent"),
    ]

    operations = [
        migrations.RunPython(add_default_variants, migrations.RunPython.noop),
    ]
