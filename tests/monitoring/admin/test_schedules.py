"""Schedules and medication plans in the admin: added and changed through
monitoring.schedules (the sweep's `next_slot_at` in the patient's zone), with the staff API's
checks; slots are read-only. Team scoping of these pages: tests/alerts/test_admin_scoping.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from alerts.teams import sync_role_groups
from monitoring.models import MeasurementSchedule, MedicationPlan, Slot
from monitoring.nudges import run_reminder_sweep
from monitoring.schedules import add_measurement_schedule

pytestmark = pytest.mark.django_db

# Monday 2 March 2026, 08:00 in New York (the `patient` fixture's zone).
NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
NOT_A_TIME = '\'7am\' is not a 24-hour local time "HH:MM", e.g. "07:00".'
NOT_WEEKDAYS = "Give a list of weekdays 0 (Monday) … 6 (Sunday), or []."


@pytest.fixture(autouse=True)
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def as_physician(physician) -> Client:
    sync_role_groups(users=[physician])
    client = Client()
    client.force_login(physician)
    return client


def schedule_form(patient, **overrides) -> dict:
    return {
        "patient": patient.pk,
        "key": "weight",
        "metric": "weight",
        "times": '["19:00", "07:00"]',
        "days_of_week": "[]",
        "window_minutes": "120",
        "active": "on",
    } | overrides


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


def test_a_schedule_added_in_the_admin_gets_its_first_slot_in_the_patients_zone(
    as_physician, patient
):
    response = as_physician.post(
        reverse("admin:monitoring_measurementschedule_add"), schedule_form(patient)
    )

    assert response.status_code == 302
    schedule = MeasurementSchedule.objects.get()
    assert (schedule.times, schedule.next_slot_at) == (
        ["07:00", "19:00"],
        datetime(2026, 3, 3, 0, 0, tzinfo=UTC),  # 19:00 EST today
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"times": '["7am"]'}, {"times": [NOT_A_TIME]}),
        ({"days_of_week": "[9]"}, {"days_of_week": [NOT_WEEKDAYS]}),
        ({"window_minutes": "0"}, {"window_minutes": ["Between 1 and 10080 minutes."]}),
        ({"metric": "dose"}, {"metric": ["Doses are scheduled as medication plans."]}),
    ],
    ids=["time", "day", "window", "dose"],
)  # fmt: skip
def test_a_wrong_field_in_the_admin_form_is_shown_and_nothing_is_added(
    as_physician, patient, overrides, expected
):
    response = as_physician.post(
        reverse("admin:monitoring_measurementschedule_add"), schedule_form(patient, **overrides)
    )

    assert form_errors(response) == expected
    assert MeasurementSchedule.objects.count() == 0


def test_changing_times_in_the_admin_moves_the_next_slot_and_keeps_the_key(as_physician, patient):
    schedule = add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["07:00"], window_minutes=120
    )
    url = reverse("admin:monitoring_measurementschedule_change", args=[schedule.pk])

    response = as_physician.post(
        url,
        {
            "key": "renamed",
            "times": '["09:30"]',
            "days_of_week": "[]",
            "window_minutes": "120",
            "active": "on",
        },
    )

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.key, schedule.times, schedule.next_slot_at) == (
        "weight",
        ["09:30"],
        datetime(2026, 3, 2, 14, 30, tzinfo=UTC),  # 09:30 EST today
    )


def test_a_medication_plan_added_in_the_admin_gets_its_first_dose_slot(as_physician, patient):
    response = as_physician.post(
        reverse("admin:monitoring_medicationplan_add"),
        {
            "patient": patient.pk,
            "medication": "warfarin-5mg",
            "name": "Warfarin 5 mg",
            "dose_times": '["18:00"]',
            "days_of_week": "[]",
            "window_minutes": "120",
            "critical": "on",
            "active": "on",
        },
    )

    assert response.status_code == 302
    plan = MedicationPlan.objects.get()
    assert (plan.critical, plan.next_slot_at) == (True, datetime(2026, 3, 2, 23, 0, tzinfo=UTC))


def test_slots_are_read_only_in_the_admin(superuser, patient):
    add_measurement_schedule(
        patient=patient, key="weight", metric="weight", times=["08:00"], window_minutes=60
    )
    run_reminder_sweep(now=NOW)
    slot = Slot.objects.get()
    client = Client()
    client.force_login(superuser)

    listed = client.get(reverse("admin:monitoring_slot_changelist"))
    added = client.get(reverse("admin:monitoring_slot_add"))
    changed = client.post(
        reverse("admin:monitoring_slot_change", args=[slot.pk]), {"status": "done"}
    )

    assert (listed.status_code, added.status_code, changed.status_code) == (200, 403, 403)
    assert Slot.objects.get().status == "open"
