"""Profile-likelihood bounds for a Bradley-Terry contrast, valid under separation.

When a bootstrap cannot say anything (a model that won every decisive battle: every
resample is separated too, so every round returns the prior's value; or data with no
spread at all, such as one prompt or nothing but ties), the likelihood still bounds the
contrast on the side the data constrain. For a contrast c = a's (e.g. a model's strength
minus its component mean, or candidate minus baseline) the profile log-likelihood is

    l_p(c) = sup { l(s) : a's = c }

and the interval at level `confidence` is { c : 2 (sup l - l_p(c)) <= chi2_1(confidence) },
the likelihood-ratio interval (equivalently each bound is a one-sided bound at level
(1 + confidence) / 2). Under separation sup l is approached only at infinity, and l_p
stays within the cut-off on the open side forever: that side has no bound, and
`structure.BattleGraph` says which side that is before any numerics.

The likelihood here is the *unpenalised* one: the rating prior is there to keep point
ratings finite, and must not make a bound. Numerically the suprema are taken with a
vanishing ridge (`_RIDGE`, 1e-9 precision), whose effect on l is below 1e-6 nats.

Example:
    >>> import numpy as np
    >>> # a beat b 20 times out of 20: c = s_a - s_b is bounded below only
    >>> low, high = contrast_interval(np.array([0]), np.array([1]), np.array([20.0]),
    ...                               np.array([0.0]), 2, np.array([1.0, -1.0]),
    ...                               confidence=0.95, sides=(True, False))
    >>> round(low, 2), high
    (2.29, None)
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve
from scipy.special import expit, ndtri

from autojudge.errors import AutojudgeError

_RIDGE = 1e-9
_GAIN_TOL = 1e-10
_MAX_SPAN = 60.0  # nats (~10,000 Elo): a bound not reached by then counts as open
# Beyond this many strengths Newton steps use a sparse Hessian (same steps, O(matchups)
# memory); below it a dense LAPACK solve is faster.
_DENSE_MAX = 150


def _nll(s: np.ndarray, i: np.ndarray, j: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    d = s[i] - s[j]
    return float(((a + b) * np.logaddexp(0.0, d) - a * d).sum())


def _grad_hess(s: np.ndarray, i: np.ndarray, j: np.ndarray, a: np.ndarray, b: np.ndarray
               ) -> tuple[np.ndarray, Any]:
    """Gradient and Hessian of the ridge-penalised negative log-likelihood; the Hessian
    is dense for small problems and sparse beyond `_DENSE_MAX` strengths (it is a weighted
    graph Laplacian: as sparse as the matchups, and a dense one costs O(m^3) a step)."""
    m = len(s)
    p = expit(s[i] - s[j])
    g_pair = (a + b) * p - a
    grad = _RIDGE * s + np.bincount(i, g_pair, m) - np.bincount(j, g_pair, m)
    w = (a + b) * p * (1.0 - p)
    diag = _RIDGE + np.bincount(i, w, m) + np.bincount(j, w, m)
    if m > _DENSE_MAX:
        idx = np.arange(m)
        hess = sparse.csc_matrix((np.concatenate([diag, -w, -w]),
                                  (np.concatenate([idx, i, j]), np.concatenate([idx, j, i]))),
                                 shape=(m, m))
        return grad, hess
    hess = np.diag(diag)
    np.add.at(hess, (i, j), -w)
    np.add.at(hess, (j, i), -w)
    return grad, hess


def _newton_direction(hess: Any, grad: np.ndarray, contrast: np.ndarray | None
                      ) -> np.ndarray:
    """H^-1 g, or with a's fixed the KKT system [[H, a], [a', 0]] [step; lambda] = [g; 0]."""
    m = len(grad)
    if contrast is None:
        if sparse.issparse(hess):
            return spsolve(hess, grad)
        return np.linalg.solve(hess, grad)
    if sparse.issparse(hess):
        col = sparse.csc_matrix(contrast[:, None])
        kkt = sparse.bmat([[hess, col], [col.T, None]], format="csc")
        return spsolve(kkt, np.append(grad, 0.0))[:m]
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = hess
    kkt[:m, m] = contrast
    kkt[m, :m] = contrast
    return np.linalg.solve(kkt, np.append(grad, 0.0))[:m]


def _maximise(s: np.ndarray, i: np.ndarray, j: np.ndarray, a: np.ndarray, b: np.ndarray,
              contrast: np.ndarray | None, max_iter: int = 500) -> np.ndarray:
    """Newton's method on the ridge-penalised objective, keeping a's fixed when given
    (the start must then already satisfy it: steps stay in the constraint's null space).

    Stops when a step gains less than `_GAIN_TOL` in the objective: under separation the
    optimum runs off towards log(n / ridge) at about one nat per step while the gains
    shrink geometrically, so the log-likelihood is then within ~2 x _GAIN_TOL of its
    supremum, far below what a bound needs (and nothing is gained by creeping on)."""
    f0 = _nll(s, i, j, a, b) + 0.5 * _RIDGE * s @ s
    for _ in range(max_iter):
        grad, hess = _grad_hess(s, i, j, a, b)
        step = _newton_direction(hess, grad, contrast)
        slope = float(grad @ step)
        t, f1 = 1.0, f0
        while t > 1e-8:
            trial = s - t * step
            f1 = _nll(trial, i, j, a, b) + 0.5 * _RIDGE * trial @ trial
            if f1 <= f0 - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break  # no descent left at working precision
        s = s - t * step
        gained, f0 = f0 - f1, f1
        if gained < _GAIN_TOL or np.abs(t * step).max() < 1e-10:
            break
    return s


def maximise_likelihood(i: np.ndarray, j: np.ndarray, eff_i: np.ndarray, eff_j: np.ndarray,
                        n_models: int, start: np.ndarray | None = None) -> np.ndarray:
    """The (vanishing-ridge) maximum of the unpenalised likelihood, from `start`."""
    s0 = np.zeros(n_models) if start is None else np.array(start, dtype=np.float64)
    return _maximise(s0, i, j, np.asarray(eff_i, dtype=np.float64),
                     np.asarray(eff_j, dtype=np.float64), None)


class ContrastProfile:
    """The profile likelihood of one contrast `a's` over aggregated matchups.

    Args:
        i, j, eff_i, eff_j: aggregated matchups (effective wins of i over j and of j
            over i), as `bradley_terry.Matchups`; weights may be fractional.
        n_models: number of strengths.
        contrast: coefficients a with sum 0 (a gauge-free contrast).
        start: a starting point for the unconstrained fit (e.g. the point estimate).
        fitted: the unconstrained fit itself (`maximise_likelihood`), when the caller
            profiles several contrasts of one problem (it is the same for all of them).
    """

    def __init__(self, i: np.ndarray, j: np.ndarray, eff_i: np.ndarray, eff_j: np.ndarray,
                 n_models: int, contrast: np.ndarray, start: np.ndarray | None = None,
                 fitted: np.ndarray | None = None):
        self.i, self.j = i, j
        self.a = np.asarray(eff_i, dtype=np.float64)
        self.b = np.asarray(eff_j, dtype=np.float64)
        self.contrast = np.asarray(contrast, dtype=np.float64)
        self._norm = float(self.contrast @ self.contrast)
        self.s_hat = maximise_likelihood(i, j, self.a, self.b, n_models, start) \
            if fitted is None else fitted
        self.top = -_nll(self.s_hat, i, j, self.a, self.b)
        #: the contrast at the (ridge) maximum: huge when the data separate that way
        self.estimate = float(self.contrast @ self.s_hat)

    def deviance(self, value: float) -> float:
        """2 (sup l - l_p(value)): 0 at the estimate, growing away from it (convex).

        Every evaluation starts from the same point (the estimate moved onto the
        constraint): under separation the constrained optimum may lie at infinity, where
        the stopping point depends on the path, so a warm start from the previous value
        could make the function disagree with itself and break the root bracket."""
        s0 = self.s_hat + (value - self.estimate) * self.contrast / self._norm
        s1 = _maximise(s0, self.i, self.j, self.a, self.b, self.contrast)
        return 2.0 * (self.top + _nll(s1, self.i, self.j, self.a, self.b))

    def signed_root(self, value: float) -> float:
        """sign(estimate - value) * sqrt(deviance): ~N(0, 1) at the true value, so
        `ndtr(signed_root(x))` is the one-sided p-value of H0 "contrast >= x"."""
        dev = max(self.deviance(value), 0.0)
        return float(np.sign(self.estimate - value) * np.sqrt(dev))

    def bound(self, side: int, confidence: float) -> float | None:
        """The lower (side -1) or upper (side +1) likelihood-ratio bound at two-sided
        `confidence`, or None when none lies within `_MAX_SPAN` nats (open side)."""
        cut = z_value(confidence) ** 2  # chi2_1 quantile at `confidence`
        near, far, width = self.estimate, None, 0.25
        while width <= _MAX_SPAN:
            trial = self.estimate + side * width
            if self.deviance(trial) > cut:
                far = trial
                break
            near, width = trial, 2.0 * width
        if far is None:
            return None
        from scipy.optimize import brentq  # ~0.13 s import: only when a bound is needed

        try:
            root = brentq(lambda c: self.deviance(c) - cut, min(near, far), max(near, far),
                          xtol=1e-7)
        except ValueError:  # numerically flat at the bracket: keep the conservative end
            root = far
        # A bound never excludes the estimate (rounding must not put it outside).
        return min(root, self.estimate) if side < 0 else max(root, self.estimate)


def contrast_interval(i: np.ndarray, j: np.ndarray, eff_i: np.ndarray, eff_j: np.ndarray,
                      n_models: int, contrast: np.ndarray, *, confidence: float,
                      sides: tuple[bool, bool] = (True, True),
                      start: np.ndarray | None = None) -> tuple[float | None, float | None]:
    """Likelihood-ratio bounds of `contrast @ s` (natural-log strengths).

    Args:
        i, j, eff_i, eff_j, n_models, contrast, start: as `ContrastProfile`.
        confidence: two-sided level; each bound is one-sided at (1 + confidence) / 2.
        sides: which bounds to compute (lower, upper); the others come back None. Pass
            False for a side that `BattleGraph` says is open.

    Returns:
        (lower, upper) in nats; None for a side not asked for or not bounded within
        `_MAX_SPAN` nats of the estimate.
    """
    if not 0.0 < confidence < 1.0:
        raise AutojudgeError(f"confidence must be between 0 and 1, got {confidence!r}")
    prof = ContrastProfile(i, j, eff_i, eff_j, n_models, contrast, start)
    return (prof.bound(-1, confidence) if sides[0] else None,
            prof.bound(+1, confidence) if sides[1] else None)


def z_value(confidence: float) -> float:
    """The standard normal quantile matching a two-sided `confidence` (scipy.special, not
    scipy.stats: that import alone costs ~0.5 s)."""
    return float(ndtri(0.5 + confidence / 2.0))
