"""Nudge outcomes into the patient's record (monitoring/nudges/outcomes.py). Slots are made
directly; time is frozen and passed explicitly."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from datetime import timedelta

import pytest

from monitoring.models import Nudge, VariantPosterior
from monitoring.nudges.outcomes import settle_nudge_outcomes
from tests.factories import (
    ReadingFactory,
)
from tests.monitoring.nudges.helpers import NOW, clock, patient, remind, weighing  # noqa: F401

# --- Outcomes -----------------------------------------------------------------------------


# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


def delivered(nudge):
    Nudge.objects.filter(pk=nudge.pk).update(status="sent", sent_at=nudge.created_at)
    return nudge


def weigh_for(slot, *, at):
    reading = ReadingFactory(patient=slot.patient, measured_at=at)
    slot.status, slot.fulfilled_by = "done", reading
    slot.save()
    return reading


@pytest.mark.django_db
def test_settling_counts_an_acted_on_nudge_once_as_a_success(patient):
    # given: a delivered reminder, and the weighing 20 minutes later
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))
    reading = weigh_for(slot, at=NOW + timedelta(minutes=20))

    # when: the window closes, and a second sweep runs
    first = settle_nudge_outcomes(now=slot.closes_at)
    second = settle_nudge_outcomes(now=slot.closes_at + timedelta(minutes=5))

    # then
    assert (first, second) == (1, 0)
    nudge.refresh_from_db()
    assert (nudge.acted, nudge.acted_at) == (True, reading.measured_at)
    assert list(
        VariantPosterior.objects.values_list("patient", "variant", "successes", "failures")
    ) == [(patient.pk, nudge.variant_id, 1, 0)]


@pytest.mark.django_db
def test_settling_counts_an_ignored_nudge_once_as_a_failure(patient):
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))

    assert settle_nudge_outcomes(now=slot.closes_at) == 1
    assert settle_nudge_outcomes(now=slot.closes_at) == 0

    nudge.refresh_from_db()
    assert (nudge.acted, nudge.acted_at) == (False, None)
    assert list(
        VariantPosterior.objects.values_list("patient", "variant", "successes", "failures")
    ) == [(patient.pk, nudge.variant_id, 0, 1)]


@pytest.mark.django_db
def test_outcomes_add_to_the_patients_existing_record(patient):
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))
    VariantPosterior.objects.create(patient=patient, variant=nudge.variant, successes=4, failures=2)
    weigh_for(slot, at=NOW + timedelta(minutes=5))

    settle_nudge_outcomes(now=slot.closes_at)

    posterior = VariantPosterior.objects.get(patient=patient, variant=nudge.variant)
    assert (posterior.successes, posterior.failures) == (5, 2)


@pytest.mark.django_db
def test_nothing_settles_before_the_window_closes(patient):
    slot = weighing(patient)
    nudge = delivered(remind(patient, slot))

    assert settle_nudge_outcomes(now=slot.closes_at - timedelta(seconds=1)) == 0

    nudge.refresh_from_db()
    assert nudge.acted is None
    assert VariantPosterior.objects.count() == 0


@pytest.mark.django_db
def test_a_nudge_that_never_reached_the_patient_teaches_nothing(patient):
    # given: delivery still pending when the window closed; the patient weighed anyway
    slot = weighing(patient)
    nudge = remind(patient, slot)
    weigh_for(slot, at=NOW + timedelta(minutes=20))

    assert settle_nudge_outcomes(now=slot.closes_at) == 1

    nudge.refresh_from_db()
    assert nudge.acted is True
    assert VariantPosterior.objects.count() == 0
