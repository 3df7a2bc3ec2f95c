"""Certified two-sided bounds of a pair's profile deviance, O(the pair's battles) each.

`pairwise` must decide, for most pairs of a component, whether the profile deviance
D(c) = 2 (P(c) - f*) of the contrast s_j - s_k at one value c exceeds a cut-off, where
f(s) = sum_e l_e(s_u - s_v) is the Bradley-Terry negative log-likelihood over matchups e,
P(c) its minimum under s_j - s_k = c and f* its unconstrained infimum. A constrained fit
per pair costs O(models) per Newton step and there are O(models^2) pairs; instead both
sides of D are bounded around one dense object per component, the pseudo-inverse G of the
weighted Laplacian H (the Hessian at the fit s_hat) of its largest strongly connected
component, the *core*:

- upper bound (a feasible point): move the core along the Newton direction of the pair,
  s' = s_hat - t G (sigma+ - sigma-), and put a pair end outside the core where the
  constraint wants it. f(s') - f* is the sum of each matchup's Bregman remainder (the
  linear terms sum to the fit's zero gradient); the pair's own matchups and those within
  one step of its terminals are summed exactly, the rest bounded by e^{|delta|} w
  delta^2 / 2 (the logistic curvature changes by at most e^{|delta|}), whose sum is a
  quadratic form of G.
- lower bound (weak duality): for any edge flow x with divergence lambda (e_j - e_k),
  P(c) >= lambda c - sum_e l*_e(u_hat_e + x_e) with u_hat the fit's edge gradients, a
  circulation. With x the electrical flow of G the matchups at the terminals are summed
  exactly (n KL(q || p_hat)) and the rest bounded by kappa x^2 / (2 w), kappa = (1 -
  rho)^-2, valid while every other edge's flow moves its win probability by at most a
  fraction rho; G's largest potential drop per column, away from the column's model
  and its neighbours, bounds that.

Both bounds are of the limit problem (no ridge); `pairwise` trusts them only beyond a
margin that covers the ridge's share. G costs O(core^2) memory and one O(core^3) inverse
per component (a LAPACK call: ~1 s at 4,000 core models).

A pair end outside the core is handled when all the pair's flow can enter the core over
its own matchups (a model that beat core members, or lost to them): its flow is split
over those matchups in proportion to their battles. Pairs neither rule covers get NaN.

Pure numpy, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import expit, xlogy

_MU = np.geomspace(0.01, 4.0, 16)  # dual multipliers (flow per unit of contrast) tried
_T_FRACTIONS = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
_EDGE_CHUNK = 256  # core matchups per block when finding G's potential drops
_PAIR_CHUNK = 512  # pairs per block (each has ~100 matchups summed exactly)
_MIN_CORE = 3  # a smaller core bounds nothing a chain fit would not settle at once


@dataclass(frozen=True)
class Core:
    """The dense summary of one component's largest SCC at the fit (see module doc)."""

    nodes: np.ndarray      # component-local models of the core
    pos: np.ndarray        # component-local model -> position in the core, -1 outside
    green: np.ndarray      # (c, c) pseudo-inverse of the core's Laplacian at s_hat
    drop: np.ndarray       # per core position v: max |G[x, v] - G[y, v]| over core
                           # matchups (x, y) with no end next to v
    leak: float            # sum over matchups with one end in the core of n e^{-|d|}
    terminals: tuple       # per model (pos (m, T), weight (m, T), matchup (m, T))
    near_ptr: np.ndarray   # closed neighbourhoods in the core (CSR over positions)
    near: np.ndarray


@dataclass(frozen=True)
class Edges:
    """Matchup arrays of the component at the fit, with a node -> matchups index."""

    i: np.ndarray
    j: np.ndarray
    n: np.ndarray          # battles (effective, weighted)
    wins: np.ndarray       # effective wins of i
    scc: np.ndarray        # per component-local model, its SCC
    d: np.ndarray
    log_p: np.ndarray
    log_q: np.ndarray      # log(1 - p)
    w: np.ndarray
    ptr: np.ndarray
    edge_of: np.ndarray
    deg: np.ndarray


def edges_at(problem: tuple, n_nodes: int, s_hat: np.ndarray, scc: np.ndarray) -> Edges:
    """The component's matchups (i, j, wins of i, wins of j) at the fit s_hat; scc per
    model."""
    i, j, a, b = problem
    n = np.asarray(a, np.float64) + np.asarray(b, np.float64)
    d = s_hat[i] - s_hat[j]
    ends = np.concatenate([i, j])
    order = np.argsort(ends, kind="stable")
    edge_of = np.concatenate([np.arange(len(i)), np.arange(len(i))])[order]
    deg = np.bincount(ends, minlength=n_nodes)
    ptr = np.concatenate([[0], np.cumsum(deg)])
    return Edges(i, j, n, np.asarray(a, np.float64), scc, d, -np.logaddexp(0.0, -d),
                 -np.logaddexp(0.0, d), n * expit(d) * expit(-d), ptr, edge_of, deg)


def incident(ed: Edges, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into nodes, matchup id) for every matchup of nodes[k] (ragged, flattened)."""
    counts = ed.deg[nodes]
    which = np.repeat(np.arange(len(nodes)), counts)
    start = np.repeat(ed.ptr[nodes] - (np.cumsum(counts) - counts), counts)
    return which, ed.edge_of[start + np.arange(len(which))]


def build_core(ed: Edges, n_nodes: int, nodes: np.ndarray) -> Core:
    """The core summary of the SCC `nodes` (component-local)."""
    c = len(nodes)
    pos = np.full(n_nodes, -1, dtype=np.int64)
    pos[nodes] = np.arange(c)
    inside = (pos[ed.i] >= 0) & (pos[ed.j] >= 0)
    ci, cj, w = pos[ed.i[inside]], pos[ed.j[inside]], ed.w[inside]
    lap = np.zeros((c, c))
    np.add.at(lap, (ci, ci), w)
    np.add.at(lap, (cj, cj), w)
    np.add.at(lap, (ci, cj), -w)
    np.add.at(lap, (cj, ci), -w)
    # (L + 11'/c)^-1 = L^+ + 11'/c on a connected graph
    green = np.linalg.inv(lap + 1.0 / c) - 1.0 / c
    adj = sparse.csr_matrix((np.ones(2 * len(ci)), (np.concatenate([ci, cj]),
                                                    np.concatenate([cj, ci]))), shape=(c, c))
    adj = (adj + sparse.identity(c, format="csr")).tocsr()  # closed neighbourhoods
    drop = np.zeros(c)
    for lo in range(0, len(ci), _EDGE_CHUNK):
        x, y = ci[lo:lo + _EDGE_CHUNK], cj[lo:lo + _EDGE_CHUNK]
        diff = np.abs(green[x] - green[y])
        # a matchup next to v (one end in v's closed neighbourhood) is summed exactly
        near = (adj[x] + adj[y]).tocoo()
        diff[near.row, near.col] = 0.0
        drop = np.maximum(drop, diff.max(axis=0))
    one_end = (pos[ed.i] >= 0) != (pos[ed.j] >= 0)
    leak = float((ed.n[one_end] * np.exp(-np.abs(ed.d[one_end]))).sum())
    return Core(nodes, pos, green, drop, leak, _terminals(ed, pos, n_nodes),
                adj.indptr, adj.indices)


def _terminals(ed: Edges, pos: np.ndarray, n_nodes: int) -> tuple:
    """Per model, where its unit flow enters the core: itself (weight 1) when inside;
    else its matchups with core members, weighted by battles (all one-way: a model
    outside the SCC that met a member either beat it or lost to it every time)."""
    out_edge = (pos[ed.i] >= 0) != (pos[ed.j] >= 0)
    eid = np.flatnonzero(out_edge)
    outer = np.where(pos[ed.i[eid]] >= 0, ed.j[eid], ed.i[eid])
    inner = np.where(pos[ed.i[eid]] >= 0, ed.i[eid], ed.j[eid])
    count = np.bincount(outer, minlength=n_nodes)
    width = max(1, int(count.max()) if len(count) else 1)
    t_pos = np.full((n_nodes, width), 0, dtype=np.int64)
    t_w = np.zeros((n_nodes, width))
    t_edge = np.full((n_nodes, width), -1, dtype=np.int64)
    order = np.argsort(outer, kind="stable")
    outer, inner, eid = outer[order], inner[order], eid[order]
    slot = np.arange(len(outer)) - np.repeat(np.cumsum(count) - count, count)[
        np.arange(len(outer))] if len(outer) else np.zeros(0, dtype=np.int64)
    t_pos[outer, slot] = pos[inner]
    t_w[outer, slot] = ed.n[eid]
    t_edge[outer, slot] = eid
    total = t_w.sum(axis=1, keepdims=True)
    t_w = np.divide(t_w, total, out=np.zeros_like(t_w), where=total > 0)
    core = np.flatnonzero(pos >= 0)
    t_pos[core], t_w[core], t_edge[core] = 0, 0.0, -1
    t_pos[core, 0], t_w[core, 0] = pos[core], 1.0
    return t_pos, t_w, t_edge


def deviance_bounds(core: Core, ed: Edges, s_hat: np.ndarray, rows: np.ndarray,
                    cols: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of D(value) of s_j - s_k per pair (rows j, cols k, local);
    NaN where an end neither is in the core nor met it (see module doc)."""
    t_pos, t_w, t_edge = core.terminals
    lower = np.full(len(rows), np.nan)
    upper = np.full(len(rows), np.nan)
    if len(core.nodes) < _MIN_CORE:
        return lower, upper
    ok = np.flatnonzero((t_w[rows].sum(axis=1) > 0) & (t_w[cols].sum(axis=1) > 0))
    for lo in range(0, len(ok), _PAIR_CHUNK):
        sel = ok[lo:lo + _PAIR_CHUNK]
        # far-off trial points overflow to inf (a useless bound), never to a wrong one
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pair = _PairFlows(core, ed, s_hat, rows[sel], cols[sel], value[sel])
            lower[sel], upper[sel] = pair.lower(), pair.upper()
    return lower, upper


class _PairFlows:
    """One block of pairs: terminals, the electrical flow's potentials and the matchups
    summed exactly (those of j, of k and, inside the core, of every terminal)."""

    def __init__(self, core: Core, ed: Edges, s_hat: np.ndarray, rows: np.ndarray,
                 cols: np.ndarray, value: np.ndarray):
        t_pos, t_w, _ = core.terminals
        self.core, self.ed, self.rows, self.cols, self.value = core, ed, rows, cols, value
        self.est = s_hat[rows] - s_hat[cols]
        self.tp = np.concatenate([t_pos[rows], t_pos[cols]], axis=1)  # (P, 2T)
        self.sw = np.concatenate([t_w[rows], -t_w[cols]], axis=1)
        g_tt = core.green[self.tp[:, :, None], self.tp[:, None, :]]
        phi_t = (g_tt * self.sw[:, None, :]).sum(axis=2)  # the flow's potentials there
        self.r_core = np.maximum((phi_t * self.sw).sum(axis=1), 1e-300)
        live = self.sw != 0
        hi = np.where(live, phi_t, -np.inf).max(axis=1)
        lo = np.where(live, phi_t, np.inf).min(axis=1)
        # potentials of a flow peak at its terminals: centring them bounds every move
        self.gauge, self.half = (hi + lo) / 2.0, (hi - lo) / 2.0
        self.m_rest = (np.abs(self.sw) * core.drop[self.tp]).sum(axis=1)
        weight = np.abs(self.sw)
        s_t = s_hat[core.nodes][self.tp]
        side = np.arange(self.tp.shape[1]) < t_pos.shape[1]
        self.mean0 = [(weight * s_t * side).sum(axis=1), (weight * s_t * ~side).sum(axis=1)]
        self.slope = [(weight * (phi_t - self.gauge[:, None]) * side).sum(axis=1),
                      (weight * (phi_t - self.gauge[:, None]) * ~side).sum(axis=1)]
        self.hat_end = [s_hat[rows], s_hat[cols]]
        self.j_in, self.k_in = core.pos[rows] >= 0, core.pos[cols] >= 0
        gap = np.maximum(0.0, self.mean0[0] - self.mean0[1] - value)
        self.scale = np.where(self.r_core > 1e-12, gap / self.r_core, 0.0)
        self._exact_edges()

    def _exact_edges(self) -> None:
        core, ed, p, n_e = self.core, self.ed, len(self.rows), len(self.ed.i)
        wj, ej = incident(ed, self.rows)
        wk, ek = incident(ed, self.cols)
        pt, tt = np.nonzero(self.sw != 0)
        g = self.tp[pt, tt]
        counts = core.near_ptr[g + 1] - core.near_ptr[g]
        start = np.repeat(core.near_ptr[g] - (np.cumsum(counts) - counts), counts)
        around = core.near[start + np.arange(int(counts.sum()))]
        wt, et = incident(ed, core.nodes[around])
        wt = np.repeat(pt, counts)[wt]
        inside = (core.pos[ed.i[et]] >= 0) & (core.pos[ed.j[et]] >= 0)
        key = np.unique(np.concatenate([wj, wk, wt[inside]]) * n_e
                        + np.concatenate([ej, ek, et[inside]]))
        self.pair, self.edge = key // n_e, key % n_e
        # sorted by pair, and every pair has matchups (j's): segment starts
        self.starts = np.searchsorted(self.pair, np.arange(p))
        q, e = self.pair, self.edge
        u, v = ed.i[e], ed.j[e]
        self.phi_u, self.phi_v = self._phi(u, q), self._phi(v, q)
        both = (core.pos[u] >= 0) & (core.pos[v] >= 0)
        dphi = np.where(both, self.phi_u - self.phi_v, 0.0)
        self.r_rest = np.maximum(self.r_core - np.bincount(q, ed.w[e] * dphi ** 2, p), 0.0)
        flow = ed.w[e] * dphi
        _, t_w, t_edge = core.terminals
        # an end outside the core sends its share over its own matchups
        share = (t_w[self.rows[q]] * (t_edge[self.rows[q]] == e[:, None])).sum(axis=1)
        flow += np.where(u == self.rows[q], share, -share)
        share = (t_w[self.cols[q]] * (t_edge[self.cols[q]] == e[:, None])).sum(axis=1)
        flow += np.where(v == self.cols[q], share, -share)
        self.flow = flow

    def _phi(self, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Potential of the pair's unit flow at component-local models x (0 outside)."""
        px = self.core.pos[x]
        g = self.core.green[np.maximum(px, 0)[:, None], self.tp[q]]
        return np.where(px >= 0, (g * self.sw[q]).sum(axis=1), 0.0)

    def upper(self) -> np.ndarray:
        """min over t of 2 (f(s'(t)) - f*), s'(t) the moved point (module doc)."""
        ed, q, e = self.ed, self.pair, self.edge
        within = self.j_in & self.k_in
        t = self.scale[:, None] * np.where(within[:, None], 1.0, _T_FRACTIONS[None, :])
        delta = self._shift(ed.i[e], q, t, self.phi_u) - self._shift(ed.j[e], q, t,
                                                                     self.phi_v)
        d, n = ed.d[e][:, None], ed.n[e][:, None]
        breg = n * (np.logaddexp(0.0, d + delta) - np.logaddexp(0.0, d)
                    - np.exp(ed.log_p[e])[:, None] * delta)
        total = np.add.reduceat(breg, self.starts, axis=0)
        tm, th = t * self.m_rest[:, None], t * self.half[:, None]
        total += np.exp(tm) * t ** 2 * self.r_rest[:, None] / 2.0
        total += self.core.leak * np.exp(th) * th ** 2 / 2.0
        return 2.0 * np.where(np.isnan(total), np.inf, total).min(axis=1)

    def _shift(self, x: np.ndarray, q: np.ndarray, t: np.ndarray, phi: np.ndarray
               ) -> np.ndarray:
        """s'(x) - s_hat(x) per (matchup end, t): the core moves by -t (phi - gauge); a
        pair end outside the core goes where the constraint puts it."""
        out = -t[q] * (phi - self.gauge[q])[:, None]
        out = np.where((self.core.pos[x] >= 0)[:, None], out, 0.0)
        end_j, end_k = self._end_targets(t)
        out = np.where(((x == self.rows[q]) & ~self.j_in[q])[:, None],
                       end_j[q] - self.hat_end[0][q][:, None], out)
        return np.where(((x == self.cols[q]) & ~self.k_in[q])[:, None],
                        end_k[q] - self.hat_end[1][q][:, None], out)

    def _end_targets(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, F) positions of j and k at t (for the ends outside the core): next to
        the other side's terminals, at the constrained gap."""
        mean_p = self.mean0[0][:, None] - t * self.slope[0][:, None]
        mean_m = self.mean0[1][:, None] - t * self.slope[1][:, None]
        c = self.value[:, None]
        mid = (mean_p + mean_m) / 2.0
        both_out = (~self.j_in & ~self.k_in)[:, None]
        return (np.where(both_out, mid + c / 2.0, mean_m + c),
                np.where(both_out, mid - c / 2.0, mean_p - c))

    def lower(self) -> np.ndarray:
        """max over mu of the weak-duality bound 2 (mu (est - c) - exact - rest)."""
        ed, e = self.ed, self.edge
        x = -_MU[None, :] * self.flow[:, None]                       # (K, M)
        n = ed.n[e][:, None]
        prob = np.exp(ed.log_p[e])[:, None] + x / n
        comp = np.exp(ed.log_q[e])[:, None] - x / n
        feasible = (prob >= 0.0) & (comp >= 0.0)
        prob, comp = np.clip(prob, 0.0, 1.0), np.clip(comp, 0.0, 1.0)
        kl = n * (xlogy(prob, prob) - prob * ed.log_p[e][:, None]
                  + xlogy(comp, comp) - comp * ed.log_q[e][:, None])
        kl = np.where(feasible, kl, np.inf)
        exact = np.add.reduceat(kl, self.starts, axis=0)
        rho = _MU[None, :] * self.m_rest[:, None]
        kappa = np.where(rho < 1.0, 1.0 / np.maximum(1.0 - rho, 1e-12) ** 2, np.inf)
        rest = kappa * _MU[None, :] ** 2 * self.r_rest[:, None] / 2.0
        rest = np.where((rho < 1.0) & ~np.isnan(rest), rest, np.inf)
        gain = _MU[None, :] * (self.est - self.value)[:, None] - exact - rest
        return 2.0 * np.maximum(gain.max(axis=1), 0.0)
