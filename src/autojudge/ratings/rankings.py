"""K-wise battles: one judge call (or arena vote) ranks K >= 2 images of one prompt.

Pure numpy, no I/O, explicit seeds. A ranking is `models` (K distinct names) and `ranks`
(K entries): an int >= 1 (1 = best; equal ints = tie; need not be dense) or None
(unranked: below every ranked entry, unordered among themselves). Best of four is
`[1, None, None, None]`; a full order with a tie is `[1, 2, 2, 4]`.

Ratings come from **rank breaking** (docs/statistics.md, "K-wise rankings
(Plackett-Luce)"): each ranking becomes the pairs it orders (full breaking: every pair of
ranked entries, the lower rank wins, equal ranks tie; every ranked entry beats every
unranked one; no pair between two unranked), fitted by the Bradley-Terry machinery
(`rate_battles`) as a composite likelihood. Under Plackett-Luce every broken pair has the
BT marginal, so the fit is unbiased; the pairs of one ranking are dependent, so the
bootstrap resamples whole prompts, and a ranking without a prompt id is a cluster of its
own (never each of its pairs alone). `fit_plackett_luce` is the exact PL likelihood, for
untied rankings, to compare with.

Example:
    >>> b = break_rankings([["a", "b", "c"]], [[1, None, None]])
    >>> list(zip(b.model_a, b.model_b, b.winner))
    [('a', 'b', 'model_a'), ('a', 'c', 'model_a')]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.special import expit, logsumexp

from autojudge.errors import AutojudgeError
from autojudge.ratings.boards import RatingConfig, rate_battles
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, ELO_PER_NAT, as_list,
                                             strengths_to_ratings)

OUTCOME_LABELS = np.array(["model_a", "model_b", "tie"], dtype=object)


@dataclass(frozen=True)
class RankingCluster:
    """Cluster id of a ranking that has no prompt id: that ranking alone. A distinct type,
    so it never collides with a caller's prompt ids."""

    row: int


@dataclass(frozen=True)
class BrokenPairs:
    """Pairs broken out of rankings, in the Arena convention `rate_battles` reads.

    `model_a[k]` is listed before `model_b[k]` in ranking `source_row[k]`; `clusters[k]`
    is that ranking's prompt id, or `RankingCluster(row)` when it has none.
    """

    model_a: np.ndarray
    model_b: np.ndarray
    winner: np.ndarray
    clusters: np.ndarray
    source_row: np.ndarray

    def __len__(self) -> int:
        return len(self.winner)


def _row_problem(models: Any, ranks: Any) -> str | None:
    """What is wrong with one ranking, or None."""
    if isinstance(models, str) or isinstance(ranks, str):
        return "models and ranks must be lists, not strings"
    models, ranks = as_list(models), as_list(ranks)
    if len(models) < 2:
        return f"{len(models)} model(s); a ranking needs at least 2"
    if len(ranks) != len(models):
        return f"{len(models)} models but {len(ranks)} ranks; give one rank per model"
    seen = set()
    for name in models:
        if not isinstance(name, str) or not name:
            return f"model name {name!r} is not a non-empty string"
        if name in seen:
            return f"model {name!r} appears twice; the K models must be distinct"
        seen.add(name)
    for name, r in zip(models, ranks):
        if r is None:
            continue
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer)) or r < 1:
            return (f"rank {r!r} of model {name!r} is not an integer >= 1 "
                    "(1 = best, None = unranked)")
    if all(r is None for r in ranks):
        return "no ranked entry (all None); rank at least one model"
    return None


def validate_rankings(models: Sequence[Sequence[str]], ranks: Sequence[Sequence[Any]]) -> None:
    """Raise AutojudgeError naming the first bad ranking (row index) and what is wrong.

    Example:
        >>> validate_rankings([["a", "a"]], [[1, 2]])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        autojudge.errors.AutojudgeError: bad ranking at row 0: model 'a' appears twice; ...
    """
    models, ranks = as_list(models), as_list(ranks)
    if len(models) != len(ranks):
        raise AutojudgeError(f"rankings: {len(models)} model lists but {len(ranks)} rank "
                             "lists; pass one of each per ranking")
    for row, (m, r) in enumerate(zip(models, ranks)):
        why = _row_problem(m, r)
        if why is not None:
            raise AutojudgeError(f"bad ranking at row {row}: {why}")


def _by_size(models: list, ranks: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Validated rows grouped by K: (row indices, names (n, K), ranks (n, K) float with
    inf for unranked), so breaking is vectorised per K."""
    sizes = np.array([len(m) for m in models], dtype=np.int64)
    groups = []
    for k in np.unique(sizes):
        rows = np.flatnonzero(sizes == k)
        names = np.empty((len(rows), int(k)), dtype=object)
        names[:] = [list(models[r]) for r in rows]
        rk = np.array([[math.inf if v is None else float(v) for v in ranks[r]] for r in rows])
        groups.append((rows, names, rk))
    return groups


def _pair_outcomes(rk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every listed pair (i < j) of each row: (i, j, ordered mask, outcome 0 a / 1 b / 2
    tie). A pair is ordered unless both of its entries are unranked."""
    i, j = np.triu_indices(rk.shape[1], 1)
    ra, rb = rk[:, i], rk[:, j]
    ordered = np.isfinite(ra) | np.isfinite(rb)
    outcome = np.where(ra < rb, 0, np.where(ra > rb, 1, 2))
    return i, j, ordered, outcome


def _cluster_column(clusters: Sequence[Any] | np.ndarray | None, n: int) -> np.ndarray:
    """One cluster id per ranking; a missing one (None, NaN) becomes RankingCluster(row)."""
    out = np.empty(n, dtype=object)
    if clusters is None:
        out[:] = [RankingCluster(r) for r in range(n)]
        return out
    values = as_list(clusters)
    if len(values) != n:
        raise AutojudgeError(f"rankings: clusters has {len(values)} entries but there are "
                             f"{n} rankings; pass one prompt id per ranking")
    out[:] = [RankingCluster(r) if v is None or (isinstance(v, float) and math.isnan(v))
              else v for r, v in enumerate(values)]
    return out


def _assemble(parts: list[tuple], clusters: np.ndarray) -> BrokenPairs:
    """Concatenate per-K parts (rows, a, b, outcome), ordered by source row."""
    if not parts:
        empty = np.zeros(0, dtype=object)
        return BrokenPairs(empty, empty, empty, empty, np.zeros(0, dtype=np.int64))
    rows, a, b, outcome = (np.concatenate(x) for x in zip(*parts))
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    return BrokenPairs(a[order], b[order], OUTCOME_LABELS[outcome[order]], clusters[rows],
                       rows.astype(np.int64))


def break_rankings(models: Sequence[Sequence[str]], ranks: Sequence[Sequence[Any]], *,
                   clusters: Sequence[Any] | np.ndarray | None = None) -> BrokenPairs:
    """Full rank breaking: the pairs each ranking orders, in its listing order.

    Args:
        models: per ranking, its K distinct model names (the order shown, if any).
        ranks: per ranking, K ranks (int >= 1, 1 best, equal = tie) or None (unranked).
        clusters: per ranking, its prompt id; None (or a missing id) makes each ranking
            a cluster of its own.

    Raises:
        AutojudgeError: naming the first bad ranking's row and what is wrong.
    """
    models, ranks = as_list(models), as_list(ranks)
    validate_rankings(models, ranks)
    column = _cluster_column(clusters, len(models))
    parts = []
    for rows, names, rk in _by_size(models, ranks):
        i, j, ordered, outcome = _pair_outcomes(rk)
        src = np.broadcast_to(rows[:, None], ordered.shape)
        parts.append((src[ordered], names[:, i][ordered], names[:, j][ordered],
                      outcome[ordered]))
    return _assemble(parts, column)


def consensus_pairs(models: Sequence[Sequence[str]], first: Sequence[Sequence[Any]],
                    second: Sequence[Sequence[Any]], *,
                    clusters: Sequence[Any] | np.ndarray | None = None) -> BrokenPairs:
    """The K-wise counterpart of swap-debiasing: two calls rank the same K images shown
    in different orders; a pair keeps its verdict where both calls give the same one and
    is a tie where they differ. Only pairs both calls order are kept (best-of-K calls
    that pick different images tie those two and say nothing about the rest).

    `first[r]` and `second[r]` rank the models of `models[r]`, in that listing order.
    """
    models, first, second = as_list(models), as_list(first), as_list(second)
    validate_rankings(models, first)
    validate_rankings(models, second)
    column = _cluster_column(clusters, len(models))
    one, two = _by_size(models, first), _by_size(models, second)
    parts = []
    for (rows, names, rk1), (_, _, rk2) in zip(one, two):
        i, j, ok1, out1 = _pair_outcomes(rk1)
        _, _, ok2, out2 = _pair_outcomes(rk2)
        both = ok1 & ok2
        outcome = np.where(out1 == out2, out1, 2)
        src = np.broadcast_to(rows[:, None], both.shape)
        parts.append((src[both], names[:, i][both], names[:, j][both], outcome[both]))
    return _assemble(parts, column)


def rate_rankings(models: Sequence[Sequence[str]], ranks: Sequence[Sequence[Any]],
                  clusters: Sequence[Any] | np.ndarray | None = None, *,
                  model_a: Sequence[str] = (), model_b: Sequence[str] = (),
                  winner: Sequence[str] = (), pair_clusters: Sequence[Any] | None = None,
                  config: RatingConfig = RatingConfig(), names: Sequence[str] | None = None,
                  weight: Sequence[float] | None = None,
                  pair_weight: Sequence[float] | None = None) -> list[dict]:
    """One board from K-wise rankings and (optionally) pairwise battles, in one fit.

    Rankings are broken (`break_rankings`) and appended to the pairwise columns; the
    board's battle counts count broken pairs. `weight` (per ranking) scales all of its
    pairs; `pair_weight` is per pairwise battle; when either is given the other is 1.
    Pairwise battles without `pair_clusters` are each a cluster of their own, as in
    `rate_battles`; a ranking without a prompt id is one cluster.
    """
    broken = break_rankings(models, ranks, clusters=clusters)
    pa, pb, pw = as_list(model_a), as_list(model_b), as_list(winner)
    pc = [None] * len(pa) if pair_clusters is None else as_list(pair_clusters)
    if len(pc) != len(pa):
        raise AutojudgeError(f"pair_clusters has {len(pc)} entries but there are {len(pa)} "
                             "pairwise battles; pass one prompt id per battle")
    w = None
    if weight is not None or pair_weight is not None:
        wr = np.ones(len(as_list(models))) if weight is None else np.asarray(weight, float)
        if wr.shape != (len(as_list(models)),):
            raise AutojudgeError(f"weight must have one entry per ranking "
                                 f"({len(as_list(models))})")
        wp = np.ones(len(pa)) if pair_weight is None else np.asarray(pair_weight, float)
        w = np.concatenate([wp, wr[broken.source_row]])
    return rate_battles(pa + broken.model_a.tolist(), pb + broken.model_b.tolist(),
                        pw + broken.winner.tolist(), pc + broken.clusters.tolist(),
                        config=config, models=names, weight=w)


# -- exact Plackett-Luce likelihood (untied rankings), for comparison -------------------

def choice_sets(codes: np.ndarray, rk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PL as successive choices: the entry at rank position p is chosen from itself and
    every entry below it (unranked ones included), for each ranked position but a full
    ranking's last. Returns (items (E, K) with the chosen one in column 0, mask)."""
    k = codes.shape[1]
    order = np.argsort(rk, axis=1, kind="stable")
    c = np.take_along_axis(codes, order, axis=1)
    n_ranked = np.isfinite(rk).sum(axis=1)
    items, mask = [], []
    for p in range(k - 1):
        rows = n_ranked > p
        block = np.full((int(rows.sum()), k), -1, dtype=np.int64)
        block[:, :k - p] = c[rows, p:]
        items.append(block)
        mask.append(block >= 0)
    return np.concatenate(items), np.concatenate(mask)


def _pl_nll(s: np.ndarray, items: np.ndarray, mask: np.ndarray, prior: float) -> float:
    u = np.where(mask, s[np.where(mask, items, 0)], -np.inf)
    return float((logsumexp(u, axis=1) - u[:, 0]).sum() + 0.5 * prior * s @ s)


def pl_strengths(items: np.ndarray, mask: np.ndarray, n_models: int,
                 prior: float = DEFAULT_PRIOR, tol: float = 1e-9,
                 max_iter: int = 100) -> np.ndarray:
    """Penalised PL strengths (nats, sum ~0) by damped Newton on the convex
    -loglik + prior / 2 |s|^2: the same prior and gauge as `fit_strengths`, so the two
    are comparable (prior -> 0 is the MLE)."""
    s = np.zeros(n_models)
    safe = np.where(mask, items, 0)
    f = _pl_nll(s, items, mask, prior)
    for _ in range(max_iter):
        u = np.where(mask, s[safe], -np.inf)
        p = np.exp(u - logsumexp(u, axis=1, keepdims=True))
        grad = prior * s - np.bincount(items[:, 0], minlength=n_models) \
            + np.bincount(safe.ravel(), p.ravel(), minlength=n_models)
        outer = (p[:, :, None] * p[:, None, :]).ravel()
        flat = (safe[:, :, None] * n_models + safe[:, None, :]).ravel()
        hess = np.diag(np.bincount(safe.ravel(), p.ravel(), minlength=n_models) + prior) \
            - np.bincount(flat, outer, minlength=n_models ** 2).reshape(n_models, n_models)
        # The likelihood ignores a common shift and the prior puts the optimum at sum 0;
        # with a tiny prior, rounding in the gradient's sum moves s along that flat
        # direction, so steps are taken centred.
        step = np.linalg.solve(hess, grad)
        step -= step.mean()
        if np.max(np.abs(step)) < tol:
            break
        t = 1.0
        # Armijo backtracking; near the optimum the decrease is below rounding of f,
        # so a full step is taken when the Newton decrement is that small.
        while t > 1e-8 and grad @ step > 1e-12 * abs(f):
            new = _pl_nll(s - t * step, items, mask, prior)
            if new <= f - 1e-4 * t * (grad @ step):
                break
            t *= 0.5
        s = s - t * step
        f = _pl_nll(s, items, mask, prior)
    return s


def fit_plackett_luce(models: Sequence[Sequence[str]], ranks: Sequence[Sequence[Any]], *,
                      prior: float = DEFAULT_PRIOR, init_rating: float = 1000.0
                      ) -> dict[str, float]:
    """Plackett-Luce ratings (Elo scale, mean `init_rating`) by penalised maximum
    likelihood, for untied full or top-m rankings.

    Raises:
        AutojudgeError: a bad ranking, or ties (PL has no ties; rate them by breaking).
    """
    models, ranks = as_list(models), as_list(ranks)
    validate_rankings(models, ranks)
    for row, r in enumerate(ranks):
        ranked = [v for v in r if v is not None]
        if len(set(ranked)) != len(ranked):
            raise AutojudgeError(f"bad ranking at row {row}: tied ranks; the Plackett-Luce "
                                 "likelihood has no ties (rate_rankings handles them)")
    names = sorted({n for m in models for n in m})
    pos = {n: k for k, n in enumerate(names)}
    items, mask = [], []
    for _, group, rk in _by_size(models, ranks):
        codes = np.vectorize(pos.__getitem__, otypes=[np.int64])(group)
        it, ms = choice_sets(codes, rk)
        width = max(len(m) for m in models)
        items.append(np.pad(it, ((0, 0), (0, width - it.shape[1])), constant_values=-1))
        mask.append(np.pad(ms, ((0, 0), (0, width - ms.shape[1]))))
    s = pl_strengths(np.concatenate(items), np.concatenate(mask), len(names), prior)
    r = strengths_to_ratings(s, init_rating=init_rating)
    return {n: float(v) for n, v in zip(names, r)}


# -- simulation ----------------------------------------------------------------------

def simulate_rankings(rng: np.random.Generator, ratings: Sequence[float] | np.ndarray,
                      groups: np.ndarray, *, offsets: np.ndarray | None = None,
                      top: int | None = None, noise_scale: float = 1.0) -> list[list]:
    """Plackett-Luce rankings by random utility: image utility = (rating + offset) in
    nats + noise_scale x standard Gumbel; the higher utility ranks better.

    With noise_scale 1 every implied pair is a BT battle: P(a above b) =
    1 / (1 + 10 ** (-(r_a - r_b) / 400)). A larger scale is a noisier judge (its
    implied pairs are BT with ratings divided by the scale).

    Args:
        rng: the generator to draw from (explicit seed).
        ratings: true Elo ratings per model code.
        groups: (n, K) model codes shown in each ranking.
        offsets: (n, K) Elo offsets of the images shown (prompt effects), or None.
        top: rank only the best `top` (the rest None), e.g. 1 for best-of-K.
        noise_scale: Gumbel scale in nats.

    Returns:
        ranks per ranking, as lists (ints 1..K or None), aligned with `groups`.
    """
    g = np.asarray(groups, dtype=np.int64)
    u = np.asarray(ratings, dtype=np.float64)[g]
    if offsets is not None:
        u = u + offsets
    util = u / ELO_PER_NAT + noise_scale * rng.gumbel(size=g.shape)
    rank = np.argsort(np.argsort(-util, axis=1), axis=1) + 1
    k = g.shape[1] if top is None else top
    return [[int(v) if v <= k else None for v in row] for row in rank]


def pair_probability(d_elo: float | np.ndarray, noise_scale: float = 1.0) -> np.ndarray:
    """P(a ranked above b) under `simulate_rankings` for a rating gap d (Elo): the
    difference of two Gumbels is logistic, for any K."""
    return expit(np.asarray(d_elo, dtype=np.float64) / ELO_PER_NAT / noise_scale)
