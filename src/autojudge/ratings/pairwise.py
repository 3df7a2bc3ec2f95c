"""Which pairs of one component the likelihood orders: rating[j] - rating[k] bounded above 0.

`intervals.pairwise_above` asks this for every pair where an open CI side keeps the
marginal rule silent. On a sparse log that is most pairs of a component (most models
are separated), so the question is answered without finding each bound:

- the bound is the root of the profile deviance D(c) = 2 (sup l - l_p(c)) at the cut-off,
  searched from the estimate down to 32 nats below it (`profile.ContrastProfile.bound`;
  beyond that the side counts as open). D is convex with its minimum at the estimate, so
  "bound > 0" is exactly: estimate > 0 and D(max(0, estimate - 32)) > cut, one deviance
  instead of a root search;
- any strengths s' with s'_j - s'_k = c give D(c) <= 2 (sup l - l(s')) (the profile is a
  supremum). Moving only j and k from the unconstrained fit costs O(their battles), so
  one vectorised pass over all pairs settles every pair whose cheap bound is already
  below the cut;
- `pair_bounds` bounds D from both sides around the component's largest SCC (a feasible
  point along the pair's Newton direction above, weak duality with its electrical flow
  below), O(the pair's neighbourhood) each: most remaining pairs end there;
- the rest get one constrained fit each, on the models that can matter (those on chains
  of wins from j to k, `pair_exact`), from a start that squeezes the chain (often
  already below the cut), stopped as soon as a point is below the cut or a dual point
  (the iterate's matchup flows, routed back onto the contrast) bounds D above it. The
  first steps use the core's Laplacian pseudo-inverse at the fit (`pair_chord`: no
  factorisation, O(core^2) each) and settle nearly every pair; Newton (O(core^3) a
  step) finishes the rest. Within a margin of the cut (ridge and sub-problem
  differences, ~1e-5) the whole component is fitted as before, so every answer is that
  of one profile fit per pair.

Cost: every candidate pair is decided (a rank counts all the models above it), and on
a sparse log where most models are separated that is most pairs of the component. The
screen and the bounds are O(pairs x their battles); about a tenth of the pairs need a
chain fit, O(core^2) per step; so the step still grows about as models^3 to models^4
(`benchmarks/bench_rate_scale.py`), and the core's pseudo-inverse is a dense
O(core^2) matrix.

Pure numpy, no I/O.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from autojudge.ratings.pair_bounds import build_core, deviance_bounds, edges_at
from autojudge.ratings.pair_exact import chain_deviance
from autojudge.ratings.structure import BattleGraph

# ContrastProfile.bound doubles its step from 0.25 while the width is <= _MAX_SPAN (60):
# the farthest value it tries is 32 nats below the estimate.
_FARTHEST = 32.0
_FRACTIONS = np.linspace(0.0, 1.0, 9)  # where between the two models the pair is moved
_PAIRS_PER_CHUNK = 20_000
# Bounds and sub-problem deviances are trusted this far from the cut (beyond the ridge's
# share): the sub-problem differs from the whole component's fit by ~1e-8.
_MARGIN = 1e-5


def pairwise_bounded_above(graph: BattleGraph, members: np.ndarray, open_low: np.ndarray,
                           open_high: np.ndarray, likelihood: Any, cut: float) -> np.ndarray:
    """above[j, k] over the component's members (local order): the likelihood-ratio lower
    bound of strength[j] - strength[k] at deviance `cut` is above 0.

    Args:
        graph: the log's battle graph.
        members: model codes of one component.
        open_low, open_high: per member, whether its CI side is open (None).
        likelihood: `intervals._Likelihood` (problem, fit and profile per component).
        cut: the deviance cut-off (chi2_1 quantile at the confidence).
    """
    n = len(members)
    above = np.zeros((n, n), dtype=bool)
    s_hat = likelihood.fit(members)
    rows, cols = _candidates(graph, members, open_low, open_high, s_hat)
    if not len(rows):
        return above
    est = s_hat[rows] - s_hat[cols]
    value = np.maximum(0.0, est - _FARTHEST)
    problem = likelihood.problem(members)
    # The constrained fits minimise nll + ridge, not nll: allow for the ridge's share.
    reach = float(np.abs(s_hat).max()) + float(value.max()) if n else 0.0
    slack = 1e-9 * (float(s_hat @ s_hat) + 2.0 * reach ** 2) + 1e-6
    cheap = _moved_pair_bound(problem, n, s_hat, rows, cols, value)
    todo = np.flatnonzero(cheap > cut - slack)
    if len(todo):
        above[rows[todo], cols[todo]] = _decide(
            graph, members, likelihood, s_hat, rows[todo], cols[todo], value[todo], cut,
            slack + _MARGIN)
    return above


def _decide(graph: BattleGraph, members: np.ndarray, likelihood: Any, s_hat: np.ndarray,
            rows: np.ndarray, cols: np.ndarray, value: np.ndarray, cut: float,
            margin: float) -> np.ndarray:
    """D(value) > cut per pair the cheap screen left: from the core's two-sided bounds
    where they settle it, else from the pair's chain sub-problem, else (within `margin`
    of the cut, where the sub-problem's ~1e-8 difference could matter) as before."""
    n = len(members)
    scc = graph.scc[members]
    labels, sizes = np.unique(scc, return_counts=True)
    ed = edges_at(likelihood.problem(members), n, s_hat, scc)
    core = build_core(ed, n, np.flatnonzero(scc == labels[np.argmax(sizes)]))
    low, high = deviance_bounds(core, ed, s_hat, rows, cols, value)
    out = low > cut + margin
    open_ = np.flatnonzero(~out & ~(high < cut - margin))
    chains = _Chains(graph, scc)
    with _one_blas_thread():
        for k in open_:
            j_, k_ = int(rows[k]), int(cols[k])
            dev = chain_deviance(core, ed, s_hat, chains.nodes(scc[j_], scc[k_]), j_, k_,
                                 float(value[k]), below=cut - margin, above=cut + margin)
            if dev is None or abs(dev - cut) <= margin:
                contrast = np.zeros(n)
                contrast[j_], contrast[k_] = 1.0, -1.0
                dev = likelihood.profile(members, contrast).deviance(float(value[k]))
            out[k] = dev > cut
    return out


class _Chains:
    """Per (SCC of j, SCC of k), the component-local models on chains from j to k."""

    def __init__(self, graph: BattleGraph, scc: np.ndarray):
        self.graph, self.scc = graph, scc
        self._down: dict[int, np.ndarray] = {}
        self._up: dict[int, np.ndarray] = {}

    def nodes(self, top: int, bottom: int) -> np.ndarray:
        top, bottom = int(top), int(bottom)
        if top not in self._down:
            self._down[top] = self.graph.descendants(top)
        if bottom not in self._up:
            self._up[bottom] = self.graph.ancestors(bottom)
        return np.flatnonzero((self._down[top] & self._up[bottom])[self.scc])


def _one_blas_thread() -> Any:
    """The exact fits make many small BLAS calls: on a shared machine OpenBLAS threads
    spinning for each costs ~10x; threadpoolctl (when installed) keeps them to one."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _candidates(graph: BattleGraph, members: np.ndarray, open_low: np.ndarray,
                open_high: np.ndarray, s_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local (j, k) pairs to decide: j reaches k, an open side (j's low or k's high), and
    a positive estimate (else the bound, below the estimate, is not above 0)."""
    scc = graph.scc[members]
    rows, cols = [], []
    reach_of: dict[int, np.ndarray] = {}
    for j in range(len(members)):
        if int(scc[j]) not in reach_of:
            reach_of[int(scc[j])] = graph.descendants(int(scc[j]))[scc]
        want = reach_of[int(scc[j])] & (s_hat[j] > s_hat)
        if not open_low[j]:
            want &= open_high
        want[j] = False
        ks = np.flatnonzero(want)
        rows.append(np.full(len(ks), j))
        cols.append(ks)
    return np.concatenate(rows), np.concatenate(cols)


def _moved_pair_bound(problem: tuple, n: int, s_hat: np.ndarray, rows: np.ndarray,
                      cols: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per pair, 2 (nll(s') - nll(s_hat)) minimised over a few s' that differ from s_hat
    only at j (set to t + value) and k (set to t), t between the two: an upper bound of
    the deviance at `value` (up to the ridge)."""
    i, j, a, b = problem
    ends = np.concatenate([i, j])
    order = np.argsort(ends, kind="stable")
    edge_of = np.concatenate([np.arange(len(i)), np.arange(len(i))])[order]
    deg = np.bincount(ends, minlength=n)
    ptr = np.concatenate([[0], np.cumsum(deg)])
    base = _pair_nll(s_hat[i] - s_hat[j], a, b)
    out = np.empty(len(rows))
    for lo in range(0, len(rows), _PAIRS_PER_CHUNK):
        sl = slice(lo, lo + _PAIRS_PER_CHUNK)
        out[sl] = _chunk_bound((i, j, a, b), edge_of, deg, ptr, base, s_hat, rows[sl],
                               cols[sl], value[sl])
    return out


def _chunk_bound(problem: tuple, edge_of: np.ndarray, deg: np.ndarray, ptr: np.ndarray,
                 base: np.ndarray, s_hat: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 value: np.ndarray) -> np.ndarray:
    i, j, a, b = problem
    p = len(rows)
    pair_j, edge_j = _incident(rows, deg, ptr, edge_of)
    pair_k, edge_k = _incident(cols, deg, ptr, edge_of)
    # An edge between j and k is in both lists: count it once (from j's).
    other_k = np.where(i[edge_k] == cols[pair_k], j[edge_k], i[edge_k])
    keep = other_k != rows[pair_k]
    pair = np.concatenate([pair_j, pair_k[keep]])
    edge = np.concatenate([edge_j, edge_k[keep]])
    est = s_hat[rows] - s_hat[cols]
    t = s_hat[cols][:, None] + (est - value)[:, None] * _FRACTIONS[None, :]  # (p, F)

    def moved(end: np.ndarray) -> np.ndarray:
        val = np.broadcast_to(s_hat[end][:, None], (len(end), len(_FRACTIONS)))
        val = np.where((end == rows[pair])[:, None], t[pair] + value[pair][:, None], val)
        return np.where((end == cols[pair])[:, None], t[pair], val)

    d = moved(i[edge]) - moved(j[edge])
    delta = _pair_nll(d, a[edge][:, None], b[edge][:, None]) - base[edge][:, None]
    total = np.zeros((p, len(_FRACTIONS)))
    np.add.at(total, pair, delta)
    return 2.0 * total.min(axis=1)


def _incident(nodes: np.ndarray, deg: np.ndarray, ptr: np.ndarray, edge_of: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(pair index, edge id) for every edge incident to nodes[pair] (ragged, flattened)."""
    counts = deg[nodes]
    pair = np.repeat(np.arange(len(nodes)), counts)
    start = np.repeat(ptr[nodes] - (np.cumsum(counts) - counts), counts)
    return pair, edge_of[start + np.arange(len(pair))]


def _pair_nll(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per matchup: -log-likelihood of a wins of i and b of j at strength gap d = s_i - s_j."""
    return (a + b) * np.logaddexp(0.0, d) - a * d
