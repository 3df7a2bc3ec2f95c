"""The profile deviance of one pair, on the models that can matter, with a preconditioned
Newton method (`pairwise` calls it for the pairs its bounds leave undecided).

For j reaching k, the profile of s_j - s_k at c involves only the models on some chain
of effective wins from j to k: every other strongly connected component can be moved
off to +-infinity along the SCC DAG without touching the constraint, which sends each of
its cross-SCC matchups' -log-likelihood to 0 in the constrained and in the unconstrained
fit alike. On that sub-problem the constrained maximum is finite (every SCC on a chain
is pinned between j and k), so Newton converges quadratically from the fit.

Each Newton step solves the KKT system through two conjugate-gradient solves with the
graph Laplacian at the current point, preconditioned by the pseudo-inverse of the core's
Laplacian at the fit (`pair_bounds.Core.green`): the constrained optimum moves the core
little away from the pair, so a few iterations suffice and no matrix is factorised.

A caller that only compares D with a cut-off stops earlier on either side: below it as
soon as a feasible point is (an upper bound), above it as soon as a dual point is (a
lower bound by weak duality, exact at the optimum: `_Dual`). A few factorisation-free
chord steps (`pair_chord`) come first and settle nearly every pair; Newton only
finishes what they leave.

The deviance agrees with `profile.ContrastProfile.deviance` on the whole component up to
the separated matchups' residual likelihood at the ridge (~1e-8); `pairwise` recomputes
it the old way when it lies that close to the cut-off.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.linalg import cho_factor, cho_solve
from scipy.special import entr, expit

from autojudge.ratings.pair_bounds import Core, Edges
from autojudge.ratings.pair_chord import ChordSolver, backtrack, chord_steps, nll

_GAIN_TOL = 1e-10
_CG_TOL = 1e-11
_CG_MAX = 400
_NEWTON_MAX = 100
_KKT_TOL = 1e-6
# A dual bound is trusted while its divergence error moves it by less than this (nats).
_DIV_TOL = 1e-8
# Up to this many models a dense Cholesky per Newton step (m^3 / 3 flops, one BLAS call)
# is faster than conjugate gradients (a few dozen small numpy calls per solve).
_DENSE_MAX = 700


def chain_deviance(core: Core, ed: Edges, s_hat: np.ndarray, nodes: np.ndarray,
                   j: int, k: int, value: float, below: float = -np.inf,
                   above: float = np.inf) -> float | None:
    """D(value) of s_j - s_k on the sub-problem of component-local `nodes` (j, k and the
    models on chains between them, all SCCs whole); None when Newton stopped short of
    the constrained optimum (the caller then fits the whole component).

    Once a feasible point's deviance is under `below` that value comes back instead (an
    upper bound of D: enough for a caller that compares D with a cut-off above it);
    once a dual point's bound is over `above`, that bound (a lower bound of D)."""
    local = np.full(len(s_hat), -1, dtype=np.int64)
    local[nodes] = np.arange(len(nodes))
    eid = np.flatnonzero((local[ed.i] >= 0) & (local[ed.j] >= 0))
    i, jj = local[ed.i[eid]], local[ed.j[eid]]
    n, a = ed.n[eid], ed.wins[eid]
    # the sup: each SCC's own matchups at the fit (cross-SCC ones go to 0 at infinity)
    same = ed.scc[ed.i[eid]] == ed.scc[ed.j[eid]]
    s_sub = s_hat[nodes]
    top = nll(s_sub[i[same]] - s_sub[jj[same]], n[same], a[same])
    contrast = np.zeros(len(nodes))
    contrast[local[j]], contrast[local[k]] = 1.0, -1.0
    if len(nodes) > _DENSE_MAX and not (core.pos[nodes] >= 0).any():
        return None  # no preconditioner for conjugate gradients
    s0 = s_sub + (value - (s_sub[local[j]] - s_sub[local[k]])) * _levels(
        core, s_hat, nodes, j, k)
    start = 2.0 * (nll(s0[i] - s0[jj], n, a) - top)
    if start < below:  # squeezing the chain already fits the data well enough
        return start
    dual = _Dual(value, top, above)
    if (core.pos[nodes] >= 0).any():
        # factorisation-free steps first: most pairs are settled there (`pair_chord`)
        solver = ChordSolver(core, nodes, i, jj, ed.w[eid])
        s0 = chord_steps(solver, s0, (i, jj, n, a), contrast, top + below / 2.0, dual)
        if dual.bound > above:
            return dual.bound
        start = 2.0 * (nll(s0[i] - s0[jj], n, a) - top)
        if start < below:
            return start
    pre = None if len(nodes) <= _DENSE_MAX else _Preconditioner(core, nodes)
    s1 = _newton(s0, i, jj, n, a, contrast, pre, top + below / 2.0, dual)
    if dual.bound > above:
        return dual.bound
    return None if s1 is None else 2.0 * (nll(s1[i] - s1[jj], n, a) - top)


def _levels(core: Core, s_hat: np.ndarray, nodes: np.ndarray, j: int, k: int
            ) -> np.ndarray:
    """A start direction phi with phi_j - phi_k = 1: for a pair inside the core, its
    Newton direction at the fit (the core's Laplacian pseudo-inverse); else one that
    keeps the fit's order: the core stays, models above it are squeezed towards it in
    proportion to their height, models below likewise."""
    in_core = core.pos[nodes] >= 0
    j_in, k_in = core.pos[j] >= 0, core.pos[k] >= 0
    out = np.zeros(len(nodes))
    if j_in and k_in and in_core.all():
        # the pair's Newton direction at the fit: most of the way to the optimum
        pj, pk = core.pos[j], core.pos[k]
        phi = core.green[:, pj] - core.green[:, pk]
        return phi[core.pos[nodes]] / max(float(phi[pj] - phi[pk]), 1e-300)
    if (j_in and k_in) or not in_core.any():
        out[nodes == j], out[nodes == k] = 0.5, -0.5
        return out
    s = s_hat[nodes]
    top, bottom = float(s[in_core].max()), float(s[in_core].min())
    up = 0.0 if j_in else (1.0 if k_in else 0.5)
    if not j_in:
        out += up * np.clip((s - top) / max(float(s_hat[j]) - top, 1e-12), 0.0, 1.0)
    if not k_in:
        out -= (1.0 - up) * np.clip((bottom - s) / max(bottom - float(s_hat[k]), 1e-12),
                                    0.0, 1.0)
    out[in_core] = 0.0
    return out


class _Preconditioner:
    """z = M r: the core's Laplacian pseudo-inverse at the fit on core models, the
    inverse diagonal elsewhere; projected onto sum-zero vectors (the Laplacian's range)."""

    def __init__(self, core: Core, nodes: np.ndarray):
        pos = core.pos[nodes]
        self.in_core = np.flatnonzero(pos >= 0)
        self.green = core.green[np.ix_(pos[self.in_core], pos[self.in_core])]
        self.outside = np.flatnonzero(pos < 0)
        self.diag = np.ones(len(nodes))

    def __call__(self, r: np.ndarray) -> np.ndarray:
        z = r / self.diag
        z[self.in_core] = self.green @ r[self.in_core]
        return z - z.mean()


def _newton(s: np.ndarray, i: np.ndarray, j: np.ndarray, n: np.ndarray, a: np.ndarray,
            contrast: np.ndarray, pre: _Preconditioner | None, enough: float = -np.inf,
            dual: _Dual | None = None) -> np.ndarray | None:
    """Newton's method on the unpenalised -log-likelihood with contrast's fixed (as
    `profile._maximise`: Armijo backtracking, stop when a step gains < 1e-10), or until
    the -log-likelihood is under `enough`, or until `dual` certifies its target; None
    when it stops short of stationarity. Directions by dense Cholesky without a
    preconditioner, else by conjugate gradients."""
    m = len(s)
    f0 = nll(s[i] - s[j], n, a)
    for _ in range(_NEWTON_MAX):
        d = s[i] - s[j]
        p = expit(d)
        g_pair = n * p - a
        grad = np.bincount(i, g_pair, m) - np.bincount(j, g_pair, m)
        w = n * p * (1.0 - p)
        y_g, y_a = _directions(i, j, w, m, grad - grad.mean(), contrast, pre)
        if dual is not None and dual.certifies(s, i, j, n, a, g_pair, w, grad, y_g, y_a,
                                               contrast):
            return s
        step = y_g - y_a * float(contrast @ y_g) / float(contrast @ y_a)
        slope = float(grad @ step)
        found = backtrack(s, step, f0, slope, (i, j, n, a), 1e-8)
        if found is None:
            break
        s, f1, t = found
        gained, f0 = f0 - f1, f1
        if f0 < enough:
            return s
        if gained < _GAIN_TOL or np.abs(t * step).max() < 1e-10:
            break
    return s if _stationary(s, i, j, n, a, contrast) else None


class _Dual:
    """Weak-duality lower bounds of the sub-problem's D(value), one per Newton iterate.

    For any edge flow u with divergence lam (e_j - e_k) (node v: the flow of matchups
    where v is i minus that where v is j), P(value) >= lam value - sum_e l*_e(u_e), and
    the matchup's conjugate is l*_e(u) = -n H(q), q = (u + a) / n in [0, 1] (H the
    binary entropy in nats). The iterate's own matchup gradients have divergence
    grad f; the part of it off the contrast is routed back by an electrical flow over
    the Newton system's Laplacian, whose potentials are the two solves Newton already
    made (L+ grad - lam L+ contrast). At the constrained optimum the bound is exact, so
    it passes a target beyond the cut-off within a step or two of Newton instead of
    the full convergence a deviance needs."""

    def __init__(self, value: float, top: float, target: float):
        self.value, self.top, self.target = value, top, target
        self.bound = -np.inf

    def certifies(self, s: np.ndarray, i: np.ndarray, j: np.ndarray, n: np.ndarray,
                  a: np.ndarray, g_pair: np.ndarray, w: np.ndarray, grad: np.ndarray,
                  y_g: np.ndarray, y_a: np.ndarray, contrast: np.ndarray) -> bool:
        """Whether the dual point at this iterate bounds D above the target."""
        if not np.isfinite(self.target):
            return False
        lam = float(contrast @ grad) / float(contrast @ contrast)
        phi = lam * y_a - y_g  # potentials of the flow that cancels grad - lam contrast
        u = g_pair + w * (phi[i] - phi[j])
        m = len(s)
        resid = np.bincount(i, u, m) - np.bincount(j, u, m) - lam * contrast
        # floating-point divergence error moves the bound by about resid . s
        if float(np.abs(resid).sum()) * (float(np.abs(s).max()) + 1.0) > _DIV_TOL:
            return False
        live = n > 0
        q = (u[live] + a[live]) / n[live]
        if not ((q >= 0.0) & (q <= 1.0)).all():
            return False
        entropy = float((n[live] * (entr(q) + entr(1.0 - q))).sum())
        self.bound = max(self.bound, 2.0 * (lam * self.value + entropy - self.top))
        return self.bound > self.target


def _stationary(s: np.ndarray, i: np.ndarray, j: np.ndarray, n: np.ndarray, a: np.ndarray,
                contrast: np.ndarray) -> bool:
    """The gradient is a multiple of the contrast (KKT) to ~1e-6: the -log-likelihood is
    then within ~1e-12 of the constrained minimum."""
    p = expit(s[i] - s[j])
    g_pair = n * p - a
    grad = np.bincount(i, g_pair, len(s)) - np.bincount(j, g_pair, len(s))
    resid = grad - contrast * float(contrast @ grad) / float(contrast @ contrast)
    return bool(np.abs(resid - resid.mean()).max() < _KKT_TOL)


def _directions(i: np.ndarray, j: np.ndarray, w: np.ndarray, m: int, grad: np.ndarray,
                contrast: np.ndarray, pre: _Preconditioner | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """L^+ grad and L^+ contrast for the weighted Laplacian L (both sum to zero; the
    sub-problem's graph is connected, so L + 11'/m is positive definite)."""
    if pre is None:
        dense = np.bincount(i * m + j, w, m * m).reshape(m, m)
        dense = -(dense + dense.T)
        dense[np.diag_indices(m)] = -dense.sum(axis=1)
        factor = cho_factor(dense + 1.0 / m)
        both = cho_solve(factor, np.stack([grad, contrast], axis=1))
        return both[:, 0], both[:, 1]
    hess = _laplacian(i, j, w, m)
    pre.diag = np.maximum(np.bincount(i, w, m) + np.bincount(j, w, m), 1e-300)
    return _pcg(hess, grad, pre), _pcg(hess, contrast, pre)


def _laplacian(i: np.ndarray, j: np.ndarray, w: np.ndarray, m: int) -> sparse.csr_matrix:
    diag = np.bincount(i, w, m) + np.bincount(j, w, m)
    idx = np.arange(m)
    return sparse.csr_matrix((np.concatenate([diag, -w, -w]),
                              (np.concatenate([idx, i, j]), np.concatenate([idx, j, i]))),
                             shape=(m, m))


def _pcg(hess: sparse.csr_matrix, rhs: np.ndarray, pre: _Preconditioner) -> np.ndarray:
    """Preconditioned conjugate gradients for hess x = rhs on sum-zero vectors."""
    x = np.zeros_like(rhs)
    r = rhs - rhs.mean()
    z = pre(r)
    p = z.copy()
    rz = float(r @ z)
    limit = _CG_TOL * float(np.linalg.norm(r))
    for _ in range(_CG_MAX):
        if float(np.linalg.norm(r)) <= limit or rz == 0.0:
            break
        hp = hess @ p
        curv = float(p @ hp)
        if curv <= 0.0:
            break  # breakdown at working precision: the caller checks stationarity
        alpha = rz / curv
        x += alpha * p
        r -= alpha * hp
        z = pre(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x

