"""Staff tokens remember a fingerprint of their user's password hash (monitoring.auth).

A token whose fingerprint no longer matches its user's (the password changed) is refused and
revoked. Tokens issued before this migration have "" and so are refused: their users log in
again, at most VIGIL_STAFF_TOKEN_HOURS earlier than they would have.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0010_inr_problems"),
    ]

    operations = [
        migrations.AddField(
            model_name="stafftoken",
            name="user_fingerprint",
            field=models.CharField(default="", max_length=64),
        ),
    ]
