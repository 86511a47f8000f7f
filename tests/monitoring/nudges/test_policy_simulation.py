"""The variant policy in a closed loop: choose, see whether the patient acted, choose again.

test_policy.py checks single decisions given a record; here the product's `choose_variant`
and `population_prior` play eight simulated weeks against a tiny population whose response is
known (the simulation of benchmarks/nudges.py, which this also keeps working). No database.
"""

import math
import random

import pytest
from django.conf import settings

from benchmarks.nudges import (
    DUE_KINDS,
    Rails,
    World,
    draw_population,
    load_product,
    simulate,
)

# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


WEEKS = 8


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def play(policy: str, *, seed: int):
    # 12 identical patients who never measure unprompted and act on a care_team reminder
    # 80 % of the time, on plain or benefit 20 %
    world = World(
        spontaneous_logit=-50.0,
        response_logit={"plain": logit(0.2), "benefit": logit(0.2), "care_team": logit(0.8)},
        engagement_sd=0.0,
        variant_sd=0.0,
        preferred_share=0.0,
    )
    patients = draw_population(world, 12, DUE_KINDS, random.Random(seed))
    draws = random.Random(seed + 1)
    days = 7 * WEEKS
    return simulate(
        policy,
        patients,
        [[draws.random() for _ in range(days)] for _ in patients],
        [[draws.random() for _ in range(days)] for _ in patients],
        kinds=DUE_KINDS,
        days=days,
        rails=Rails(
            warmup=settings.VIGIL_NUDGE_WARMUP_DECISIONS,
            min_probability=settings.VIGIL_NUDGE_MIN_PROBABILITY,
            max_probability=settings.VIGIL_NUDGE_MAX_PROBABILITY,
            prior_strength=settings.VIGIL_NUDGE_PRIOR_STRENGTH,
        ),
        rng=random.Random(seed + 2),
        product=load_product(),
    )


def test_thompson_sampling_learns_the_message_that_works_and_beats_uniform_choice():
    # when: eight weeks of one reminder a day under each policy, same patients, same draws
    thompson = play("thompson", seed=7)
    uniform = play("uniform", seed=7)

    # then: every day needed a reminder, so adherence is the share of reminders acted on;
    # uniform choice expects (0.8 + 0.2 + 0.2) / 3 = 40 %, Thompson ~65 % over the 8 weeks
    assert sum(thompson.reminders) == sum(uniform.reminders) == 12 * 7 * WEEKS
    thompson_adherence = sum(thompson.measured) / sum(thompson.scheduled)
    uniform_adherence = sum(uniform.measured) / sum(uniform.scheduled)
    assert 0.30 <= uniform_adherence <= 0.50
    assert thompson_adherence >= uniform_adherence + 0.12
    # by the last four weeks care_team is chosen about as often as the bound allows (0.8:
    # Thompson alone would choose it nearly every time); 336 reminders, sd ~0.02
    late = slice(WEEKS // 2, WEEKS)
    share = sum(thompson.best_arm[late]) / sum(thompson.reminders[late])
    assert 0.70 <= share <= 0.88
