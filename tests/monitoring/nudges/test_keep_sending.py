"""Keep-sending nudges in monitoring.nudges (keep_sending.py and its place in decision.py,
texts.py, outcomes.py, delivery.py): once per patient and local day, nothing once the day
has device data, acted on by a device reading. Who is at risk: tests/program/test_outreach.py.
Time is frozen and passed explicitly."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from delivery.outbox import Outcome
from monitoring.models import DeviceDay, Nudge, VariantPosterior
from monitoring.nudges import PeriodDays, nudge_patient, settle_nudge_outcomes
from monitoring.nudges.delivery import deliver_nudge
from tests.factories import (
    NudgeFactory,
    NudgeVariantFactory,
    PatientFactory,
    ReadingFactory,
    SlotFactory,
)

# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = [pytest.mark.usefixtures("_rails"), pytest.mark.django_db]

# Wednesday 11 March 2026, 16:30 in Berlin (CET).
NOW = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)
TODAY = date(2026, 3, 11)
DAYS = PeriodDays(with_data=5, needed=16, left=20)
DELIVER = "monitoring.tasks.deliver_nudge_task"


@pytest.fixture(autouse=True)
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def keep_sending_variant(variants):
    return NudgeVariantFactory(
        key="keep-sending",
        purposes=["keep_sending"],
        text="{days} of {needed} days with readings, days left: {left}.",
    )


@pytest.fixture
def patient(team, keep_sending_variant):
    return PatientFactory(care_team=team, timezone="Europe/Berlin", language="en")


def keep_sending(patient, *, now=NOW, days=DAYS):
    return nudge_patient(
        patient=patient,
        purpose="keep_sending",
        slot=None,
        now=now,
        rng=random.Random(1),
        period_days=days,
    )


def test_a_keep_sending_nudge_tells_where_the_period_stands(
    patient, keep_sending_variant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        nudge = keep_sending(patient)

    nudge.refresh_from_db()
    assert (nudge.purpose, nudge.slot, nudge.variant) == (
        "keep_sending",
        None,
        keep_sending_variant,
    )
    assert nudge.text == "5 of 16 days with readings, days left: 20."
    assert nudge.local_day == TODAY
    assert nudge.decision["period_days"] == {"with_data": 5, "needed": 16, "left": 20}
    assert nudge.decision["chosen"] == "keep-sending"
    assert (nudge.created_at, nudge.outcome_due_at) == (NOW, NOW + timedelta(hours=24))
    assert [(c.task.name, c.args) for c in callbacks] == [(DELIVER, (nudge.pk,))]


def test_a_second_call_on_the_same_local_day_writes_nothing(patient):
    # given: today's nudge; 45 minutes later the gap (30) and the cap (3) would allow another
    first = keep_sending(patient)

    # when
    second = keep_sending(patient, now=NOW + timedelta(minutes=45))

    # then: the unique (patient, purpose, local_day) constraint refused it
    assert second is None
    assert list(Nudge.objects.values_list("pk", flat=True)) == [first.pk]


def test_the_next_local_day_gets_its_own(patient):
    first = keep_sending(patient)
    # 00:30 on the 12th in Berlin is still the 11th in UTC; quiet hours are not set
    after_midnight = datetime(2026, 3, 11, 23, 30, tzinfo=UTC)

    second = keep_sending(patient, now=after_midnight)

    assert (first.local_day, second.local_day) == (TODAY, date(2026, 3, 12))


def test_the_database_holds_one_keep_sending_nudge_per_patient_and_local_day(patient):
    NudgeFactory(patient=patient, purpose="keep_sending", local_day=TODAY)

    with pytest.raises(IntegrityError), transaction.atomic():
        NudgeFactory(patient=patient, purpose="keep_sending", local_day=TODAY)

    # Nudges of other purposes (no local day) are not held by it.
    NudgeFactory(patient=patient, purpose="streak")
    NudgeFactory(patient=patient, purpose="streak")
    assert Nudge.objects.count() == 3


def test_no_keep_sending_nudge_once_the_local_day_has_device_data(patient):
    DeviceDay.objects.create(patient=patient, day=TODAY)

    assert keep_sending(patient) is None
    assert Nudge.objects.count() == 0


def test_device_data_of_another_day_does_not_count_for_today(patient):
    DeviceDay.objects.create(patient=patient, day=TODAY - timedelta(days=1))

    assert keep_sending(patient) is not None


def test_the_rails_hold_a_keep_sending_nudge_back(patient):
    # given: a reminder 10 minutes ago (minimum gap 30 minutes)
    NudgeFactory(patient=patient, created_at=NOW - timedelta(minutes=10))

    assert keep_sending(patient) is None
    assert Nudge.objects.filter(purpose="keep_sending").count() == 0


def test_a_german_patient_gets_the_german_variant(team, keep_sending_variant):
    german = NudgeVariantFactory(
        key="keep-sending-de",
        purposes=["keep_sending"],
        language="de",
        text="{days} von {needed} Tagen mit Messwerten, verbleibende Tage: {left}.",
    )
    patient = PatientFactory(care_team=team, timezone="Europe/Berlin", language="de")

    nudge = keep_sending(patient)

    assert (nudge.variant, nudge.text) == (
        german,
        "5 von 16 Tagen mit Messwerten, verbleibende Tage: 20.",
    )


def test_nudge_patient_refuses_arguments_that_do_not_fit_the_purpose(patient):
    slot = SlotFactory(schedule__patient=patient, due_at=NOW)
    with pytest.raises(ValueError, match="period_days"):
        nudge_patient(patient=patient, purpose="keep_sending", slot=None, now=NOW)
    with pytest.raises(ValueError, match="slot"):
        nudge_patient(patient=patient, purpose="keep_sending", slot=slot, now=NOW, period_days=DAYS)
    with pytest.raises(ValueError, match="period_days"):
        nudge_patient(patient=patient, purpose="streak", slot=None, now=NOW, period_days=DAYS)
    with pytest.raises(ValueError, match="period_days"):
        nudge_patient(
            patient=patient, purpose="measurement_due", slot=slot, now=NOW, period_days=DAYS
        )
    assert Nudge.objects.count() == 0


# --- Outcome: a device reading within the window --------------------------------------------


def delivered(nudge):
    Nudge.objects.filter(pk=nudge.pk).update(status="sent", sent_at=nudge.created_at)
    return nudge


def device_reading(patient, *, at, **fields):
    return ReadingFactory(
        patient=patient, source="device", entry="device", measured_at=at, **fields
    )


def test_a_device_reading_within_the_window_counts_as_acted_on(patient, keep_sending_variant):
    nudge = delivered(keep_sending(patient))
    reading = device_reading(patient, at=NOW + timedelta(hours=2))
    device_reading(patient, at=NOW + timedelta(hours=5))

    assert settle_nudge_outcomes(now=NOW + timedelta(hours=24)) == 1

    nudge.refresh_from_db()
    assert (nudge.acted, nudge.acted_at) == (True, reading.measured_at)
    assert list(
        VariantPosterior.objects.values_list("patient", "variant", "successes", "failures")
    ) == [(patient.pk, keep_sending_variant.pk, 1, 0)]


@pytest.mark.parametrize(
    "reading",
    [
        pytest.param({"source": "app", "entry": "manual"}, id="typed by the patient"),
        pytest.param(
            {
                "metric": "dose",
                "value": None,
                "unit": "",
                "medication": "metformin-500mg",
                "dose_status": "taken",
                "source": "device",
                "entry": "device",
            },
            id="a dose",
        ),
        pytest.param(
            {"source": "device", "entry": "device", "after": timedelta(hours=25)},
            id="after the window",
        ),
        pytest.param(
            {"source": "device", "entry": "device", "after": -timedelta(minutes=5)},
            id="before the nudge",
        ),
    ],
)
def test_other_readings_do_not_count(patient, keep_sending_variant, reading):
    nudge = delivered(keep_sending(patient))
    reading = dict(reading)
    after = reading.pop("after", timedelta(hours=2))
    ReadingFactory(patient=patient, measured_at=NOW + after, **reading)

    assert settle_nudge_outcomes(now=NOW + timedelta(hours=24)) == 1

    nudge.refresh_from_db()
    assert (nudge.acted, nudge.acted_at) == (False, None)
    assert list(
        VariantPosterior.objects.values_list("patient", "variant", "successes", "failures")
    ) == [(patient.pk, keep_sending_variant.pk, 0, 1)]


# --- Delivery: nothing to ask once the day has data -----------------------------------------


def test_a_keep_sending_nudge_whose_day_got_device_data_while_it_waited_is_cancelled(patient):
    nudge = keep_sending(patient)
    DeviceDay.objects.create(patient=patient, day=TODAY)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.CANCELLED

    nudge.refresh_from_db()
    assert (nudge.status, nudge.sent_at, nudge.last_error) == (
        "cancelled",
        None,
        "device data sent before delivery",
    )


def test_a_keep_sending_nudge_without_data_that_day_is_delivered(patient):
    DeviceDay.objects.create(patient=patient, day=TODAY - timedelta(days=1))
    nudge = keep_sending(patient)

    assert deliver_nudge(nudge_id=nudge.pk) == Outcome.SENT
    nudge.refresh_from_db()
    assert (nudge.status, nudge.channel, nudge.sent_at) == ("sent", "in_app", NOW)
