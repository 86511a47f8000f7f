"""monitoring/schedules/plans.py: protocol default schedules.

Times are stored in UTC and interpreted in the patient's zone: a 07:00 slot is at 07:00 local
on both sides of each change; a 02:30 that does not exist (spring forward) moves to the end of
the gap, 03:00; a 01:30 that happens twice (fall back) is the first.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from monitoring.enrolment import enrol_patient
from monitoring.models import (
    Patient,
    ProtocolCode,
)
from monitoring.schedules import (
    apply_protocol_schedules,
    change_schedule,
    schedule_templates,
)
from tests.monitoring.schedules.helpers import utc

# --- Protocol defaults ----------------------------------------------------------------------


def test_each_protocol_has_its_default_measurement_schedule():
    defaults = {
        code: [(t.key, t.metric, t.times, t.days_of_week, t.window_minutes) for t in templates]
        for code, templates in schedule_templates().items()
    }

    assert set(defaults) == set(ProtocolCode.values)
    assert defaults == {
        "heart_failure": [("weight_morning", "weight", ("07:00",), (), 180)],
        "hypertension": [
            ("blood_pressure_morning_evening", "blood_pressure", ("07:00", "19:00"), (), 120)
        ],
        "diabetes": [("glucose_fasting", "glucose", ("07:00",), (), 120)],
        "anticoagulation": [("inr_weekly", "inr", ("08:00",), (0,), 720)],
        "copd": [("spo2_daily", "spo2", ("09:00",), (), 180)],
    }


@pytest.mark.django_db
def test_enrolment_gives_the_patient_the_protocols_default_schedules_with_their_first_slot(
    team, time_machine
):
    # given: 08:00 in New York
    time_machine.move_to(utc(2026, 3, 2, 13, 0), tick=False)

    # when
    patient = enrol_patient(
        external_id="MRN-7",
        name="Ada",
        timezone="America/New_York",
        care_team=team,
        protocols=["heart_failure", "hypertension"],
    )

    # then: today's 07:00 weighing has passed; the 19:00 blood pressure has not
    assert list(
        patient.measurement_schedules.order_by("key").values_list(
            "key", "protocol__code", "metric", "times", "window_minutes", "next_slot_at"
        )
    ) == [
        (
            "blood_pressure_morning_evening",
            "hypertension",
            "blood_pressure",
            ["07:00", "19:00"],
            120,
            utc(2026, 3, 3, 0, 0),
        ),
        ("weight_morning", "heart_failure", "weight", ["07:00"], 180, utc(2026, 3, 3, 12, 0)),
    ]


@pytest.mark.django_db
def test_applying_protocol_schedules_again_adds_nothing_and_keeps_the_clinics_changes(patient):
    apply_protocol_schedules(patient=patient, codes=["heart_failure"])
    schedule = patient.measurement_schedules.get()
    change_schedule(owner=schedule, times=["06:30"])

    added = apply_protocol_schedules(patient=patient, codes=["heart_failure", "copd"])

    assert added == 1
    assert list(patient.measurement_schedules.order_by("key").values_list("key", "times")) == [
        ("spo2_daily", ["09:00"]),
        ("weight_morning", ["06:30"]),
    ]


@pytest.mark.django_db
def test_the_demo_clinic_has_its_protocols_schedules_after_one_run_or_two():
    for _ in range(2):
        call_command("seed_demo", stdout=StringIO())

    schedules = {
        patient.external_id: sorted(s.key for s in patient.measurement_schedules.all())
        for patient in Patient.objects.filter(external_id__startswith="DEMO-")
    }
    assert schedules == {
        "DEMO-001": ["blood_pressure_morning_evening", "weight_morning"],
        "DEMO-002": ["glucose_fasting"],
        "DEMO-003": ["inr_weekly"],
        "DEMO-004": ["spo2_daily"],
    }
