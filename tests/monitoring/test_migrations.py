"""Data migrations that move existing rows to a new meaning, run on rows as they were."""

import importlib

import pytest
from django.apps import apps

from alerts.models import Alert
from monitoring.models import Rule
from tests.factories import AlertFactory, PatientFactory, ReadingFactory, RuleFactory

inr_problems = importlib.import_module("monitoring.migrations.0010_inr_problems")
TARGET_RANGE = {
    "conditions": [{"component": "value", "op": "lt", "value": 2.0}, {"op": "gt", "value": 3.0}],
    "match": "any",
}


def inr_alert(patient, value: float, *, key: str = "inr_target_range", status: str = "open"):
    rule = RuleFactory(
        patient=patient, key=key, metric="inr", group="inr_range", parameters=TARGET_RANGE
    )
    reading = ReadingFactory(patient=patient, metric="inr", value=value, unit="{INR}")
    return AlertFactory(patient=patient, rule=rule, reading_ids=[reading.pk], status=status)


@pytest.mark.django_db
def test_open_inr_range_alerts_move_to_the_group_of_their_side():
    low = inr_alert(PatientFactory(), 1.6)
    high = inr_alert(PatientFactory(), 3.6)
    band = inr_alert(PatientFactory(), 4.7, key="inr_4_5_to_10")
    resolved = inr_alert(PatientFactory(), 1.4, status="resolved")

    inr_problems.forwards(apps, None)

    keys = dict(Alert.objects.values_list("pk", "dedupe_key"))
    assert [keys[a.pk] for a in (low, high, band, resolved)] == [
        "inr_low",
        "inr_high",
        "inr_high",
        "inr_range",
    ]
    assert Rule.objects.get(key="inr_4_5_to_10").group == "inr_high"


@pytest.mark.django_db
def test_an_inr_range_alert_stays_where_its_side_already_has_an_open_alert():
    patient = PatientFactory()
    waiting = inr_alert(patient, 3.6)
    AlertFactory(patient=patient, rule__key="inr_critical", rule__group="inr_high")

    inr_problems.forwards(apps, None)

    waiting.refresh_from_db()
    assert waiting.dedupe_key == "inr_range"
