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
from typing import Sequence

import numpy as np
from scipy.special import expit

from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, ELO_PER_NAT, Battles, fit_strengths,
                                             strengths_to_ratings)

NATS = 1.0 / ELO_PER_NAT  # Elo points -> natural-log strength


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


def _design(pairs: np.ndarray, n_prompts: int, seeds: int) -> tuple[np.ndarray, ...]:
    """(prompt, seed, model_a, model_b) codes of every pair on every (prompt, seed),
    ordered by prompt, then seed, then pair."""
    n_req = n_prompts * seeds
    prompt = np.repeat(np.arange(n_prompts), seeds * len(pairs))
    seed_idx = np.tile(np.repeat(np.arange(seeds), len(pairs)), n_prompts)
    return prompt, seed_idx, np.tile(pairs[:, 0], n_req), np.tile(pairs[:, 1], n_req)


def simulate_battles(ratings: Sequence[float] | np.ndarray, n_prompts: int, *, seeds: int = 1,
                     prompt_sd: float = 0.0, tie_rate: float = 0.0,
                     pairs: np.ndarray | None = None, runs: int | None = None,
                     seed: int = 0, names: Sequence[str] | None = None,
                     offsets: np.ndarray | None = None) -> SimBattles:
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
        offsets: per-prompt model offsets (Elo) to use instead of drawing them, shape
            (runs or 1, n_prompts, models): e.g. several judges of the same images.

    Returns:
        SimBattles; battles ordered by prompt, then seed, then pair.
    """
    r = np.asarray(ratings, dtype=np.float64)
    m = len(r)
    pairs = all_pairs(m) if pairs is None else np.asarray(pairs, dtype=np.int64)
    rng = np.random.default_rng(seed)
    prompt, seed_idx, ia, ib = _design(pairs, n_prompts, seeds)
    shape = (1 if runs is None else runs,)
    if offsets is None:
        offsets = rng.normal(0.0, prompt_sd, shape + (n_prompts, m)) if prompt_sd > 0 \
            else np.zeros(shape + (n_prompts, m))
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


@dataclass(frozen=True)
class SimScores:
    """A pointwise judge's battles: `battles` plus each battle's two image scores and seed
    (score_a / score_b with shape (n,) or (runs, n))."""

    battles: SimBattles
    score_a: np.ndarray
    score_b: np.ndarray


def simulate_scores(ratings: Sequence[float] | np.ndarray, n_prompts: int, *, seeds: int = 1,
                    prompt_sd: float = 0.0, tie_margin: float = 0.0,
                    runs: int | None = None, seed: int = 0) -> SimScores:
    """A pointwise judge: every image gets score = strength + prompt offset + noise, and
    every pair battles on every (prompt, seed), the higher score winning (a tie within
    `tie_margin`). With standard Gumbel noise the score difference is logistic, so the
    battles follow Bradley-Terry exactly: strengths are `ratings` (Elo) in nats.

    Returns:
        SimScores; scores are in nats (1 score unit = 400 / ln 10 Elo).
    """
    r = np.asarray(ratings, dtype=np.float64) * NATS
    m = len(r)
    pairs = all_pairs(m)
    rng = np.random.default_rng(seed)
    shape = (1 if runs is None else runs,)
    offsets = rng.normal(0.0, prompt_sd * NATS, shape + (n_prompts, m)) if prompt_sd > 0 \
        else np.zeros(shape + (n_prompts, m))
    image = r + offsets[:, :, None, :] + rng.gumbel(size=shape + (n_prompts, seeds, m))
    prompt = np.repeat(np.arange(n_prompts), seeds * len(pairs))
    seed_idx = np.tile(np.repeat(np.arange(seeds), len(pairs)), n_prompts)
    ia = np.tile(pairs[:, 0], n_prompts * seeds)
    ib = np.tile(pairs[:, 1], n_prompts * seeds)
    sa, sb = image[:, prompt, seed_idx, ia], image[:, prompt, seed_idx, ib]
    delta = sa - sb
    score = np.where(delta > tie_margin, 1.0, np.where(delta < -tie_margin, 0.0, 0.5))
    names = tuple(f"m{k:02d}" for k in range(m))
    one = runs is None
    sim = SimBattles(names, ia, ib, prompt, seed_idx, score[0] if one else score)
    return SimScores(sim, sa[0] if one else sa, sb[0] if one else sb)


def simulate_win_matrix(win: np.ndarray, n_prompts: int, *, seeds: int = 1,
                        tie_rate: float = 0.0, pairs: np.ndarray | None = None,
                        runs: int | None = None, seed: int = 0) -> SimBattles:
    """Every pair on every (prompt, seed), model i beating j with probability
    `win[i, j]` (a tie with probability `tie_rate` first). Any matrix with
    win[i, j] + win[j, i] = 1 works, including intransitive judges that no rating
    vector describes.

    Example:
        >>> w = np.array([[0.5, 0.0], [1.0, 0.5]])
        >>> simulate_win_matrix(w, 4, seed=0).score.tolist()
        [0.0, 0.0, 0.0, 0.0]
    """
    win = np.asarray(win, dtype=np.float64)
    m = len(win)
    pairs = all_pairs(m) if pairs is None else np.asarray(pairs, dtype=np.int64)
    rng = np.random.default_rng(seed)
    prompt, seed_idx, ia, ib = _design(pairs, n_prompts, seeds)
    shape = (1 if runs is None else runs, len(ia))
    score = (rng.random(shape) < win[ia, ib][None, :]).astype(np.float64)
    if tie_rate > 0:
        score[rng.random(shape) < tie_rate] = 0.5
    names = tuple(f"m{k:02d}" for k in range(m))
    return SimBattles(names, ia, ib, prompt, seed_idx, score[0] if runs is None else score)
