"""Constants, builders and fixtures shared by test_decision.py, test_escalation.py,
test_outcomes.py, test_streaks.py, test_texts.py (imported by name: a fixture here applies only
where a test module imports it)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.nudges import nudge_patient
from tests.factories import (
    MeasurementScheduleFactory,
    PatientFactory,
    ReadingFactory,
    SlotFactory,
)
from tests.monitoring.rules.conftest import reference

# Monday 2 March 2026, 08:00 in Berlin (CET): a weighing or a dose is due.
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


DELIVER = "monitoring.tasks.deliver_nudge_task"


MISSED_DOSE_FLAG = "medication_adherence.dose_level_adherence.missed_dose_flag"


# ">= 2 consecutive missed doses of a critical medication", warning
DEFAULTS = reference(f"{MISSED_DOSE_FLAG}.alert_defaults")


MISSED_IN_A_ROW = int(DEFAULTS[0]["rule"].split()[1])


ROUTE = "alerts.tasks.route_alert_event_task"


ENGLISH_REMINDERS = ["benefit", "care-team", "plain"]


WEIGHT_TEXTS = {
    "benefit": "Time for your weight check (08:00).",
    "care-team": "Your care team follows your weight check (08:00).",
    "plain": "Reminder: your weight check is due at 08:00.",
}


@pytest.fixture(autouse=True)
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def patient(team, variants):
    return PatientFactory(care_team=team, timezone="Europe/Berlin", language="en")


def weighing(patient, *, due=NOW, **fields):
    schedule = fields.pop("schedule", None) or MeasurementScheduleFactory(patient=patient)
    return SlotFactory(schedule=schedule, due_at=due, **fields)


def dose(plan, *, due=NOW, **fields):
    return SlotFactory(plan=plan, due_at=due, **fields)


def logged_dose(slot, status, *, after=timedelta(minutes=5)):
    """The dose the patient logged for the slot's scheduled time, `after` it."""
    return ReadingFactory(
        patient=slot.patient,
        metric="dose",
        value=None,
        unit="",
        medication=slot.plan.medication,
        dose_status=status,
        scheduled_for=slot.due_at,
        measured_at=slot.due_at + after,
    )


def remind(patient, slot, *, now=NOW, seed=1):
    purpose = "dose_due" if slot.plan_id else "measurement_due"
    return nudge_patient(
        patient=patient, purpose=purpose, slot=slot, now=now, rng=random.Random(seed)
    )


def published(callbacks) -> list[tuple[str, tuple]]:
    return [(callback.task.name, callback.args) for callback in callbacks]


def candidate_log(key, successes=0, failures=0, alpha=1.0, beta=1.0) -> dict:
    return {
        "key": key,
        "successes": successes,
        "failures": failures,
        "prior_alpha": alpha,
        "prior_beta": beta,
    }


def day_at_eight(day: int) -> datetime:
    """08:00 CET on the given day of March 2026."""
    return datetime(2026, 3, day, 7, 0, tzinfo=UTC)


@pytest.fixture
def schedule(patient):
    return MeasurementScheduleFactory(patient=patient)
