"""Device days (issue 13): the local days on which a patient sent device-measured data.

Backfilled from the readings already stored: on PostgreSQL one INSERT … SELECT (the day in
the patient's zone as PostgreSQL's zone database names it), elsewhere patient by patient.
"""

import zoneinfo

import django.db.models.deletion
from django.db import migrations, models


def backfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "INSERT INTO monitoring_deviceday (patient_id, day) "
            "SELECT DISTINCT r.patient_id, (r.measured_at AT TIME ZONE p.timezone)::date "
            "FROM monitoring_reading r JOIN monitoring_patient p ON p.id = r.patient_id "
            "WHERE r.entry = 'device' AND r.metric <> 'dose' ON CONFLICT DO NOTHING"
        )
        return
    Patient = apps.get_model("monitoring", "Patient")
    Reading = apps.get_model("monitoring", "Reading")
    DeviceDay = apps.get_model("monitoring", "DeviceDay")
    for patient in Patient.objects.only("id", "timezone").iterator():
        zone = zoneinfo.ZoneInfo(patient.timezone)
        days = {
            measured_at.astimezone(zone).date()
            for measured_at in Reading.objects.filter(patient_id=patient.pk, entry="device")
            .exclude(metric="dose")
            .values_list("measured_at", flat=True)
            .iterator()
        }
        DeviceDay.objects.bulk_create(
            [DeviceDay(patient_id=patient.pk, day=day) for day in days], ignore_conflicts=True
        )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0017_cgm_hourly_summary_retention"),
    ]

    operations = [
        migrations.CreateModel(
            name="DeviceDay",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "patient_id",
                        "day",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("day", models.DateField()),
                (
                    "patient",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="monitoring.patient",
                    ),
                ),
            ],
            options={
                "ordering": ["patient", "day"],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
