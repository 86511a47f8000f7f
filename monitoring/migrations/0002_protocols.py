from django.db import migrations

PROTOCOLS = {
    "heart_failure": "Heart failure",
    "hypertension": "Hypertension",
    "diabetes": "Diabetes",
    "anticoagulation": "Anticoagulation (warfarin)",
    "copd": "COPD",
}


def create_protocols(apps, schema_editor):
    Protocol = apps.get_model("monitoring", "Protocol")
    for code, name in PROTOCOLS.items():
        Protocol.objects.update_or_create(code=code, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]

    operations = [migrations.RunPython(create_protocols, migrations.RunPython.noop)]
