from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_schedules_and_nudges"),
    ]

    operations = [
        migrations.AddField(
            model_name="nudge",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
