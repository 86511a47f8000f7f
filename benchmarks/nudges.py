"""Nudge policy benchmark: measurement adherence under Thompson sampling, uniform random choice
and one fixed message, in a simulated population whose members respond differently to the
message variants (unknown to the policies).

    .venv/bin/python benchmarks/nudges.py               # 200 patients, 8 weeks, 20 runs
    .venv/bin/python benchmarks/nudges.py --quick       # 100 patients, 8 weeks, 6 runs
    .venv/bin/python benchmarks/nudges.py --kinds all   # five variant kinds instead of three

CPU time is almost all in choose_variant (~0.9 ms a decision with three candidates: it draws
256 joint posterior samples to report its choice probability): ~2 CPU-minutes for the default
run, ~1 minute of wall time on two idle cores (`--jobs`, default 2), ~10 s for --quick.

A pure simulation: no database, no broker, no clock. Thompson sampling is the product's own
`monitoring.nudges.policy.choose_variant` and `population_prior`, with the rails (warm-up,
minimum and maximum choice probability) and the prior strength read from `django.conf.settings`,
so the benchmark runs with whatever the product runs with (environment or defaults), fed the
way `monitoring.nudges.decision.candidates_for` feeds it.

Each run draws a new population and one set of random outcomes per (patient, day), then plays
every policy against the *same* patients and the *same* draws (common random numbers), so the
differences between policies are paired within a run. Runs differ by seed only; the printed
intervals are Student-t intervals over runs. The assumptions of the simulated world are the
`World` defaults below (illustrative numbers, not taken from a trial) and are listed in
benchmarks/README.md next to the figures.

Policies:
  thompson    choose_variant over the patient's own successes/failures per variant, with the
              population prior from every other patient's record so far (population_prior:
              weighing as at most VIGIL_NUDGE_PRIOR_STRENGTH of the patient's own outcomes);
              decisions_so_far = the patient's reminders so far (warm-up)
  uniform     each variant with probability 1/K, every time
  fixed       always the plain reminder
  best-fixed  always the variant with the best population-average response in this run's
              population (known only in hindsight: the best any single message could do)
  oracle      always each patient's own best variant (the ceiling; knows the latent truth)
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script: import the project, not sibling modules of this file by bare name.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

SEED = 20260301
# The variant kinds the product offers for a due measurement: the data migration's defaults
# (monitoring/migrations/0007_default_nudge_variants.py) serve `measurement_due` with plain,
# benefit and care_team messages; supportive ones follow a miss, streak ones a streak.
DUE_KINDS = ("plain", "benefit", "care_team")
ALL_KINDS = ("plain", "benefit", "care_team", "streak", "supportive")
FIXED_VARIANT = "plain"
POLICIES = ("thompson", "uniform", "fixed", "best-fixed", "oracle")


@dataclass(frozen=True)
class World:
    """The simulated population. Probabilities are built on the logit scale.

    Per patient i: engagement u_i ~ N(0, engagement_sd), shared by everything the patient does.
    Measuring on their own before the reminder is due (no nudge sent then, since a measurement
    already taken is never nagged about): P = sigmoid(spontaneous_logit + u_i).
    Measuring within the window after a reminder with variant k, given not measured before:
    P = sigmoid(response_logit[k] + u_i + e_ik + preferred_boost * [k is i's preferred]),
    e_ik ~ N(0, variant_sd); a share `preferred_share` of patients has one preferred variant,
    drawn uniformly. All of it is fixed for the 8 weeks (no habituation, no novelty, no drift)
    and days are independent given the patient.
    """

    spontaneous_logit: float = -0.4  # median patient: 40 % of days measured without a reminder
    response_logit: dict[str, float] = field(
        default_factory=lambda: {
            "plain": 0.0,  # median patient: 50 % act on a plain reminder
            "benefit": 0.2,
            "care_team": 0.3,
            "streak": 0.1,
            "supportive": -0.2,
        }
    )
    engagement_sd: float = 0.8
    variant_sd: float = 0.5
    preferred_share: float = 0.3
    preferred_boost: float = 1.5


@dataclass(frozen=True)
class Rails:
    warmup: int
    min_probability: float
    max_probability: float
    prior_strength: float


@dataclass(frozen=True)
class Product:
    """What the benchmark takes from monitoring.nudges.policy."""

    choose_variant: Callable
    Candidate: type
    population_prior: Callable


@dataclass
class Patient:
    spontaneous: float
    response: dict[str, float]
    best: str


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def draw_population(
    world: World, n: int, kinds: tuple[str, ...], rng: random.Random
) -> list[Patient]:
    patients = []
    for _ in range(n):
        engagement = rng.gauss(0.0, world.engagement_sd)
        preferred = rng.choice(kinds) if rng.random() < world.preferred_share else None
        response = {}
        for kind in kinds:
            logit = world.response_logit[kind] + engagement + rng.gauss(0.0, world.variant_sd)
            if kind == preferred:
                logit += world.preferred_boost
            response[kind] = sigmoid(logit)
        patients.append(
            Patient(
                spontaneous=sigmoid(world.spontaneous_logit + engagement),
                response=response,
                best=max(kinds, key=response.__getitem__),
            )
        )
    return patients


@dataclass
class Outcome:
    measured: list[int]  # per week
    scheduled: list[int]
    reminders: list[int]
    acted: list[int]
    best_arm: list[int]  # reminders that used the patient's own best variant


def simulate(
    policy: str,
    patients: list[Patient],
    spontaneous_draws: list[list[float]],
    response_draws: list[list[float]],
    *,
    kinds: tuple[str, ...],
    days: int,
    rails: Rails,
    rng: random.Random,
    product: Product | None,
) -> Outcome:
    """Play one policy: each day, each patient either measured unprompted or gets one reminder
    of the policy's choice and acts on it or not; the outcome feeds the patient's record and
    the population's. Returns the weekly counts."""
    weeks = (days + 6) // 7
    out = Outcome(*([0] * weeks for _ in range(5)))
    n = len(patients)
    successes = [dict.fromkeys(kinds, 0) for _ in range(n)]
    failures = [dict.fromkeys(kinds, 0) for _ in range(n)]
    decisions = [0] * n
    population_successes = dict.fromkeys(kinds, 0)
    population_failures = dict.fromkeys(kinds, 0)
    best_fixed = max(kinds, key=lambda k: statistics.fmean(p.response[k] for p in patients))
    for day in range(days):
        week = day // 7
        # Everything settled so far (outcome windows close the same day: up to yesterday).
        totals = (dict(population_successes), dict(population_failures))
        for i, patient in enumerate(patients):
            out.scheduled[week] += 1
            if spontaneous_draws[i][day] < patient.spontaneous:
                out.measured[week] += 1
                continue
            if policy == "thompson":
                kind = choose_thompson(
                    product, rails, rng, successes[i], failures[i], totals, decisions[i]
                )
            elif policy == "uniform":
                kind = rng.choice(kinds)
            elif policy == "fixed":
                kind = FIXED_VARIANT
            elif policy == "best-fixed":
                kind = best_fixed
            else:
                kind = patient.best
            decisions[i] += 1
            out.reminders[week] += 1
            out.best_arm[week] += kind == patient.best
            if response_draws[i][day] < patient.response[kind]:
                out.measured[week] += 1
                out.acted[week] += 1
                successes[i][kind] += 1
                population_successes[kind] += 1
            else:
                failures[i][kind] += 1
                population_failures[kind] += 1
    return out


def choose_thompson(
    product: Product,
    rails: Rails,
    rng: random.Random,
    successes: dict[str, int],
    failures: dict[str, int],
    totals: tuple[dict[str, int], dict[str, int]],
    decisions_so_far: int,
) -> str:
    """The product's decision for one patient: their own record per variant, and the prior
    from every other patient's record (the population totals less their own)."""
    candidates = []
    for kind in successes:
        prior_alpha, prior_beta = product.population_prior(
            successes=totals[0][kind] - successes[kind],
            failures=totals[1][kind] - failures[kind],
            strength=rails.prior_strength,
        )
        candidates.append(
            product.Candidate(
                key=kind,
                successes=successes[kind],
                failures=failures[kind],
                prior_alpha=prior_alpha,
                prior_beta=prior_beta,
            )
        )
    decision = product.choose_variant(
        candidates,
        decisions_so_far=decisions_so_far,
        rng=rng,
        warmup=rails.warmup,
        min_probability=rails.min_probability,
        max_probability=rails.max_probability,
    )
    return decision.chosen


def load_product() -> Product:
    from monitoring.nudges import policy

    return Product(
        choose_variant=policy.choose_variant,
        Candidate=policy.Candidate,
        population_prior=policy.population_prior,
    )


@dataclass(frozen=True)
class Job:
    seed: int
    run: int
    world: World
    patients: int
    kinds: tuple[str, ...]
    days: int
    rails: Rails
    policies: tuple[str, ...]


def run_once(job: Job) -> dict[str, Outcome]:
    """One run: a new population and one set of outcome draws, played by every policy."""
    patients = draw_population(
        job.world, job.patients, job.kinds, random.Random(f"{job.seed}:{job.run}:population")
    )
    draws = random.Random(f"{job.seed}:{job.run}:outcomes")
    spontaneous_draws = [[draws.random() for _ in range(job.days)] for _ in patients]
    response_draws = [[draws.random() for _ in range(job.days)] for _ in patients]
    product = load_product() if "thompson" in job.policies else None
    return {
        policy: simulate(
            policy,
            patients,
            spontaneous_draws,
            response_draws,
            kinds=job.kinds,
            days=job.days,
            rails=job.rails,
            rng=random.Random(f"{job.seed}:{job.run}:{policy}"),
            product=product,
        )
        for policy in job.policies
    }


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile (p > 1/2) by bisection on the CDF, the density integrated by Simpson's
    rule; the standard library has no t distribution and numpy/scipy are not dependencies."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        total = density(0.0) + density(x)
        total += sum((4 if j % 2 else 2) * density(j * h) for j in range(1, steps))
        return 0.5 + total * h / 3

    low, high = 0.0, 1000.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < p else (low, middle)
    return (low + high) / 2


def interval(values: list[float], t: float) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    half = t * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, mean - half, mean + half


def percent(triple: tuple[float, float, float], signed: bool = False) -> str:
    mean, low, high = (100 * v for v in triple)
    sign = "+" if signed else ""
    return f"{mean:{sign}6.1f} [{low:{sign}6.1f}, {high:{sign}6.1f}]"


def read_rails() -> Rails:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    # Importing monitoring.nudges (the package holding policy.py) loads the models, which
    # needs the app registry; no database connection is opened.
    django.setup()
    from django.conf import settings

    return Rails(
        warmup=settings.VIGIL_NUDGE_WARMUP_DECISIONS,
        min_probability=settings.VIGIL_NUDGE_MIN_PROBABILITY,
        max_probability=settings.VIGIL_NUDGE_MAX_PROBABILITY,
        prior_strength=settings.VIGIL_NUDGE_PRIOR_STRENGTH,
    )


def report(results: list[dict[str, Outcome]], policies: tuple[str, ...], weeks: int) -> list[str]:
    runs = len(results)
    t = t_quantile(0.975, runs - 1) if runs > 1 else math.nan

    def adherence(outcome: Outcome, week: int | None = None) -> float:
        if week is None:
            return sum(outcome.measured) / sum(outcome.scheduled)
        return outcome.measured[week] / outcome.scheduled[week]

    def response(outcome: Outcome) -> float:
        return sum(outcome.acted) / sum(outcome.reminders)

    def best_share(outcome: Outcome) -> float:
        return outcome.best_arm[-1] / outcome.reminders[-1]

    lines = [
        f"{'policy':<11} {'adherence, 8 weeks':>24} {'acted on reminder':>24}"
        f" {'own best, week 8':>24}"
    ]
    for policy in policies:
        row = [r[policy] for r in results]
        lines.append(
            f"{policy:<11} {percent(interval([adherence(o) for o in row], t)):>24}"
            f" {percent(interval([response(o) for o in row], t)):>24}"
            f" {percent(interval([best_share(o) for o in row], t)):>24}"
        )
    lines += ["", "adherence by week (mean over runs, %)"]
    lines.append(f"{'policy':<11} " + " ".join(f"{'wk' + str(w + 1):>6}" for w in range(weeks)))
    for policy in policies:
        means = [
            100 * statistics.fmean(adherence(r[policy], w) for r in results) for w in range(weeks)
        ]
        lines.append(f"{policy:<11} " + " ".join(f"{m:6.1f}" for m in means))
    if "thompson" in policies:
        lines += ["", "differences in adherence, paired within run (percentage points)"]
        lines.append(f"{'':<24} {'8 weeks':>24} {'week 1':>24} {'week 8':>24}")
        for other in policies:
            if other == "thompson":
                continue
            cells = []
            for week in (None, 0, weeks - 1):
                diffs = [
                    adherence(r["thompson"], week) - adherence(r[other], week) for r in results
                ]
                cells.append(f"{percent(interval(diffs, t), signed=True):>24}")
            lines.append(f"{'thompson − ' + other:<24} " + " ".join(cells))
    return lines


def describe_population(job: Job) -> list[str]:
    """The latent truth of the first run's population, for the reader (the policies never
    see it)."""
    patients = draw_population(
        job.world, job.patients, job.kinds, random.Random(f"{job.seed}:{job.run}:population")
    )
    means = {k: statistics.fmean(p.response[k] for p in patients) for k in job.kinds}
    best = {k: sum(p.best == k for p in patients) / len(patients) for k in job.kinds}
    spontaneous = statistics.fmean(p.spontaneous for p in patients)
    lift = statistics.fmean(p.response[p.best] - p.response[FIXED_VARIANT] for p in patients)
    lines = [
        "latent truth of run 0 (unknown to the policies): per variant, mean P(act | reminder)\n"
        "  / share of patients whose best variant it is",
        "  " + "  ".join(f"{k} {100 * means[k]:.1f} % / {100 * best[k]:.0f} %" for k in job.kinds),
        f"  mean P(measure with no reminder) {100 * spontaneous:.1f} %; a patient's own best"
        f" variant beats {FIXED_VARIANT} by {100 * lift:.1f} points on average",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true", help="100 patients, 6 runs")
    parser.add_argument(
        "--kinds",
        choices=["due", "all"],
        default="due",
        help="due: the kinds the product offers for a due measurement (plain, benefit,"
        " care_team); all: the five variant kinds, as if each could serve the reminder",
    )
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    if args.quick:
        args.patients, args.runs = 100, 6
    policies = tuple(p.strip() for p in args.policies.split(",") if p.strip())
    unknown = set(policies) - set(POLICIES)
    if unknown or not policies:
        parser.error(f"policies are among {', '.join(POLICIES)}")
    if args.runs < 2:
        parser.error("an interval needs at least 2 runs")
    rails = read_rails()
    jobs = [
        Job(
            seed=args.seed,
            run=run,
            world=World(),
            patients=args.patients,
            kinds=DUE_KINDS if args.kinds == "due" else ALL_KINDS,
            days=7 * args.weeks,
            rails=rails,
            policies=policies,
        )
        for run in range(args.runs)
    ]
    started = time.perf_counter()
    # fork: the children inherit the set-up Django app registry.
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = pool.map(run_once, jobs, chunksize=1)
    elapsed = time.perf_counter() - started

    print(
        f"Nudge policy simulation: {args.patients} patients x {7 * args.weeks} days, one"
        f" scheduled measurement a day,\nat most one reminder; variants"
        f" {', '.join(jobs[0].kinds)}; {args.runs} runs, seed {args.seed}"
    )
    print(
        f"rails (settings): warm-up {rails.warmup} decisions, choice probability within"
        f" [{rails.min_probability}, {rails.max_probability}], prior strength"
        f" {rails.prior_strength}"
    )
    print(*describe_population(jobs[0]), sep="\n")
    print(
        "\nmean over runs [95 % t-interval], %. adherence = measured days / scheduled days;\n"
        "acted on reminder = measured after a reminder / reminders sent; own best = share of\n"
        "week-8 reminders that used the patient's own best variant"
    )
    print(*report(results, policies, args.weeks), sep="\n")
    print(
        f"\n{elapsed:.0f} s with {args.jobs} processes"
        f" (load average {os.getloadavg()[0]:.2f} at the end)"
    )


if __name__ == "__main__":
    main()
