"""Keep-sending nudges (issue 13): the encouragement to a patient whose device period may fall
short of the days with data it needs, once per patient and local day.

- Nudge.local_day and the unique (patient, purpose, local_day) constraint that holds a
  once-a-day nudge to one, whatever retries or concurrent sweeps do; NULL for every other
  nudge (they are about a slot, or a streak), so existing rows are untouched.
- The purpose's default variants, as 0007 seeded the others: plain, benefit and care-team
  framing, in English and German, editable in the admin, inserted once and never overwritten;
  the reverse keeps them. Placeholders: {days} (days with device data so far in the period),
  {needed} (the days a full period needs), {left} (days left, today included). Numbers are
  written "{days} of {needed}" or "days left: {left}" so that 1 reads as well as 12. They
  say no more about the patient than a streak nudge does (a count of days), make no
  clinical claim and say nothing of billing.
"""

from django.db import migrations, models

KEEP_SENDING = ["keep_sending"]

DEFAULT_VARIANTS = [
    # key, kind, purposes, language, text
    (
        "plain-keep-sending-en",
        "plain",
        KEEP_SENDING,
        "en",
        "No reading from your device yet today. Days with readings in this monitoring "
        "period: {days} of {needed}.",
    ),
    (
        "plain-keep-sending-de",
        "plain",
        KEEP_SENDING,
        "de",
        "Heute ist noch kein Messwert von Ihrem Gerät eingegangen. Tage mit Messwerten in "
        "diesem Messzeitraum: {days} von {needed}.",
    ),
    (
        "benefit-keep-sending-en",
        "benefit",
        KEEP_SENDING,
        "en",
        "A reading today adds to the picture you and your care team have of how you are "
        "doing. Days with readings in this monitoring period: {days} of {needed}.",
    ),
    (
        "benefit-keep-sending-de",
        "benefit",
        KEEP_SENDING,
        "de",
        "Ein Messwert heute ergänzt das Bild, das Sie und Ihr Behandlungsteam von Ihrem "
        "Verlauf haben. Tage mit Messwerten in diesem Messzeitraum: {days} von {needed}.",
    ),
    (
        "care-team-keep-sending-en",
        "care_team",
        KEEP_SENDING,
        "en",
        "Your care team follows your device readings: {days} of {needed} days with readings "
        "in this monitoring period, days left: {left}. A reading today helps.",
    ),
    (
        "care-team-keep-sending-de",
        "care_team",
        KEEP_SENDING,
        "de",
        "Ihr Behandlungsteam verfolgt die Messwerte Ihres Geräts: {days} von {needed} Tagen "
        "mit Messwerten in diesem Messzeitraum, verbleibende Tage: {left}. Ein Messwert heute "
        "hilft.",
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
        ("monitoring", "0018_device_days"),
    ]

    operations = [
        migrations.AddField(
            model_name="nudge",
            name="local_day",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="nudge",
            name="purpose",
            field=models.CharField(
                choices=[
                    ("measurement_due", "Measurement due"),
                    ("measurement_missed", "Measurement missed"),
                    ("dose_due", "Dose due"),
                    ("dose_missed", "Dose missed"),
                    ("streak", "Streak"),
                    ("keep_sending", "Keep sending (days with data at risk)"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="nudge",
            constraint=models.UniqueConstraint(
                condition=models.Q(("local_day__isnull", False)),
                fields=("patient", "purpose", "local_day"),
                name="nudge_once_per_patient_day_and_purpose",
            ),
        ),
        migrations.RunPython(add_default_variants, migrations.RunPython.noop),
    ]
