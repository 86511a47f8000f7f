"""The variant policy, pure: Thompson sampling with warm-up, probability bounds and the exact
probability of each choice. Seeded generators make every expectation deterministic."""

import random
from collections import Counter

import pytest

from monitoring.nudges.policy import (
    THOMPSON_DRAWS,
    Candidate,
    choose_variant,
    population_prior,
)

# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


RAILS = {"warmup": 5, "min_probability": 0.1, "max_probability": 0.8}
KEYS = ["benefit", "care_team", "plain"]


def candidates(*records: tuple[int, int], prior: tuple[float, float] = (1.0, 1.0)):
    """One candidate per key of KEYS with these (successes, failures)."""
    return [
        Candidate(key=key, successes=s, failures=f, prior_alpha=prior[0], prior_beta=prior[1])
        for key, (s, f) in zip(KEYS, records, strict=True)
    ]


def decide(options, *, seed: int, decisions_so_far: int = 5, **rails):
    return choose_variant(
        options, decisions_so_far=decisions_so_far, rng=random.Random(seed), **(RAILS | rails)
    )


# --- Warm-up ------------------------------------------------------------------------------


def test_during_warm_up_every_candidate_is_equally_likely_whatever_the_record():
    # given: a record that makes 'benefit' look far better
    options = candidates((90, 10), (10, 90), (10, 90))

    # when: 3000 decisions of patients still in warm-up (4 decisions so far, warm-up 5)
    decisions = [decide(options, seed=seed, decisions_so_far=4) for seed in range(3000)]

    # then: uniform choice, reported as such, with no posterior samples
    assert {d.policy for d in decisions} == {"warmup"}
    assert {d.probability for d in decisions} == {1 / 3}
    assert all(d.samples == {} and d.candidates == KEYS for d in decisions)
    counts = Counter(d.chosen for d in decisions)
    assert set(counts) == set(KEYS)
    # 1000 expected each; the standard deviation is 26
    assert all(900 <= count <= 1100 for count in counts.values())


def test_warm_up_ends_after_the_configured_number_of_decisions():
    options = candidates((0, 0), (0, 0), (0, 0))

    assert decide(options, seed=1, decisions_so_far=4).policy == "warmup"
    assert decide(options, seed=1, decisions_so_far=5).policy == "thompson"
    assert decide(options, seed=1, decisions_so_far=0, warmup=0).policy == "thompson"


# --- Bounds -------------------------------------------------------------------------------


def test_a_dominant_variant_is_chosen_with_at_most_the_maximum_probability():
    # given: 'benefit' always worked, the others never did
    options = candidates((1000, 0), (0, 1000), (0, 1000))

    # when
    decisions = [decide(options, seed=seed) for seed in range(400)]

    # then: Thompson alone would choose 'benefit' every time; mixing in the uniform choice
    # (eps = 0.3) holds it at 0.8 and each other variant at 0.1
    assert {d.policy for d in decisions} == {"thompson"}
    assert {(d.chosen, d.probability) for d in decisions} == {
        ("benefit", 0.8),
        ("care_team", 0.1),
        ("plain", 0.1),
    }
    assert 300 <= Counter(d.chosen for d in decisions)["benefit"] <= 340  # 320 expected


def test_no_probability_leaves_the_bounds_whatever_the_records():
    generator = random.Random(2026)
    for seed in range(300):
        options = candidates(*[(generator.randrange(50), generator.randrange(50)) for _ in KEYS])
        decision = decide(options, seed=seed)
        assert 0.1 <= decision.probability <= 0.8


def test_bounds_that_cannot_all_hold_give_way_to_the_uniform_share():
    # twelve candidates cannot each have 0.1; a lone candidate is always chosen
    twelve = [Candidate(f"v{i}", 0, 0, 1.0, 1.0) for i in range(12)]
    lone = [Candidate("only", 0, 50, 1.0, 1.0)]

    assert 1 / 12 <= decide(twelve, seed=3).probability <= 0.8
    assert decide(lone, seed=3).probability == 1.0
    assert decide(lone, seed=3, decisions_so_far=0).probability == 1.0


# --- The reported probability -------------------------------------------------------------


def test_the_probability_of_a_thompson_choice_is_the_share_of_draws_its_variant_wins():
    # given: no data, so no candidate's share is near the bounds (no uniform mixing)
    options = candidates((0, 0), (0, 0), (0, 0))

    # when
    decision = decide(options, seed=7)

    # then: the same generator's first THOMPSON_DRAWS joint draws, counted by winner
    generator = random.Random(7)
    draws = [[generator.betavariate(1.0, 1.0) for _ in KEYS] for _ in range(THOMPSON_DRAWS)]
    winners = Counter(KEYS[max(range(3), key=draw.__getitem__)] for draw in draws)
    assert decision.probability == winners[decision.chosen] / THOMPSON_DRAWS
    # the logged samples are one of those draws, and the chosen variant won it
    assert list(decision.samples.values()) in draws
    assert decision.chosen == max(decision.samples, key=decision.samples.get)


def test_weighting_each_choice_by_one_over_its_probability_counts_every_decision_once():
    # Inverse probability weighting is unbiased only with the true choice probabilities:
    # for each variant k, the mean over decisions of [chosen = k] / probability is 1.
    options = candidates((6, 4), (4, 6), (2, 2))
    decisions = [decide(options, seed=seed) for seed in range(2000)]

    for key in KEYS:
        weighted = sum(1 / d.probability for d in decisions if d.chosen == key) / len(decisions)
        assert weighted == pytest.approx(1.0, abs=0.1)


def test_the_same_seed_gives_the_same_decision():
    options = candidates((3, 2), (1, 4), (2, 2))

    assert decide(options, seed=42) == decide(options, seed=42)
    assert decide(options, seed=42).samples != decide(options, seed=43).samples
    assert decide(options, seed=42, decisions_so_far=0) == decide(
        options, seed=42, decisions_so_far=0
    )


# --- Learning -----------------------------------------------------------------------------


def test_with_plenty_of_data_the_better_variant_is_chosen_most_of_the_time():
    # given: 100 outcomes each; 'benefit' works 60 % of the time, the others 45 % and 30 %
    options = candidates((60, 40), (45, 55), (30, 70))

    # when
    decisions = [decide(options, seed=seed) for seed in range(500)]

    # then: ~98 % of posterior draws favour 'benefit', held to at most 0.8 by the bound
    chosen = Counter(d.chosen for d in decisions)
    assert chosen["benefit"] >= 360  # 72 %; expected ~79 %
    assert chosen["benefit"] > 4 * max(chosen["care_team"], chosen["plain"])
    assert all(d.probability <= 0.8 for d in decisions)


def test_the_population_prior_steers_a_new_patients_first_thompson_choices():
    # given: a patient with no record; others acted on 'care_team' far more often
    options = [
        Candidate("benefit", 0, 0, *population_prior(successes=20, failures=80, strength=10)),
        Candidate("care_team", 0, 0, *population_prior(successes=80, failures=20, strength=10)),
        Candidate("plain", 0, 0, *population_prior(successes=20, failures=80, strength=10)),
    ]

    decisions = [decide(options, seed=seed) for seed in range(300)]

    assert Counter(d.chosen for d in decisions)["care_team"] >= 180  # 60 %


# --- The population prior -----------------------------------------------------------------


def test_the_population_prior_without_data_is_uniform():
    assert population_prior(successes=0, failures=0, strength=10) == (1.0, 1.0)


def test_a_small_population_record_counts_in_full():
    assert population_prior(successes=3, failures=1, strength=10) == (4.0, 2.0)


def test_a_large_population_record_is_shrunk_to_the_prior_strength():
    # 1000 outcomes weigh as 10: Beta(1 + 3, 1 + 7), mean 1/3 like the population's 0.3
    assert population_prior(successes=300, failures=700, strength=10) == (4.0, 8.0)


# --- Refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "rails"),
    [
        ([], {}),
        ([Candidate("a", 0, 0, 1, 1), Candidate("a", 0, 0, 1, 1)], {}),
        ([Candidate("a", 0, 0, 1, 1)], {"min_probability": 0.9, "max_probability": 0.8}),
    ],
    ids=["no candidates", "duplicate keys", "minimum above maximum"],
)
def test_choose_variant_refuses_what_it_cannot_decide(options, rails):
    with pytest.raises(ValueError):
        decide(options, seed=1, **rails)
