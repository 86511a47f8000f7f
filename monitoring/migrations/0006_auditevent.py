"""The audit log, and on PostgreSQL a trigger that refuses UPDATE and DELETE on it.

The trigger is per statement, so it also refuses an UPDATE or DELETE that matches no row.
TRUNCATE is not covered: flushing a test database truncates every table, and whoever may
TRUNCATE (or drop the trigger) owns the database anyway. SQLite (the embedded default) has
the model's own refusal only.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


APPEND_ONLY_SQL = """
CREATE FUNCTION monitoring_auditevent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on monitoring_auditevent refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER monitoring_auditevent_append_only
    BEFORE UPDATE OR DELETE ON monitoring_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_auditevent_append_only();
"""
DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS monitoring_auditevent_append_only ON monitoring_auditevent;
DROP FUNCTION IF EXISTS monitoring_auditevent_append_only();
"""


def add_append_only_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, params=None)  # None: '%' is not a placeholder


def drop_append_only_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY_SQL, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0005_nudge_claimed_until'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('actor', models.CharField(max_length=150)),
                ('action', models.CharField(choices=[('view', 'Viewed'), ('create', 'Created'), ('change', 'Changed'), ('delete', 'Deleted'), ('export', 'Exported')], max_length=8)),
                ('model', models.CharField(max_length=100)),
                ('object_id', models.CharField(blank=True, max_length=64)),
                ('fields', models.JSONField(blank=True, default=list)),
                ('surface', models.CharField(choices=[('api', 'API'), ('admin', 'Admin'), ('other', 'Other')], max_length=8)),
                ('method', models.CharField(blank=True, max_length=8)),
                ('path', models.CharField(blank=True, max_length=500)),
                ('ip', models.GenericIPAddressField(blank=True, null=True)),
                ('user_agent', models.CharField(blank=True, max_length=300)),
                ('patient', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='monitoring.patient')),
                ('user', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-at', '-id'],
                'indexes': [models.Index(fields=['patient', '-at'], name='audit_patient_time'), models.Index(fields=['user', '-at'], name='audit_user_time')],
            },
        ),
        migrations.RunPython(add_append_only_trigger, drop_append_only_trigger),
    ]
