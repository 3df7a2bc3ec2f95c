"""Simulated battles from known Bradley-Terry strengths with prompt-level random effects.

A test and benchmark helper (pure numpy, explicit seed, no I/O). Each prompt p shifts each
model m's strength by an independent Gaussian offset u[p, m] ~ N(0, prompt_sd^2) (Elo
points), shared by every battle on that prompt (all seeds, all opponents): the
correlation that a prompt-clustered bootstrap must respect. A battle between a and b on
prompt p is a tie with probability `tie_rate`, else a wins with probability
1 / (1 + 10 ** (-(r_a + u[p, a] - r_b - u[p, b]) / 400)).

With prompt effects the BT estimator does not converge to the true strengths but to a
slightly compressed "population" rating (a marginal, not conditional, win probability);
`population_ratings` computes that limit exactly (Gauss-Hermite quadrature + one fit), so
coverage checks compare CIs with the value the estimator actually targets.

Example:
    >>> sim = simulate_battles([1000.0, 1050.0], n_prompts=3, seed=0)
    >>> sim.ia.shape, sim.score.shape
    ((3,), (3,))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Sequence

import numpy as np
from scipy.special import expit

from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, Battles, fit_strengths,
                                             strengths_to_ratings)

NATS = math.log(10.0) / 400.0  # Elo points -> natural-log strength


@dataclass(frozen=True)
class SimBattles:
    """A simulated design plus outcomes.

    `ia[k]`, `ib[k]` model codes, `prompt[k]` prompt code, `seed[k]` seed index of battle
    k; `score` is model_a's score (1, 0 or 0.5), shape (n,) or (runs, n).
    """

    names: tuple[str, ...]
    ia: np.ndarray
    ib: np.ndarray
    prompt: np.ndarray
    seed: np.ndarray
    score: np.ndarray

    def battles(self, run: int | None = None) -> Battles:
        """Encoded battles (one run of a batch with `run`)."""
        score = self.score if run is None else self.score[run]
        return Battles(self.names, self.ia, self.ib, score)

    def winners(self, run: int | None = None) -> np.ndarray:
        """Arena winner labels for one run."""
        score = self.score if run is None else self.score[run]
        return np.where(score == 1.0, "model_a",
                        np.where(score == 0.0, "model_b", "tie")).astype(object)


def all_pairs(n_models: int) -> np.ndarray:
    """(pairs x 2) codes of every unordered pair, in order."""
    return np.array(list(combinations(range(n_models), 2)), dtype=np.int64).reshape(-1, 2)


def simulate_battles(ratings: Sequence[float] | np.ndarray, n_prompts: int, *, seeds: int = 1,
                     prompt_sd: float = 0.0, tie_rate: float = 0.0,
                     pairs: np.ndarray | None = None, runs: int | None = None,
                     seed: int = 0, names: Sequence[str] | None = None) -> SimBattles:
    """Every pair in `pairs` (default all pairs) on every (prompt, seed), BT outcomes.

    Args:
        ratings: true Elo-scale strengths per model.
        n_prompts: prompts (clusters).
        seeds: images per (prompt, model); each seed is one more battle per pair.
        prompt_sd: sd (Elo points) of each model's per-prompt offset.
        tie_rate: probability that a battle is a tie regardless of strengths.
        pairs: (P x 2) model codes to battle on every request; default all pairs.
        runs: None for one data set (score shape (n,)), else that many independent data
            sets on the same design (score shape (runs, n)), drawn at once.
        seed: seed of `np.random.default_rng`.
        names: model names; default m00, m01, ...

    Returns:
        SimBattles; battles ordered by prompt, then seed, then pair.
    """
    r = np.asarray(ratings, dtype=np.float64)
    m = len(r)
    pairs = all_pairs(m) if pairs is None else np.asarray(pairs, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_req = n_prompts * seeds
    prompt = np.repeat(np.arange(n_prompts), seeds * len(pairs))
    seed_idx = np.tile(np.repeat(np.arange(seeds), len(pairs)), n_prompts)
    ia = np.tile(pairs[:, 0], n_req)
    ib = np.tile(pairs[:, 1], n_req)
    shape = (1 if runs is None else runs,)
    offsets = rng.normal(0.0, prompt_sd, shape + (n_prompts, m)) if prompt_sd > 0 else \
        np.zeros(shape + (n_prompts, m))
    strength = r[None, None, :] + offsets
    d = (strength[:, prompt, ia] - strength[:, prompt, ib]) * NATS
    u = rng.random(d.shape)
    score = (u < expit(d)).astype(np.float64)
    if tie_rate > 0:
        score[rng.random(d.shape) < tie_rate] = 0.5
    labels = tuple(names) if names is not None else tuple(f"m{k:02d}" for k in range(m))
    return SimBattles(labels, ia, ib, prompt, seed_idx, score[0] if runs is None else score)


def population_ratings(ratings: Sequence[float] | np.ndarray, *, prompt_sd: float = 0.0,
                       tie_rate: float = 0.0, pairs: np.ndarray | None = None,
                       pair_weights: np.ndarray | None = None,
                       prior: float = DEFAULT_PRIOR, nodes: int = 64) -> np.ndarray:
    """The ratings the BT estimator reaches on infinitely many prompts of this design.

    The expected score of each pair is E[sigmoid(d + e)] with e ~ N(0, 2 prompt_sd^2)
    (Gauss-Hermite quadrature), ties mixed in; fitting BT to those expectations with huge
    counts (so the prior vanishes) gives the estimator's limit. Returned on the Elo scale,
    mean 1000.
    """
    r = np.asarray(ratings, dtype=np.float64)
    m = len(r)
    pairs = all_pairs(m) if pairs is None else np.asarray(pairs, dtype=np.int64)
    w = np.ones(len(pairs)) if pair_weights is None else np.asarray(pair_weights, float)
    x, hw = np.polynomial.hermite_e.hermegauss(nodes)  # probabilists': weight exp(-x^2/2)
    hw = hw / hw.sum()
    d = (r[pairs[:, 0]] - r[pairs[:, 1]]) * NATS
    sd = math.sqrt(2.0) * prompt_sd * NATS
    p = (expit(d[:, None] + sd * x[None, :]) * hw[None, :]).sum(axis=1)
    p = (1.0 - tie_rate) * p + 0.5 * tie_rate
    big = 1e9 * w / w.sum()
    s = fit_strengths(pairs[:, 0], pairs[:, 1], big * p, big * (1.0 - p), m, prior)
    return strengths_to_ratings(s)


# Acceptance studies (tests run them small, benchmarks/bench_statistics.py full size).
GATE_POOL = (1000.0, 1000.0, 1100.0, 900.0)  # baseline, candidate, two common opponents


def coverage_study(runs: int, *, ratings: Sequence[float] = (1000.0, 970.0, 1100.0, 900.0),
                   n_prompts: int = 400, seeds: int = 2, prompt_sd: float = 150.0,
                   tie_rate: float = 0.1, rounds: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, float]:
    """How often the CI of rating[1] - rating[0] covers the estimator's population value,
    with the prompt-clustered and the naive (single-battle) bootstrap, on the same data.

    Returns:
        {"clustered", "naive" (coverage fractions), "target" (population difference),
         "true" (strength difference), "runs", "mean_width_clustered", "mean_width_naive"}.
    """
    from autojudge.ratings.compare import rating_difference

    pop = population_ratings(ratings, prompt_sd=prompt_sd, tie_rate=tie_rate)
    target = float(pop[1] - pop[0])
    sim = simulate_battles(ratings, n_prompts, seeds=seeds, prompt_sd=prompt_sd,
                           tie_rate=tie_rate, runs=runs, seed=seed)
    hits = np.zeros((2, runs), dtype=bool)
    width = np.zeros((2, runs))
    for k in range(runs):
        battles = sim.battles(k)
        for row, clusters in enumerate((sim.prompt, None)):
            res = rating_difference(battles, clusters, 0, 1, rounds=rounds, seed=seed + k,
                                    confidence=confidence)
            hits[row, k] = res.ci_low <= target <= res.ci_high
            width[row, k] = res.ci_high - res.ci_low
    return {"clustered": float(hits[0].mean()), "naive": float(hits[1].mean()),
            "target": target, "true": float(ratings[1] - ratings[0]), "runs": runs,
            "mean_width_clustered": float(width[0].mean()),
            "mean_width_naive": float(width[1].mean())}


def gate_study(regression: float, runs: int, *, n_prompts: int = 400, seeds: int = 1,
               prompt_sd: float = 100.0, tie_rate: float = 0.1, rounds: int = 500,
               confidence: float = 0.95, margin: float = 0.0, min_prompts: int = 10,
               max_ci_width: float = 150.0, seed: int = 0) -> dict[str, float]:
    """Gate outcomes over `runs` simulated runs where the candidate's true strength is
    `regression` Elo points below the baseline's (pool `GATE_POOL`, all pairs).

    Returns:
        {"regression" (fraction flagged), "inconclusive", "pass", "population_diff"}.
    """
    from autojudge.ratings.compare import rating_difference

    ratings = np.array(GATE_POOL)
    ratings[1] -= regression
    sim = simulate_battles(ratings, n_prompts, seeds=seeds, prompt_sd=prompt_sd,
                           tie_rate=tie_rate, runs=runs, seed=seed)
    counts = {"regression": 0, "inconclusive": 0, "pass": 0}
    for k in range(runs):
        res = rating_difference(sim.battles(k), sim.prompt, 0, 1, rounds=rounds,
                                seed=seed + k, confidence=confidence, margin=margin)
        counts[res.decide(min_prompts=min_prompts, max_ci_width=max_ci_width)] += 1
    pop = population_ratings(ratings, prompt_sd=prompt_sd, tie_rate=tie_rate)
    return {**{k: v / runs for k, v in counts.items()},
            "population_diff": float(pop[1] - pop[0]), "runs": runs}


def schedule_study(reps: int, *, n_models: int = 12, spread: float = 800.0,
                   n_prompts: int = 1000, prompt_sd: float = 150.0, tie_rate: float = 0.1,
                   target_ci_width: float = 100.0, batch: int = 32,
                   bootstrap_rounds: int = 100, seed: int = 0) -> dict[str, Any]:
    """Battles the adaptive schedule and all-pairs need to reach `target_ci_width` on the
    same pre-drawn outcomes, over `reps` simulated pools (ratings evenly spread).

    Returns:
        {"ratio" (sum adaptive / sum all-pairs), "adaptive", "all_pairs" (lists),
         "reasons"}.
    """
    from autojudge.scheduling import ScheduleConfig, simulate_schedule

    ratings = np.linspace(1000.0 - spread / 2, 1000.0 + spread / 2, n_models)
    adaptive, full, reasons = [], [], []
    for rep in range(reps):
        sim = simulate_battles(ratings, n_prompts, prompt_sd=prompt_sd, tie_rate=tie_rate,
                               seed=seed + rep)
        table = sim.score.reshape(n_prompts, -1)
        cfg = ScheduleConfig(target_ci_width=target_ci_width, batch=batch,
                             bootstrap_rounds=bootstrap_rounds, seed=seed + rep)
        a = simulate_schedule(table, n_models, n_prompts, 1, cfg, adaptive=True)
        b = simulate_schedule(table, n_models, n_prompts, 1, cfg, adaptive=False)
        adaptive.append(a.n_battles)
        full.append(b.n_battles)
        reasons.append((a.reason, b.reason))
    return {"ratio": float(sum(adaptive) / max(sum(full), 1)), "adaptive": adaptive,
            "all_pairs": full, "reasons": reasons}
