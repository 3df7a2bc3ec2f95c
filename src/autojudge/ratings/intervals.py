"""Rating scale per connected component, and intervals that claim no more than the data.

Ratings are only comparable inside a connected component of the battle graph (see
`structure`), so each component is put on the Elo scale on its own: its mean is
`init_rating`, or, in the anchor's component, the anchor sits at `init_rating`.

Each model's interval is, in order of preference:

1. ``bootstrap``: the percentile interval of the prompt-clustered bootstrap, when the
   data bound the rating on both sides and the bootstrap shows any spread;
2. ``profile``: the likelihood-ratio (profile-likelihood) interval, when the bootstrap
   has no spread (every round gives the same rating: one prompt, or nothing but ties),
   so it proves nothing;
3. ``profile`` with an open side: for a separated model (it never lost, or never won,
   against part of its component), the bounded side from the likelihood and the other
   side None (no bound: the data allow any value there). A bootstrap cannot help here:
   every resample is separated too and returns the prior's value.

Likelihood bounds weigh each (prompt, model pair) as one observation however many seeds
it has, because seeds of one prompt are near-duplicates for most judges.

Every interval contains its point rating (rounding or percentile bias could otherwise
put the rating 1 ulp outside).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from autojudge.ratings.bootstrap import percentile_interval
from autojudge.ratings.bradley_terry import Battles, Matchups, aggregate_matchups
from autojudge.ratings.pairwise import pairwise_bounded_above
from autojudge.ratings.profile import ContrastProfile, maximise_likelihood, z_value
from autojudge.ratings.structure import BattleGraph

# A bootstrap narrower than this (Elo) has no spread: its rounds all agreed exactly.
_NO_SPREAD = 1e-6


def elo_factor(base: float, scale: float) -> float:
    """Elo points per natural-log strength unit (400 / ln 10 on the Arena scale).

    Example:
        >>> round(elo_factor(10.0, 400.0), 2)
        173.72
    """
    return scale / math.log(base)


def centre_by_component(strengths: np.ndarray, graph: BattleGraph, *, to_elo: float,
                        init_rating: float, anchor: int | None) -> np.ndarray:
    """Strengths (M,) or (R, M) -> Elo-scale ratings, each component centred on its own;
    NaN for models without battles."""
    r = np.asarray(strengths, dtype=np.float64) * to_elo
    out = np.full(r.shape, np.nan)
    for comp in range(graph.n_components):
        members = graph.members(comp)
        if anchor is not None and graph.component[anchor] == comp:
            ref = r[..., anchor]
        else:
            ref = r[..., members].mean(axis=-1)
        out[..., members] = r[..., members] - np.expand_dims(ref, -1) + init_rating
    return out


def likelihood_weights(battles: Battles, clusters: np.ndarray | None) -> np.ndarray:
    """Per-battle weights for likelihood bounds: each (cluster, unordered pair) sums to the
    mean weight of its battles, so its seeds count as one observation."""
    n, m = len(battles.ia), battles.n_models
    w = np.ones(n) if battles.weight is None else battles.weight.astype(np.float64)
    if clusters is None or n == 0:
        return w
    lo = np.minimum(battles.ia, battles.ib).astype(np.int64)
    hi = np.maximum(battles.ia, battles.ib).astype(np.int64)
    _, key = np.unique((np.asarray(clusters, np.int64) * m + lo) * m + hi,
                       return_inverse=True)
    return w / np.bincount(key)[key]


def model_intervals(battles: Battles, clusters: np.ndarray | None, graph: BattleGraph,
                    strengths: np.ndarray, rating: np.ndarray, boot: np.ndarray | None, *,
                    confidence: float, to_elo: float, anchor: int | None
                    ) -> tuple[list[float | None], list[float | None], list[str | None]]:
    """(low, high, method) per model; None bounds are open sides, and everything is None
    for an unrated model or when no interval was asked for (`boot` None)."""
    m = battles.n_models
    low: list[float | None] = [None] * m
    high: list[float | None] = [None] * m
    method: list[str | None] = [None] * m
    if boot is None:
        return low, high, method
    b_low, b_high = percentile_interval(boot, confidence) if len(boot) else (rating, rating)
    likelihood = _Likelihood(battles, clusters, strengths, confidence)
    for comp in range(graph.n_components):
        members = graph.members(comp)
        for k in members:
            if anchor is not None and k == anchor:
                low[k] = high[k] = float(rating[k])
                method[k] = "anchor"
                continue
            ref = anchor if anchor is not None and graph.component[anchor] == comp else None
            open_low, open_high = (graph.open_sides_vs_mean(k) if ref is None
                                   else graph.open_sides_of_difference(k, ref))
            bounded = (not open_low, not open_high)
            if bounded == (True, True) and b_high[k] - b_low[k] > _NO_SPREAD:
                lo_k, hi_k, how = float(b_low[k]), float(b_high[k]), "bootstrap"
            elif bounded == (False, False):
                lo_k, hi_k, how = None, None, "profile"  # nothing to profile
            else:
                contrast = _contrast(members, k, ref)
                lo_n, hi_n = likelihood.interval(members, contrast, bounded)
                centre = float(rating[k]) - float(contrast @ strengths[members]) * to_elo
                lo_k = None if lo_n is None else centre + lo_n * to_elo
                hi_k = None if hi_n is None else centre + hi_n * to_elo
                how = "profile"
            low[k] = None if lo_k is None else min(lo_k, float(rating[k]))
            high[k] = None if hi_k is None else max(hi_k, float(rating[k]))
            method[k] = how
    return low, high, method


class _Likelihood:
    """Profile-likelihood intervals of contrasts inside components, with the per-battle
    weights, each component's matchups and its unconstrained fit built once, and only
    when first needed (the fit is the same for every contrast of a component)."""

    def __init__(self, battles: Battles, clusters: np.ndarray | None, strengths: np.ndarray,
                 confidence: float):
        self.battles, self.clusters = battles, clusters
        self.strengths, self.confidence = strengths, confidence
        self._matchups: Matchups | None = None
        self._problems: dict[int, tuple] = {}
        self._fits: dict[int, np.ndarray] = {}

    def problem(self, members: np.ndarray) -> tuple:
        """(i, j, eff_i, eff_j) of the component, renumbered 0..len(members)-1."""
        key = int(members[0])
        if key not in self._problems:
            if self._matchups is None:
                weights = likelihood_weights(self.battles, self.clusters)
                self._matchups = aggregate_matchups(self.battles, weight=weights)[0]
            self._problems[key] = _component_problem(self._matchups, self.battles.n_models,
                                                     members)
        return self._problems[key]

    def fit(self, members: np.ndarray) -> np.ndarray:
        """The component's unconstrained likelihood maximum (from the point strengths)."""
        key = int(members[0])
        if key not in self._fits:
            self._fits[key] = maximise_likelihood(*self.problem(members), len(members),
                                                  self.strengths[members])
        return self._fits[key]

    def profile(self, members: np.ndarray, contrast: np.ndarray) -> ContrastProfile:
        return ContrastProfile(*self.problem(members), len(members), contrast,
                               fitted=self.fit(members))

    def interval(self, members: np.ndarray, contrast: np.ndarray,
                 sides: tuple[bool, bool]) -> tuple[float | None, float | None]:
        prof = self.profile(members, contrast)
        return (prof.bound(-1, self.confidence) if sides[0] else None,
                prof.bound(+1, self.confidence) if sides[1] else None)


def _component_problem(mu: Matchups, n_models: int, members: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Matchups (i, j, eff_i, eff_j) of one component, renumbered 0..len(members)-1."""
    local = np.full(n_models, -1, dtype=np.int64)
    local[members] = np.arange(len(members))
    keep = (local[mu.i] >= 0) & (local[mu.j] >= 0)
    return local[mu.i[keep]], local[mu.j[keep]], mu.eff_i[keep], mu.eff_j[keep]


def _contrast(members: np.ndarray, model: int, ref: int | None) -> np.ndarray:
    """Coefficients (over the component's members) of the model's centred strength."""
    pos = {int(v): k for k, v in enumerate(members)}
    a = np.zeros(len(members))
    if ref is None:
        a -= 1.0 / len(members)
    else:
        a[pos[int(ref)]] -= 1.0
    a[pos[int(model)]] += 1.0
    return a


def ci_rank(low: Any, high: Any, component: Any = None,
            shown_above: np.ndarray | None = None) -> list[int | None]:
    """Chatbot Arena's CI-aware rank inside each component: 1 + the number of models of
    the same component shown above this one: whose lower bound is above this model's
    upper bound, or (`shown_above[j, k]`, for pairs where an open side leaves the
    marginal CIs silent) whose difference to it is bounded above 0 by the likelihood.
    Open sides count as -inf / +inf; None for unrated models (component -1).

    Example:
        >>> ci_rank([10, 5, 0, None], [12, 11, 4, None], [0, 0, 0, -1])
        [1, 1, 3, None]
    """
    component = np.zeros(len(low), np.int64) if component is None else np.asarray(component)
    lo = np.array([-np.inf if v is None else v for v in low], dtype=np.float64)
    hi = np.array([np.inf if v is None else v for v in high], dtype=np.float64)
    out: list[int | None] = []
    for k, comp in enumerate(component):
        if comp < 0:
            out.append(None)
            continue
        above = (component == comp) & (lo > hi[k])
        if shown_above is not None:
            above |= (component == comp) & shown_above[:, k]
        out.append(int(1 + above.sum()))
    return out


def pairwise_above(battles: Battles, clusters: np.ndarray | None, graph: BattleGraph,
                   strengths: np.ndarray, low: list, high: list, *, confidence: float
                   ) -> np.ndarray:
    """above[j, k]: the likelihood bounds rating[j] - rating[k] above 0, decided only
    for pairs of one component where an open CI side keeps the marginal rule silent and
    the data bound the difference from below (j reaches k in the effective-win graph).

    A model in the middle of a strict chain (beaten by some, beating others) has both
    sides of its centred rating open, yet every battle says where it stands; this is how
    its rank still says so. `pairwise.pairwise_bounded_above` decides the pairs without
    finding each bound (most in a cheap screen)."""
    m = battles.n_models
    above = np.zeros((m, m), dtype=bool)
    likelihood = _Likelihood(battles, clusters, strengths, confidence)
    open_low = np.array([v is None for v in low])
    open_high = np.array([v is None for v in high])
    cut = z_value(confidence) ** 2
    for comp in range(graph.n_components):
        members = graph.members(comp)
        if not (open_low[members].any() or open_high[members].any()):
            continue
        got = pairwise_bounded_above(graph, members, open_low[members],
                                     open_high[members], likelihood, cut)
        above[np.ix_(members, members)] = got
    return above
