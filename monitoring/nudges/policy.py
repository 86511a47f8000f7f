"""Which message variant to send: Thompson sampling with the rails of just-in-time adaptive
interventions. Pure: no database, no clock; all randomness comes from the `rng` passed in.

Each candidate's success probability ("acted within the window after this variant") has a
Beta(prior_alpha + successes, prior_beta + failures) posterior; the prior is the population's
record (`population_prior`), so a new patient starts from what works for others.

Rails:
- warm-up: the first `warmup` decisions of a patient are plain uniform randomisation;
- bounds: no candidate is chosen with probability below `min_probability` or above
  `max_probability` (the policy keeps exploring and never locks one message in);
- the probability of the choice is reported, so outcomes can be analysed later by inverse
  probability weighting (micro-randomised-trial style).

How the Thompson probability is made exact. Thompson sampling's own probability of choosing a
candidate (the chance its draw is the largest) has no closed form, so it is estimated by
Monte Carlo: THOMPSON_DRAWS joint draws from the posteriors, all from `rng`, and pi_k = the
share of draws that candidate k wins. The decision then uses one of those draws, picked
uniformly at random, so *given the draws* candidate k wins with probability exactly pi_k (and
unconditionally exactly as often as under plain Thompson sampling). The bounds mix pi with the
uniform distribution, as little as needed: p = (1 - eps) * pi + eps / K; with probability eps
the choice is uniform, otherwise it is the picked draw's winner. `Decision.probability` is
p of the chosen candidate: the exact probability of that choice given the Monte Carlo draws,
and a Monte Carlo estimate (standard error below 0.5 / sqrt(THOMPSON_DRAWS)) of the policy's
probability averaged over them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Joint posterior draws per Thompson decision. Granularity of pi is 1/256; ~1.3 µs a draw per
# candidate on this machine, so ~2 ms for five candidates.
THOMPSON_DRAWS = 256


@dataclass(frozen=True)
class Candidate:
    key: str  # variant key
    successes: int  # this patient's record with the variant
    failures: int
    prior_alpha: float  # population prior (Beta), computed by the caller
    prior_beta: float


@dataclass(frozen=True)
class Decision:
    chosen: str
    probability: float  # probability that this policy picks `chosen` given the state
    policy: str  # "warmup" | "thompson"
    samples: dict[str, float]  # the sampled success probabilities (thompson)
    candidates: list[str]


def population_prior(*, successes: int, failures: int, strength: float) -> tuple[float, float]:
    """The Beta prior a patient starts from for one variant, given every other patient's
    record with it (summed).

    A power prior: Beta(1, 1) plus the population's counts discounted by
    a0 = min(1, strength / (successes + failures)), so the population weighs as at most
    `strength` observations of this patient and their own record soon dominates. With no
    population data it is Beta(1, 1); the mean follows the population's success rate.
    """
    observed = successes + failures
    if observed <= 0 or strength <= 0:
        return 1.0, 1.0
    weight = min(1.0, strength / observed)
    return 1.0 + weight * successes, 1.0 + weight * failures


def choose_variant(
    candidates: list[Candidate],
    *,
    decisions_so_far: int,
    rng: random.Random,
    warmup: int,
    min_probability: float,
    max_probability: float,
) -> Decision:
    """Choose one candidate; see the module docstring for the rails and the probability.

    The bounds are applied as far as they can hold: with K candidates every probability
    stays within [min(min_probability, 1/K), max(max_probability, 1/K)] (one candidate is
    chosen with probability 1). The same rng state gives the same decision.
    """
    keys = [candidate.key for candidate in candidates]
    if not keys:
        raise ValueError("choose_variant needs at least one candidate")
    if len(set(keys)) != len(keys):
        raise ValueError("candidate keys must be unique")
    if not 0.0 <= min_probability <= max_probability <= 1.0:
        raise ValueError("need 0 <= min_probability <= max_probability <= 1")
    count = len(keys)
    if decisions_so_far < warmup:
        chosen = keys[rng.randrange(count)]
        return Decision(
            chosen=chosen, probability=1.0 / count, policy="warmup", samples={}, candidates=keys
        )
    draws = [
        [
            rng.betavariate(c.prior_alpha + c.successes, c.prior_beta + c.failures)
            for c in candidates
        ]
        for _ in range(THOMPSON_DRAWS)
    ]
    wins = [0] * count
    for draw in draws:
        wins[_winner(draw)] += 1
    thompson = [won / THOMPSON_DRAWS for won in wins]
    low, high = _feasible_bounds(count, min_probability, max_probability)
    explore = _uniform_share(thompson, low, high)
    probabilities = [(1.0 - explore) * share + explore / count for share in thompson]
    draw = draws[rng.randrange(THOMPSON_DRAWS)]
    index = rng.randrange(count) if rng.random() < explore else _winner(draw)
    return Decision(
        chosen=keys[index],
        # Rounded and clamped only against floating-point noise (0.7999999999999999 for
        # 0.8); the Monte Carlo shares are multiples of 1/THOMPSON_DRAWS anyway.
        probability=min(high, max(low, round(probabilities[index], 12))),
        policy="thompson",
        samples=dict(zip(keys, draw, strict=True)),
        candidates=keys,
    )


def _winner(draw: list[float]) -> int:
    """The index of the largest draw; ties (probability ~0 with continuous draws) go to the
    first candidate."""
    return max(range(len(draw)), key=draw.__getitem__)


def _feasible_bounds(count: int, low: float, high: float) -> tuple[float, float]:
    # K candidates cannot all be at least 1/K + something, nor all at most 1/K - something.
    return min(low, 1.0 / count), max(high, 1.0 / count)


def _uniform_share(thompson: list[float], low: float, high: float) -> float:
    """The smallest eps in [0, 1] with every (1 - eps) * pi_k + eps / K within [low, high].

    Mixing moves every probability straight towards 1/K, which lies within the bounds, so
    each candidate outside them needs a share of its own and the largest share serves all.
    """
    uniform = 1.0 / len(thompson)
    needed = 0.0
    for share in thompson:
        if share < low:
            needed = max(needed, (low - share) / (uniform - share))
        elif share > high:
            needed = max(needed, (share - high) / (share - uniform))
    return min(1.0, needed)
