"""Release-gate statistics: candidate minus baseline BT rating, prompt-clustered bootstrap.

Estimator (documented in docs/statistics.md): restrict the battle log to the prompts on
which both the baseline and the candidate fought (so every prompt contributes to both
sides: the comparison is paired by prompt and seed), fit Bradley-Terry by penalised
maximum likelihood on ALL battles of those prompts (head-to-head battles and battles
against common opponents both inform the difference), and take
`diff = rating[candidate] - rating[baseline]` in Elo points. Its sampling distribution
comes from a prompt-clustered bootstrap: each round redraws whole prompts (all their
battles, all seeds) with replacement and refits, so prompt-level effects that move both
models at once are resampled together. All rounds are fitted at once by the batched
Newton solver in `bradley_terry` (`bootstrap_strengths`).

Decision at confidence c with margin m (Elo points, >= 0), with [low, high] the two-sided
percentile c-interval of diff (the CI that is printed):
  regression    high < -m: the whole CI lies below -m (equivalently the bootstrap puts
                less than (1 - c) / 2 of its mass at or above -m)
  inconclusive  not a regression, but fewer than `min_prompts` shared prompts or the
                CI is wider than `max_ci_width`
  pass          otherwise
Equal models raise a false alarm with probability about (1 - c) / 2 (2.5% at 0.95), so
the false-alarm rate stays under 1 - c even when the bootstrap is slightly narrow, and
the decision always agrees with the CI shown. (A one-sided c-bound would be more
powerful but sits exactly at 1 - c: measured 5.2% over 1000 equal-model runs.)

Example:
    >>> from autojudge.ratings.simulate import simulate_battles
    >>> sim = simulate_battles([1000.0, 1000.0, 900.0], n_prompts=60, seed=1)
    >>> res = rating_difference(sim.battles(), sim.prompt, baseline=0, candidate=1,
    ...                         rounds=200, seed=0)
    >>> res.decide(min_prompts=10, max_ci_width=1000.0)
    'pass'
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from autojudge.errors import AutojudgeError
from autojudge.ratings.bootstrap import bootstrap_strengths
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, Battles, aggregate_matchups,
                                             fit_strengths)

OUTCOMES = ("pass", "regression", "inconclusive")


@dataclass(frozen=True)
class Difference:
    """candidate - baseline on the Elo scale, with its bootstrap distribution summary.

    p_worse: bootstrap share of rounds with diff < 0; p_worse_by_margin: with diff < -margin.
    """

    diff: float
    ci_low: float
    ci_high: float
    p_worse: float
    p_worse_by_margin: float
    n_prompts: int
    n_battles: int
    n_head_to_head: int
    rounds: int
    confidence: float
    margin: float

    def decide(self, *, min_prompts: int = 10, max_ci_width: float = 150.0) -> str:
        """'regression', 'inconclusive' or 'pass' (see the module docstring) at the margin
        and confidence this difference was computed with."""
        if self.n_prompts >= max(1, min_prompts) and self.rounds > 0 \
                and self.ci_high < -self.margin:
            return "regression"
        if self.n_prompts < max(1, min_prompts) or self.rounds == 0 \
                or self.ci_high - self.ci_low > max_ci_width:
            return "inconclusive"
        return "pass"

    def as_dict(self) -> dict:
        """JSON-ready: floats rounded to 4 places, NaN (no bootstrap) as None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else
                    round(v, 4) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}


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
                      scale: float = 400.0, paired: bool = True) -> Difference:
    """Candidate minus baseline BT rating with a cluster bootstrap.

    Args:
        battles: encoded battles (any number of models).
        clusters: dense cluster codes per battle (prompt); None resamples single battles
            (the naive bootstrap, reported for comparison only).
        baseline, candidate: model codes in `battles.names`.
        rounds: bootstrap rounds (0: point estimate only).
        seed: bootstrap seed.
        confidence: level of the two-sided CI and of the one-sided decision bound.
        margin: tolerated regression in Elo points (>= 0).
        prior: BT prior precision.
        base, scale: Elo scale.
        paired: keep only prompts where both models fought (needs clusters).
    """
    if not 0.0 < confidence < 1.0:
        raise AutojudgeError(f"confidence must be between 0 and 1, got {confidence}")
    if margin < 0 or not math.isfinite(margin):
        raise AutojudgeError(f"margin must be a finite number >= 0 Elo points, got {margin}")
    if baseline == candidate:
        raise AutojudgeError("baseline and candidate are the same model; name two models")
    if clusters is not None and paired:
        keep = shared_prompt_mask(battles, clusters, baseline, candidate)
        battles = Battles(battles.names, battles.ia[keep], battles.ib[keep],
                          battles.score[keep])
        _, clusters = np.unique(clusters[keep], return_inverse=True)
    n_prompts = int(len(np.unique(clusters))) if clusters is not None else len(battles.ia)
    h2h = int((((battles.ia == baseline) & (battles.ib == candidate))
               | ((battles.ia == candidate) & (battles.ib == baseline))).sum())
    to_elo = scale / math.log(base)
    mu = aggregate_matchups(battles)
    point = fit_strengths(mu[0].i, mu[0].j, mu[0].eff_i, mu[0].eff_j, battles.n_models, prior)
    diff = float((point[candidate] - point[baseline]) * to_elo)
    if rounds > 0 and len(battles.ia):
        boot = bootstrap_strengths(battles, clusters, rounds=rounds, seed=seed, prior=prior,
                                   start=point, matchups=mu)
        d = (boot[:, candidate] - boot[:, baseline]) * to_elo
        tail = 50.0 * (1.0 - confidence)
        low, high = np.percentile(d, [tail, 100.0 - tail])
        p_worse = float((d < 0).mean())
        p_margin = float((d < -margin).mean())
    else:
        low = high = diff
        p_worse = p_margin = float("nan")
    return Difference(diff, float(low), float(high), p_worse, p_margin,
                      n_prompts, len(battles.ia), h2h, rounds if len(battles.ia) else 0,
                      confidence, margin)
