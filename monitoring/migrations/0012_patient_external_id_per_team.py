"""A patient's MRN is unique within its care team, no longer across teams.

Enrolling an MRN that another team holds used to answer "already enrolled", telling the
caller that a patient they may not see exists. The unique index on external_id becomes a
unique constraint on (care_team, external_id): the same MRN in another team is another
enrolment, as if nothing were there.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0011_stafftoken_user_fingerprint"),
    ]

    operations = [
        migrations.AlterField(
            model_name="patient",
            name="external_id",
            field=models.CharField(
                help_text="The clinic's own identifier.",
                max_length=64,
                verbose_name="MRN / external id",
            ),
        ),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.UniqueConstraint(
                fields=("care_team", "external_id"),
                name="patient_external_id_unique_per_team",
                violation_error_message="A patient with this MRN is already enrolled in this "
                "care team.",
            ),
        ),
    ]
