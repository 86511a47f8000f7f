"""The care-team roles as groups: nurse (triage), physician (triage and rule edits),
coordinator (enrolment, devices and app credentials; no rule edits).

The table is frozen here, as it stood when this migration was written; a later change to
the roles is a later migration. alerts.teams.ROLE_PERMISSIONS is the same table for the
application (tests/alerts/test_roles.py holds them equal).
"""

from django.db import migrations

CONTEXT = {
    "monitoring.view_patient", "monitoring.view_reading", "monitoring.view_rule",
    "monitoring.view_rulerevision", "monitoring.view_device", "monitoring.view_protocol",
    "monitoring.view_measurementschedule", "monitoring.view_medicationplan",
    "monitoring.view_slot", "monitoring.view_nudge",
    "alerts.view_careteam", "alerts.view_careteammembership", "alerts.view_alert",
    "alerts.view_alertevent", "alerts.view_silence", "alerts.view_notification",
    "alerts.view_notificationattempt",
}
TRIAGE = {"alerts.change_alert", "alerts.add_silence", "alerts.change_silence"}
ROLE_PERMISSIONS = {
    "nurse": CONTEXT | TRIAGE,
    "physician": CONTEXT | TRIAGE | {
        "monitoring.add_rule", "monitoring.change_rule",
        "monitoring.add_medicationplan", "monitoring.change_medicationplan",
        "monitoring.delete_medicationplan",
        "monitoring.add_measurementschedule", "monitoring.change_measurementschedule",
        "monitoring.delete_measurementschedule",
    },
    "coordinator": CONTEXT | {
        "monitoring.add_patient", "monitoring.change_patient",
        "monitoring.add_device", "monitoring.change_device",
        "monitoring.view_patientapptoken", "monitoring.add_patientapptoken",
        "monitoring.change_patientapptoken",
        "monitoring.add_measurementschedule", "monitoring.change_measurementschedule",
        "monitoring.delete_measurementschedule",
    },
}


def create_role_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are created after the last migration (post_migrate); on a fresh database
    # they do not exist yet when this runs, so create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, labels in ROLE_PERMISSIONS.items():
        wanted = {tuple(label.split(".", 1)) for label in labels}
        permissions = [
            p
            for p in Permission.objects.filter(
                codename__in={codename for _, codename in wanted}
            ).select_related("content_type")
            if (p.content_type.app_label, p.codename) in wanted
        ]
        assert len(permissions) == len(wanted), f"missing permissions for {role}"
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(permissions)


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0003_notification_cancelled"),
        ("monitoring", "0004_schedules_and_nudges"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
