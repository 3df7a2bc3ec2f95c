"""Factorisation-free steps for a pair's chain fit (`pair_exact.chain_deviance`).

A Newton step on the chain sub-problem solves with the weighted Laplacian at the current
point: a dense Cholesky, O(models^3), per step and per pair, which is what made the
pairwise order grow about cubically. Most pairs are settled within a few steps by a
feasible point below the cut-off or a dual point above it (`pair_exact._Dual`), and
neither needs *the* Newton matrix: any Laplacian over the sub-problem's matchups gives a
descent direction and a valid dual flow. The chord matrix here is

- on matchups inside the core, the core's Laplacian at the fit, whose pseudo-inverse G
  `pair_bounds.build_core` already holds;
- on matchups with an end outside the core (j or k, and the other models on chains
  between them: a handful), their weights at the current point.

Eliminating the outside models (a small dense system) leaves the core's Laplacian plus
a Laplacian on the few core models they touch (Kron reduction), solved from G by the
Woodbury identity: O(core^2) per step instead of O(core^3). The steps converge linearly
rather than quadratically; the caller falls back to Newton when they have not settled
the pair.

Pure numpy, no I/O.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from autojudge.ratings.pair_bounds import Core

_STEPS = 4
_MIN_WEIGHT = 1e-9  # keeps the outside block invertible for matchups the fit ran off


class ChordSolver:
    """Solves M x = r (r summing to 0) for the chord matrix of one chain sub-problem.

    Args:
        core: the component's core at the fit.
        nodes: the sub-problem's component-local models (every core model among them).
        i, j: the sub-problem's matchups, in sub-problem numbering.
        w_hat: each matchup's Laplacian weight at the fit.
    """

    def __init__(self, core: Core, nodes: np.ndarray, i: np.ndarray, j: np.ndarray,
                 w_hat: np.ndarray):
        pos = core.pos[nodes]
        self.green, self.c = core.green, len(core.nodes)
        self.inside = np.flatnonzero(pos >= 0)
        self.at = pos[self.inside]                   # core position of each inside model
        self.outside = np.flatnonzero(pos < 0)
        where = np.full(len(nodes), -1, dtype=np.int64)
        where[self.outside] = np.arange(len(self.outside))
        self.i, self.j, self.w_hat = i, j, w_hat
        self.core_edge = (pos[i] >= 0) & (pos[j] >= 0)
        self.pos_i, self.pos_j = pos[i], pos[j]
        self.x_i, self.x_j = where[i], where[j]
        touched = np.concatenate([pos[i][(pos[i] >= 0) & (pos[j] < 0)],
                                  pos[j][(pos[j] >= 0) & (pos[i] < 0)]])
        self.touched = np.unique(touched)            # core positions next to outside
        self.k_touched = self.green[:, self.touched] + 1.0 / self.c   # K = G + 11'/c

    def weights(self, w: np.ndarray) -> np.ndarray:
        """The chord matrix's matchup weights, given the current ones."""
        return np.where(self.core_edge, self.w_hat, np.maximum(w, _MIN_WEIGHT))

    def solve(self, weights: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """x (sub-problem numbering, one column per column of rhs) with M x = rhs."""
        x_n, t_n = len(self.outside), len(self.touched)
        cross = ~self.core_edge
        wc = weights[cross]
        pi, pj, xi, xj = self.pos_i[cross], self.pos_j[cross], self.x_i[cross], self.x_j[cross]
        m_x = np.zeros((x_n, x_n))
        for a_, b_ in ((xi, xj), (xj, xi)):
            out = a_ >= 0
            np.add.at(m_x, (a_[out], a_[out]), wc[out])
            both = out & (b_ >= 0)
            np.add.at(m_x, (a_[both], b_[both]), -wc[both])
        slot = np.full(self.c, -1, dtype=np.int64)
        slot[self.touched] = np.arange(t_n)
        b_mat = np.zeros((t_n, x_n))                 # coupling, touched core x outside
        d_vec = np.zeros(t_n)
        for p_, x_ in ((pi, xj), (pj, xi)):
            one = (p_ >= 0) & (x_ >= 0)
            np.add.at(b_mat, (slot[p_[one]], x_[one]), wc[one])
            np.add.at(d_vec, slot[p_[one]], wc[one])
        r_c = np.zeros((self.c, rhs.shape[1]))
        r_c[self.at] = rhs[self.inside]
        r_x = rhs[self.outside]
        inv_rx = np.linalg.solve(m_x, r_x) if x_n else r_x
        r_c[self.touched] += b_mat @ inv_rx
        # Kron reduction of the outside block onto the touched core models
        p_s = np.diag(d_vec) - b_mat @ np.linalg.solve(m_x, b_mat.T) if x_n else \
            np.zeros((0, 0))
        v = self.green @ r_c
        if t_n:
            k_ss = self.k_touched[self.touched]
            inner = np.linalg.solve(np.eye(t_n) + k_ss @ p_s, v[self.touched])
            v -= self.k_touched @ (p_s @ inner)
        out = np.zeros((len(rhs), rhs.shape[1]))
        out[self.inside] = v[self.at]
        if x_n:
            out[self.outside] = np.linalg.solve(m_x, r_x + b_mat.T @ v[self.touched])
        return out


def chord_steps(solver: ChordSolver, s: np.ndarray, problem: tuple, contrast: np.ndarray,
                enough: float, dual: Any) -> np.ndarray:
    """Up to `_STEPS` chord steps with Armijo backtracking, keeping the contrast fixed;
    stops early once the -log-likelihood is under `enough` or `dual` certifies."""
    i, j, n, a = problem
    m = len(s)
    f0 = nll(s[i] - s[j], n, a)
    for _ in range(_STEPS):
        p = expit(s[i] - s[j])
        g_pair = n * p - a
        grad = np.bincount(i, g_pair, m) - np.bincount(j, g_pair, m)
        weights = solver.weights(n * p * (1.0 - p))
        y = solver.solve(weights, np.stack([grad - grad.mean(), contrast], axis=1))
        if dual.certifies(s, i, j, n, a, g_pair, weights, grad, y[:, 0], y[:, 1], contrast):
            return s
        step = y[:, 0] - y[:, 1] * float(contrast @ y[:, 0]) / float(contrast @ y[:, 1])
        slope = float(grad @ step)
        if not np.isfinite(slope) or slope <= 0.0:
            return s
        found = backtrack(s, step, f0, slope, (i, j, n, a), 1e-4)
        if found is None:
            return s
        s, f0, _ = found
        if f0 < enough:
            return s
    return s


def backtrack(s: np.ndarray, step: np.ndarray, f0: float, slope: float,
              matchups: tuple[np.ndarray, ...], t_min: float
              ) -> tuple[np.ndarray, float, float] | None:
    """Armijo backtracking along -`step` from `s`: (the new strengths, their negative
    log-likelihood, the step length), or None when no length >= `t_min` decreases it
    enough. `matchups`: (i, j, n, a) as `nll` takes them."""
    i, j, n, a = matchups
    t = 1.0
    while t > t_min:
        trial = s - t * step
        f1 = nll(trial[i] - trial[j], n, a)
        if f1 <= f0 - 1e-4 * t * slope:
            return trial, f1, t
        t *= 0.5
    return None


def nll(d: np.ndarray, n: np.ndarray, a: np.ndarray) -> float:
    """Negative log-likelihood of `a` wins in `n` battles at strength differences `d`."""
    return float((n * np.logaddexp(0.0, d) - a * d).sum())
