"""The program's permissions for the care-team roles (alerts/teams.py ROLE_PERMISSIONS).

Every role sees the program's records and logs time, reviews and notes; physicians approve
time; coordinators manage episodes and export the ledger. Frozen here as it stood when
written (tests/alerts/test_roles.py holds alerts 0004 plus this equal to the application's
table). A group that exists gains the permissions; nothing else of it changes.
"""

from django.db import migrations

EVERY_ROLE = {
    "program.view_episode", "program.view_timeentry", "program.view_review",
    "program.view_patientnote", "program.view_ledgerline",
    "program.add_timeentry", "program.change_timeentry", "program.add_review",
    "program.add_patientnote",
}  # fmt: skip
ADDED = {
    "nurse": EVERY_ROLE,
    "physician": EVERY_ROLE | {"program.approve_timeentry"},
    "coordinator": EVERY_ROLE
    | {"program.add_episode", "program.change_episode", "program.change_ledgerline"},
}


def _permissions(apps, labels):
    Permission = apps.get_model("auth", "Permission")
    wanted = {tuple(label.split(".", 1)) for label in labels}
    found = [
        p
        for p in Permission.objects.filter(
            codename__in={codename for _, codename in wanted}
        ).select_related("content_type")
        if (p.content_type.app_label, p.codename) in wanted
    ]
    assert len(found) == len(wanted), "missing program permissions"
    return found


def add_permissions(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are created after the last migration (post_migrate): create them now.
    app_config = apps.get_app_config("program")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for role, labels in ADDED.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*_permissions(apps, labels))


def remove_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, labels in ADDED.items():
        for group in Group.objects.filter(name=role):
            group.permissions.remove(*_permissions(apps, labels))


class Migration(migrations.Migration):
    dependencies = [
        ("program", "0001_initial"),
        ("alerts", "0004_role_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
