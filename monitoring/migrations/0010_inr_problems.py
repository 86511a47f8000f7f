"""INR alerts by clinical problem (monitoring/problems.yaml).

The "INR 4.5–10" rule now feeds the high-INR alert group; the target-range rule stays in
the two-sided `inr_range` group, whose findings go to `inr_low` or `inr_high` by side. An
alert left unresolved under the old `inr_range` key is moved to the key of its side, so a
new finding folds into it; where that key already has an unresolved alert it stays as it is
(a person resolves it).
"""

from django.db import migrations

HIGH_OPS = ("gt", "ge")


def _side(alert, Reading) -> str | None:
    if alert.rule is not None and alert.rule.key == "inr_4_5_to_10":
        return "inr_high"
    reading = Reading.objects.filter(id__in=alert.reading_ids or []).order_by("-measured_at").first()
    conditions = (alert.rule_parameters or {}).get("conditions") or []
    if reading is None or reading.value is None:
        return None
    for condition in conditions:
        value = condition.get("value")
        op = condition.get("op")
        if value is None or op is None:
            continue
        above = reading.value > value if op == "gt" else reading.value >= value if op == "ge" else None
        below = reading.value < value if op == "lt" else reading.value <= value if op == "le" else None
        if above:
            return "inr_high"
        if below:
            return "inr_low"
    return None


def forwards(apps, schema_editor):
    Rule = apps.get_model("monitoring", "Rule")
    Alert = apps.get_model("alerts", "Alert")
    Reading = apps.get_model("monitoring", "Reading")
    Rule.objects.filter(key="inr_4_5_to_10", group="inr_range").update(group="inr_high")
    for alert in Alert.objects.filter(dedupe_key="inr_range").exclude(status="resolved"):
        key = _side(alert, Reading)
        taken = Alert.objects.filter(patient_id=alert.patient_id, dedupe_key=key).exclude(
            status="resolved"
        )
        if key is not None and not taken.exists():
            alert.dedupe_key = key
            alert.save(update_fields=["dedupe_key"])


def backwards(apps, schema_editor):
    Rule = apps.get_model("monitoring", "Rule")
    Rule.objects.filter(key="inr_4_5_to_10", group="inr_high").update(group="inr_range")


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0009_reading_evaluation_failure"),
        ("alerts", "0006_alert_worst_finding"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
