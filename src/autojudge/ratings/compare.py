"""Release-gate statistics: is the candidate worse than the baseline by more than m?

Per check (a judge, a tag) the question is a non-inferiority test with margin m, the
regression a release may tolerate, in Elo points:

  PASS        the lower bound of the candidate-minus-baseline interval is above -m:
              shown not worse by more than m;
  REGRESSION  its upper bound is below -m: shown worse by more than m;
  otherwise   inconclusive (also when battles never link the two models).

The estimate uses the prompts on which both models fought (paired by prompt and seed)
and, when the data bound the difference on both sides, combines the BT, head-to-head and
(for pointwise judges) paired-score paths of `gate_paths`, each resampled by the same
prompt-clustered bootstrap. When the data bound it on one side only (the candidate lost,
or won, every battle that links it to the baseline), or the bootstrap has no spread, the
interval is the profile-likelihood one (`profile`), with the unbounded side None.

p-values behind the decisions: `p_regression` tests H0 "diff >= -m" (small: evidence of
a regression beyond the margin), `p_pass` tests H0 "diff <= -m". The gate controls the
family-wise error of its REGRESSION claims over all checks of a call with Holm's method;
a PASS needs every check to pass, an intersection-union test whose error is at most the
per-check level without correction.

Example:
    >>> from autojudge.ratings.simulate import simulate_battles
    >>> sim = simulate_battles([1000.0, 1000.0, 900.0], n_prompts=60, seed=1)
    >>> res = rating_difference(sim.battles(), sim.prompt, baseline=0, candidate=1,
    ...                         rounds=200, seed=0, margin=200.0)
    >>> res.decide(alpha=0.025)
    'pass'
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr

from autojudge.errors import AutojudgeError
from autojudge.ratings.bootstrap import bootstrap_strengths
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, Battles, aggregate_matchups,
                                             fit_strengths)
from autojudge.ratings.gate_paths import combine_paths, joint_paths, pointwise_scores
from autojudge.ratings.intervals import likelihood_weights
from autojudge.ratings.profile import ContrastProfile
from autojudge.ratings.structure import battle_graph

OUTCOMES = ("pass", "regression", "inconclusive")
# Joint path resampling keeps a (rounds x prompts) weight matrix per chunk; beyond this
# many clusters (e.g. no prompt ids: every battle its own cluster) only the BT path runs.
_MAX_JOINT_CLUSTERS = 50_000
_NO_SPREAD = 1e-6


@dataclass(frozen=True)
class Difference:
    """candidate - baseline on the Elo scale and what the data say about it.

    `diff` is None when the data do not give a point value (models not linked, or
    linked on one side only); `ci_low` / `ci_high` None are open sides. `paths` holds
    each path's point estimate and combination weight (empty for the profile method).
    """

    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_worse: float | None
    p_regression: float | None
    p_pass: float | None
    n_prompts: int
    n_battles: int
    n_head_to_head: int
    rounds: int
    confidence: float
    margin: float
    method: str  # paths | bootstrap | profile | unlinked | none
    linked: bool = True
    paths: dict[str, Any] = field(default_factory=dict)

    def decide(self, *, alpha: float | None = None, min_prompts: int = 1,
               regression_p: float | None = None) -> str:
        """'pass', 'regression' or 'inconclusive' at the margin it was computed with.

        Args:
            alpha: one-sided level per claim; default (1 - confidence) / 2, which makes
                the decision agree with the two-sided interval shown.
            min_prompts: fewer shared prompts than this is inconclusive.
            regression_p: the (Holm-adjusted) p-value to use for a REGRESSION claim;
                default this check's own `p_regression`.
        """
        alpha = (1.0 - self.confidence) / 2.0 if alpha is None else alpha
        if not self.linked or self.n_prompts < max(1, min_prompts) or self.method == "none":
            return "inconclusive"
        p_reg = self.p_regression if regression_p is None else regression_p
        if self.ci_high is not None and self.ci_high < -self.margin and p_reg is not None \
                and p_reg < alpha:
            return "regression"
        if self.ci_low is not None and self.ci_low > -self.margin and self.p_pass is not None \
                and self.p_pass < alpha:
            return "pass"
        return "inconclusive"

    def as_dict(self) -> dict:
        """JSON-ready: floats rounded to 4 places, NaN as None."""
        def clean(v: Any) -> Any:
            if isinstance(v, float):
                return None if math.isnan(v) else round(v, 4)
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v
        return {k: clean(v) for k, v in asdict(self).items()}


def shared_prompt_mask(battles: Battles, clusters: np.ndarray, baseline: int,
                       candidate: int) -> np.ndarray:
    """Battles whose prompt (cluster) has battles of both the baseline and the candidate."""
    n_clusters = int(clusters.max()) + 1 if len(clusters) else 0

    def present(model: int) -> np.ndarray:
        hit = (battles.ia == model) | (battles.ib == model)
        return np.bincount(clusters[hit], minlength=n_clusters) > 0

    both = present(baseline) & present(candidate)
    return both[clusters] if len(clusters) else np.zeros(0, dtype=bool)


def rating_difference(battles: Battles, clusters: np.ndarray | None, baseline: int,
                      candidate: int, *, rounds: int = 1000, seed: int = 0,
                      confidence: float = 0.95, margin: float = 0.0,
                      prior: float = DEFAULT_PRIOR, base: float = 10.0,
                      scale: float = 400.0, paired: bool = True, paths: bool = True,
                      scores: dict[str, np.ndarray] | None = None) -> Difference:
    """Candidate minus baseline, with the most informative interval the data allow.

    Args:
        battles: encoded battles (any number of models).
        clusters: dense cluster codes per battle (prompt); None resamples single battles.
        baseline, candidate: model codes in `battles.names`.
        rounds: bootstrap rounds (0: no interval, the check is inconclusive).
        seed: bootstrap seed.
        confidence: level of the two-sided interval shown.
        margin: tolerated regression in Elo points (>= 0).
        prior: BT prior precision.
        base, scale: Elo scale.
        paired: keep only prompts where both models fought (needs clusters).
        paths: combine the BT, head-to-head and score paths; False: BT path alone
            (the estimator before paths, kept for comparison).
        scores: optional per-battle arrays "score_a", "score_b", "seed" (the score path).
    """
    _check_args(confidence, margin, baseline, candidate)
    scores = dict(scores or {})
    if clusters is not None and paired:
        keep = shared_prompt_mask(battles, clusters, baseline, candidate)
        battles = Battles(battles.names, battles.ia[keep], battles.ib[keep],
                          battles.score[keep],
                          None if battles.weight is None else battles.weight[keep])
        _, clusters = np.unique(clusters[keep], return_inverse=True)
        scores = {k: np.asarray(v)[keep] for k, v in scores.items()}
    n_prompts = int(len(np.unique(clusters))) if clusters is not None else len(battles.ia)
    h2h = int((((battles.ia == baseline) & (battles.ib == candidate))
               | ((battles.ia == candidate) & (battles.ib == baseline))).sum())
    base_info = dict(n_prompts=n_prompts, n_battles=len(battles.ia), n_head_to_head=h2h,
                     rounds=rounds, confidence=confidence, margin=margin)
    to_elo = scale / math.log(base)
    mu, index = aggregate_matchups(battles)
    graph = battle_graph(battles, mu)
    if not graph.linked(candidate, baseline):
        return Difference(None, None, None, None, None, None, method="unlinked",
                          linked=False, **base_info)
    if rounds <= 0:
        return Difference(None, None, None, None, None, None, method="none", **base_info)
    point = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models, prior)
    open_low, open_high = graph.open_sides_of_difference(candidate, baseline)
    if not (open_low or open_high):
        res = _resampled(battles, clusters, mu, index, candidate, baseline, point, scores,
                         rounds=rounds, seed=seed, prior=prior, to_elo=to_elo,
                         paths=paths, info=base_info)
        if res is not None:
            return res
    return _profiled(battles, clusters, graph, candidate, baseline, point, to_elo,
                     (not open_low, not open_high), base_info)


def _check_args(confidence: float, margin: float, baseline: int, candidate: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise AutojudgeError(f"confidence must be between 0 and 1, got {confidence}")
    if margin < 0 or not math.isfinite(margin):
        raise AutojudgeError(f"margin must be a finite number >= 0 Elo points, got {margin}")
    if baseline == candidate:
        raise AutojudgeError("baseline and candidate are the same model; name two models")


def _resampled(battles: Battles, clusters: np.ndarray | None, mu: Any, index: np.ndarray,
               candidate: int, baseline: int, point: np.ndarray, scores: dict, *,
               rounds: int, seed: int, prior: float, to_elo: float, paths: bool,
               info: dict) -> Difference | None:
    """Bootstrap (joint paths, or BT alone); None when the rounds show no spread."""
    n_clusters = 0 if clusters is None else int(clusters.max()) + 1
    if paths and clusters is not None and n_clusters <= _MAX_JOINT_CLUSTERS:
        paired_scores = pointwise_scores(battles, clusters, scores.get("seed"),
                                         scores.get("score_a"), scores.get("score_b"),
                                         candidate, baseline)
        found = joint_paths(battles, clusters, mu, index, candidate, baseline,
                            rounds=rounds, seed=seed, prior=prior, to_elo=to_elo,
                            start=point, scores=paired_scores)
        diff, draws, weights = combine_paths(found)
        detail = {name: {"diff": round(found[name][0], 4), "weight": weights[name]}
                  for name in found}
        method = "paths"
    else:
        boot = bootstrap_strengths(battles, clusters, rounds=rounds, seed=seed, prior=prior,
                                   start=point, matchups=(mu, index))
        draws = (boot[:, candidate] - boot[:, baseline]) * to_elo
        diff = float((point[candidate] - point[baseline]) * to_elo)
        detail, method = {}, "bootstrap"
    tail = 50.0 * (1.0 - info["confidence"])
    low, high = (float(v) for v in np.percentile(draws, [tail, 100.0 - tail]))
    if high - low <= _NO_SPREAD:
        return None
    m = info["margin"]
    return Difference(diff, min(low, diff), max(high, diff), float((draws < 0).mean()),
                      float((draws >= -m).mean()), float((draws <= -m).mean()),
                      method=method, paths=detail, **info)


def _profiled(battles: Battles, clusters: np.ndarray | None, graph: Any, candidate: int,
              baseline: int, point: np.ndarray, to_elo: float, bounded: tuple[bool, bool],
              info: dict) -> Difference:
    """Likelihood-ratio interval of the BT difference; an open side stays None."""
    members = graph.members(graph.component[candidate])
    local = {int(v): k for k, v in enumerate(members)}
    mu, _ = aggregate_matchups(battles, weight=likelihood_weights(battles, clusters))
    keep = np.isin(mu.i, members) & np.isin(mu.j, members)
    lut = np.full(battles.n_models, -1)
    lut[members] = np.arange(len(members))
    contrast = np.zeros(len(members))
    contrast[local[candidate]], contrast[local[baseline]] = 1.0, -1.0
    prof = ContrastProfile(lut[mu.i[keep]], lut[mu.j[keep]], mu.eff_i[keep], mu.eff_j[keep],
                           len(members), contrast, point[members])
    low = prof.bound(-1, info["confidence"]) if bounded[0] else None
    high = prof.bound(+1, info["confidence"]) if bounded[1] else None
    m_nats = -info["margin"] / to_elo
    root = prof.signed_root(m_nats)
    p_reg = float(ndtr(root)) if bounded[1] else 1.0  # H0 diff >= -m
    p_pass = float(ndtr(-root)) if bounded[0] else 1.0  # H0 diff <= -m
    diff = float(prof.estimate * to_elo) if all(bounded) else None
    return Difference(diff, None if low is None else low * to_elo,
                      None if high is None else high * to_elo,
                      None, p_reg, p_pass, method="profile", **info)
