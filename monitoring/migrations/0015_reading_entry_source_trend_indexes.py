# Readings say how they were entered (`entry`, the contract's device vs manual) and may carry a
# CGM's trend arrow; `source` grows to name the FHIR and Nightscout interfaces. Existing rows:
# a device key's readings were device entries, the app's were typed (the contract's default
# for app tokens). Indexes: every metric of a patient by time (the readings lists), pending
# readings per patient, and the device foreign key without its NULLs. Reversible.

import django.db.models.deletion
from django.db import migrations, models


def entry_from_source(apps, schema_editor):
    Reading = apps.get_model("monitoring", "Reading")
    Reading.objects.filter(source="app").update(entry="manual")


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0014_nudge_attempts"),
    ]

    operations = [
        migrations.AddField(
            model_name="reading",
            name="entry",
            field=models.CharField(
                choices=[("device", "Measured by a device"), ("manual", "Typed by a person")],
                default="device",
                max_length=8,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(entry_from_source, migrations.RunPython.noop, elidable=True),
        migrations.AddField(
            model_name="reading",
            name="trend",
            field=models.CharField(blank=True, max_length=24),
        ),
        migrations.AlterField(
            model_name="reading",
            name="source",
            field=models.CharField(
                choices=[
                    ("app", "Patient app"),
                    ("device", "Device key"),
                    ("fhir", "FHIR client"),
                    ("nightscout", "Nightscout uploader"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="reading",
            name="device",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="readings",
                to="monitoring.device",
            ),
        ),
        migrations.AddIndex(
            model_name="reading",
            index=models.Index(
                condition=models.Q(("device__isnull", False)),
                fields=["device"],
                name="reading_device",
            ),
        ),
        migrations.AddIndex(
            model_name="reading",
            index=models.Index(
                fields=["patient", "-measured_at", "-id"], name="reading_patient_time"
            ),
        ),
        migrations.RemoveIndex(model_name="reading", name="reading_unevaluated"),
        migrations.AddIndex(
            model_name="reading",
            index=models.Index(
                condition=models.Q(("evaluated_at__isnull", True)),
                fields=["patient", "received_at"],
                name="reading_unevaluated",
            ),
        ),
    ]
