"""The patient page in the admin (monitoring/admin/patients.py): the charts — through the
admin's own URLs, on real PostgreSQL.

Staff act through their roles (alerts.teams: the role groups, narrowed to each team): a
coordinator enrols and handles credentials, a physician tailors rules, a nurse reads.
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from monitoring.auth import issue_app_token, register_device
from monitoring.models import (
    Device,
    Patient,
    Reading,
)
from monitoring.patient_rules import apply_protocols
from tests.factories import (
    AlertFactory,
    PatientFactory,
    ReadingFactory,
)
from tests.monitoring.admin.patients_helpers import (  # noqa: F401
    NOW,
    change_url,
    coordinator_client,
    frozen,
    physician_client,
    stored,
)

# --- Charts -------------------------------------------------------------------------------


def test_there_is_a_chart_per_metric_with_readings_in_the_last_30_days(
    frozen, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes", "hypertension"])
    low = ReadingFactory(
        patient=patient,
        metric="glucose",
        value=62,
        unit="mg/dL",
        measured_at=NOW - timedelta(days=2),
    )
    ReadingFactory(
        patient=patient,
        metric="glucose",
        value=110,
        unit="mg/dL",
        measured_at=NOW - timedelta(days=1),
    )
    ReadingFactory(
        patient=patient, metric="weight", value=81.5, measured_at=NOW - timedelta(days=3)
    )
    Reading.objects.bulk_create(
        [
            stored(patient, "blood_pressure", NOW - timedelta(days=4), systolic=128, diastolic=82),
            stored(patient, "heart_rate", NOW - timedelta(days=31), value=64),
            stored(
                patient,
                "dose",
                NOW - timedelta(days=1),
                medication="metformin",
                dose_status="taken",
            ),
        ]
    )

    AlertFactory(
        patient=patient,
        rule=patient.rules.get(key="hypoglycemia_level_1"),
        reading_ids=[low.pk],
    )

    response = physician_client.get(change_url(patient))

    charts = response.context["patient_page"].charts
    assert [chart.metric for chart, _svg in charts] == ["glucose", "blood_pressure", "weight"]
    glucose, blood_pressure, weight = (chart for chart, _svg in charts)
    later = Reading.objects.get(patient=patient, metric="glucose", value=110)
    assert glucose.series == (
        ("", [(low.measured_at, 62.0, low.pk), (NOW - timedelta(days=1), 110.0, later.pk)]),
    )
    assert glucose.marks == (low.pk,)  # the alert's reading, not every one in a band
    assert {band.label for band in glucose.bands} >= {
        "Level 1 hypoglycaemia (≥ 54 mg/dL and < 70 mg/dL)",
        "Level 2 hypoglycaemia (< 54 mg/dL)",
    }
    assert [name for name, _ in blood_pressure.series] == ["Systolic", "Diastolic"]
    assert blood_pressure.marks == ()
    assert (weight.readings, weight.bands) == (1, ())
    html = response.content.decode()
    figures = re.findall(r'<figure data-metric="(\w+)">\s*<svg', html)
    assert figures == ["glucose", "blood_pressure", "weight"]


def test_the_page_makes_as_many_queries_for_much_data_as_for_little(frozen, physician_client, team):
    def patient_with(n: int) -> Patient:
        patient = PatientFactory(care_team=team)
        apply_protocols(patient=patient, codes=["diabetes", "anticoagulation"])
        for i in range(n):
            issue_app_token(patient=patient)
            register_device(patient=patient, kind="scale", serial=f"SC-{i}")
        Reading.objects.bulk_create(
            stored(patient, metric, NOW - timedelta(hours=i), value=2.5)
            for i in range(20 * n)
            for metric in ("glucose", "inr", "weight")
        )
        return patient

    def queries(patient) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert physician_client.get(change_url(patient)).status_code == 200
        return len(captured.captured_queries)

    assert queries(patient_with(1)) == queries(patient_with(5))


def test_devices_are_not_added_in_the_device_admin_where_no_key_would_be_made(
    coordinator_client, patient
):
    response = coordinator_client.get(reverse("admin:monitoring_device_add"))

    assert response.status_code == 403
    assert not Device.objects.exists()
