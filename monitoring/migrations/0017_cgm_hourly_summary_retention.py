"""Retention (docs/retention.md): hourly CGM summaries, and audit events deletable past retention.

CgmHourlySummary holds what replaces raw CGM readings where the clinic chose it. On
PostgreSQL the audit log stays append-only with one exception, for the retention job only:
a DELETE passes the statement trigger when the transaction set
`vigil.audit_retention_before`, and a row trigger then refuses it for any event at or after
that instant. So no code path deletes an event younger than the cutoff it states, and an
UPDATE stays refused whatever is set.
"""

import django.db.models.deletion
from django.db import migrations, models

RETENTION_SQL = """
CREATE OR REPLACE FUNCTION monitoring_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
        AND coalesce(current_setting('vigil.audit_retention_before', true), '') <> '' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on monitoring_auditevent refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE FUNCTION monitoring_auditevent_past_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.at < current_setting('vigil.audit_retention_before')::timestamptz THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: an event within retention cannot be deleted'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER monitoring_auditevent_past_retention
    BEFORE DELETE ON monitoring_auditevent
    FOR EACH ROW EXECUTE FUNCTION monitoring_auditevent_past_retention();
"""
APPEND_ONLY_SQL = """
DROP TRIGGER monitoring_auditevent_past_retention ON monitoring_auditevent;
DROP FUNCTION monitoring_auditevent_past_retention();
CREATE OR REPLACE FUNCTION monitoring_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on monitoring_auditevent refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def allow_deletion_past_retention(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RETENTION_SQL, params=None)  # None: '%' is not a placeholder


def refuse_every_deletion(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0016_reading_partitions_idempotency_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="CgmHourlySummary",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField()),
                ("unit", models.CharField(max_length=16)),
                ("count", models.PositiveIntegerField()),
                ("total", models.FloatField()),
                ("total_of_squares", models.FloatField()),
                ("minimum", models.FloatField()),
                ("maximum", models.FloatField()),
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
                "ordering": ["patient", "hour"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("patient", "hour"), name="cgm_summary_patient_hour"
                    )
                ],
            },
        ),
        migrations.RunPython(allow_deletion_past_retention, refuse_every_deletion),
    ]
