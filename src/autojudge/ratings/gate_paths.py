"""Three estimates of candidate minus baseline, resampled together by prompt, combined.

All on the Elo scale, all from the battles of the prompts both models fought on:

- ``bt``: rating[candidate] - rating[baseline] from Bradley-Terry on every battle
  (head-to-head and against common opponents);
- ``direct``: the logit of the candidate's head-to-head score against the baseline
  (wins + ties / 2 over battles, with half a battle added to each side (Haldane) so it
  stays finite);
- ``score`` (pointwise judges only: every battle outcome follows from the two images'
  scores, and each image has one score): the paired mean score difference on the same
  (prompt, seed), S_c - S_b, turned into Elo by the slope of the models' BT strengths on
  their mean scores (needs 3+ models; the slope is refitted in every round). Score
  magnitudes carry information that win/loss counts throw away.

Every bootstrap round draws the same prompts for all paths, so their joint sampling
covariance S is known; the estimate is the minimum-variance combination with weights
w = S^-1 1 / (1' S^-1 1), restricted to non-negative weights (a path whose weight would
be negative is dropped and the rest refitted). Equal models give 0 on every path, so the
combination keeps the gate's false-alarm rate.

Only sound, mutually consistent paths are combined (`compare` enforces it):

- a path is two-sided when its rounds are finite and vary. The ``direct`` path is
  *one-sided* when the head-to-head data are separated (every decisive battle between
  the two went one way): its logit then sits at the Haldane end and barely moves across
  rounds, so its bootstrap variance is an artefact, not information. It only bounds the
  difference on one side (a profile-likelihood bound, `head_to_head_bound`) and carries
  no weight into the combination;
- paths that disagree beyond what their joint bootstrap allows (`heterogeneity`, a
  Wald test of equal targets on the joint rounds) are not averaged: when the BT model
  holds, all paths estimate the same difference; when they disagree (e.g. a judge whose
  head-to-head preferences are not transitive with its preferences against common
  opponents), no single number is supported.

Example:
    >>> import numpy as np
    >>> combine_paths({"bt": (-10.0, np.array([-12.0, -8.0, -11.0, -9.0])),
    ...                "direct": (-14.0, np.array([-20.0, -8.0, -18.0, -10.0]))})[2]
    {'bt': 1.0, 'direct': 0.0}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import chdtrc, logit, ndtr

from autojudge.ratings.bootstrap import _CHUNK_BYTES, _build_c, draw_counts
from autojudge.ratings.bradley_terry import (DENSE_NEWTON_MAX, Battles, Matchups,
                                             aggregate_matchups,
                                             battle_outcomes, fit_strengths)
from autojudge.ratings.intervals import likelihood_weights
from autojudge.ratings.profile import ContrastProfile

Path = tuple[float, np.ndarray]  # (point estimate, bootstrap rounds)


@dataclass(frozen=True)
class PairedScores:
    """Per (cluster, seed) scores of each model, for pointwise judges.

    `sums[k, m]` / `counts[k, m]`: sum and number of model m's image scores in cluster
    k; `diff[k]` / `n_diff[k]`: sum and number of paired (candidate - baseline) score
    differences on the (prompt, seed) requests of cluster k where both have an image.
    """

    sums: np.ndarray
    counts: np.ndarray
    diff: np.ndarray
    n_diff: np.ndarray


def pointwise_scores(battles: Battles, clusters: np.ndarray, seed: np.ndarray | None,
                     score_a: np.ndarray | None, score_b: np.ndarray | None,
                     candidate: int, baseline: int) -> PairedScores | None:
    """Paired scores when the battles come from a pointwise judge, else None.

    Pointwise means: every battle has both scores; each image (cluster, seed, model)
    has one score across its battles; every decisive battle went to the higher score
    and every tie is at least as close as any decisive battle (one tie margin).
    """
    if score_a is None or score_b is None or seed is None or not len(battles.ia):
        return None
    sa, sb = np.asarray(score_a, float), np.asarray(score_b, float)
    seed = np.asarray(seed, dtype=float)
    if not (np.isfinite(sa).all() and np.isfinite(sb).all() and np.isfinite(seed).all()):
        return None
    delta = sa - sb
    tie = battles.score == 0.5
    margin = float(np.abs(delta[tie]).max()) if tie.any() else 0.0
    decisive = ~tie
    wins_for_a = battles.score[decisive] == 1.0
    if not ((delta[decisive] > 0) == wins_for_a).all() or \
            (np.abs(delta[decisive]) <= margin).any():
        return None
    m, k = battles.n_models, int(clusters.max()) + 1
    seed_code = np.unique(seed, return_inverse=True)[1]
    n_seed = int(seed_code.max()) + 1
    image = np.concatenate([(clusters * n_seed + seed_code) * m + battles.ia,
                            (clusters * n_seed + seed_code) * m + battles.ib])
    value = np.concatenate([sa, sb])
    uniq, first = np.unique(image, return_index=True)
    inverse = np.searchsorted(uniq, image)
    if not np.array_equal(value, value[first][inverse]):
        return None  # one image, several scores: a pairwise judge's numbers
    table = np.full((k * n_seed, m), np.nan)
    table[uniq // m, uniq % m] = value[first]
    sums = np.nansum(table.reshape(k, n_seed, m), axis=1)
    counts = np.isfinite(table).reshape(k, n_seed, m).sum(axis=1).astype(float)
    paired = (table[:, candidate] - table[:, baseline]).reshape(k, n_seed)
    return PairedScores(sums, counts, np.nansum(paired, axis=1),
                        np.isfinite(paired).sum(axis=1).astype(float))


def joint_paths(battles: Battles, clusters: np.ndarray, mu: Matchups, index: np.ndarray,
                candidate: int, baseline: int, *, rounds: int, seed: int, prior: float,
                to_elo: float, start: np.ndarray,
                scores: PairedScores | None) -> dict[str, Path]:
    """Point estimates and `rounds` prompt-resampled values of each available path."""
    k = int(clusters.max()) + 1
    c_bt = _cluster_matrix(battles, clusters, mu, index, k)
    h2h = ((battles.ia == candidate) & (battles.ib == baseline)) | \
        ((battles.ia == baseline) & (battles.ib == candidate))
    cand_score = np.where(battles.ia == candidate, battles.score, 1.0 - battles.score)
    direct = np.stack([np.bincount(clusters[h2h], minlength=k).astype(float),
                       np.bincount(clusters[h2h], cand_score[h2h], minlength=k)], axis=1)
    use_direct = int(h2h.sum()) > 0
    use_score = scores is not None and battles.n_models >= 3 and scores.n_diff.sum() > 0
    rng = np.random.default_rng(seed)
    weights = [np.ones((1, k))]
    m = battles.n_models
    per_round = 8 * (k + 12 * len(mu.i) + (4 * m * m if m <= DENSE_NEWTON_MAX else 0))
    chunk = int(max(1, min(rounds, _CHUNK_BYTES // per_round)))
    for lo in range(0, rounds, chunk):
        size = min(chunk, rounds - lo)
        weights.append(draw_counts(rng, k, np.full(k, 1.0 / k), size))
    values: dict[str, list[np.ndarray]] = {"bt": [], "direct": [], "score": []}
    for w in weights:
        agg = np.asarray(w @ c_bt)
        s = fit_strengths(mu.i, mu.j, agg[:, 0::2], agg[:, 1::2], battles.n_models, prior,
                          start=start)
        values["bt"].append((s[:, candidate] - s[:, baseline]) * to_elo)
        if use_direct:
            n, won = (w @ direct).T
            values["direct"].append(logit((won + 0.5) / (n + 1.0)) * to_elo)
        if use_score:
            values["score"].append(_score_path(w, s, scores, candidate, baseline) * to_elo)
    out = {}
    for name, parts in values.items():
        if parts:
            allv = np.concatenate(parts)
            out[name] = (float(allv[0]), allv[1:])
    return out


def _score_path(w: np.ndarray, strengths: np.ndarray, scores: PairedScores,
                candidate: int, baseline: int) -> np.ndarray:
    """Per round: slope of strengths on mean scores across models x paired difference."""
    mean = (w @ scores.sums) / np.maximum(w @ scores.counts, 1e-12)
    sc = mean - mean.mean(axis=1, keepdims=True)
    st = strengths - strengths.mean(axis=1, keepdims=True)
    var = (sc * sc).sum(axis=1)
    slope = np.where(var > 0, (sc * st).sum(axis=1) / np.where(var > 0, var, 1.0), np.nan)
    paired = (w @ scores.diff) / np.maximum(w @ scores.n_diff, 1e-12)
    return slope * paired


def _cluster_matrix(battles: Battles, clusters: np.ndarray, mu: Matchups, index: np.ndarray,
                    k: int) -> Any:
    """(clusters x 2P) effective wins per matchup side, one row per cluster."""
    _, outcome = battle_outcomes(battles)
    keep = index >= 0
    weight = np.ones(int(keep.sum())) if battles.weight is None else battles.weight[keep]
    eff_lo = np.where(outcome[keep] == 0, 1.0, np.where(outcome[keep] == 1, 0.0, 0.5))
    return _build_c(clusters[keep], index[keep], eff_lo * weight, (1.0 - eff_lo) * weight,
                    k, 2 * len(mu.i))


def combine_paths(paths: dict[str, Path]) -> tuple[float, np.ndarray, dict[str, float]]:
    """Minimum-variance non-negative combination (module docstring) of the paths whose
    rounds are all finite and vary.

    Returns:
        (point, combined rounds, weight per path name; 0 for a dropped path).
    """
    names = [n for n, (p, d) in paths.items()
             if np.isfinite(p) and len(d) > 1 and np.isfinite(d).all() and np.std(d) > 0]
    if "bt" in paths and "bt" not in names:
        names = ["bt"]  # the BT path decides alone when it has no spread
    weights = {n: 0.0 for n in paths}
    while names:
        draws = np.stack([paths[n][1] for n in names], axis=1)
        cov = np.atleast_2d(np.cov(draws, rowvar=False))
        try:
            raw = np.linalg.solve(cov + 1e-12 * np.trace(cov) * np.eye(len(names)),
                                  np.ones(len(names)))
        except np.linalg.LinAlgError:
            raw = np.ones(len(names))
        w = raw / raw.sum()
        if (w >= 0).all():
            break
        names.pop(int(np.argmin(w)))
    else:
        return paths["bt"][0], paths["bt"][1], {**weights, "bt": 1.0}
    point = float(sum(wi * paths[n][0] for wi, n in zip(w, names)))
    for wi, n in zip(w, names):
        weights[n] = round(float(wi), 4)
    return point, draws @ w, weights


def head_to_head_sides(battles: Battles, candidate: int, baseline: int) -> tuple[bool, bool]:
    """(candidate won a decisive head-to-head battle, candidate lost one)."""
    h2h = ((battles.ia == candidate) & (battles.ib == baseline)) | \
        ((battles.ia == baseline) & (battles.ib == candidate))
    cand_score = np.where(battles.ia == candidate, battles.score, 1.0 - battles.score)[h2h]
    return bool((cand_score == 1.0).any()), bool((cand_score == 0.0).any())


def head_to_head_bound(battles: Battles, clusters: np.ndarray, candidate: int,
                       baseline: int, confidence: float, to_elo: float,
                       margin: float) -> tuple[float | None, float] | None:
    """The data-bounded side of candidate - baseline from the head-to-head battles alone,
    when they are separated: a lower bound when the candidate never lost a decisive one,
    an upper bound when it never won one (likelihood ratio, one-sided at
    (1 + confidence) / 2; each (prompt, pair) weighs as one observation).

    Returns:
        None when the head-to-head battles are not separated (or none was decisive);
        else (bound in Elo, or None when even that side is open; the one-sided p-value
        of the claim that side supports at `margin`: H0 "diff <= -margin" for a lower
        bound, H0 "diff >= -margin" for an upper bound).
    """
    won, lost = head_to_head_sides(battles, candidate, baseline)
    if won == lost:
        return None
    h2h = ((battles.ia == candidate) & (battles.ib == baseline)) | \
        ((battles.ia == baseline) & (battles.ib == candidate))
    sub = Battles(battles.names, battles.ia[h2h], battles.ib[h2h], battles.score[h2h],
                  None if battles.weight is None else battles.weight[h2h])
    mu, _ = aggregate_matchups(sub, weight=likelihood_weights(sub, clusters[h2h]))
    lut = np.full(battles.n_models, -1)
    lut[[candidate, baseline]] = [0, 1]
    prof = ContrastProfile(lut[mu.i], lut[mu.j], mu.eff_i, mu.eff_j, 2,
                           np.array([1.0, -1.0]))
    bound = prof.bound(-1 if won else +1, confidence)
    root = prof.signed_root(-margin / to_elo)
    p_side = float(ndtr(-root) if won else ndtr(root))
    return (None if bound is None else bound * to_elo), p_side


def heterogeneity(paths: dict[str, Path], names: list[str], n_clusters: int) -> float:
    """p-value of "every named path estimates the same difference": the Wald statistic
    of the paths' differences from the first one, with their covariance from the joint
    rounds (scaled by k / (k - 1) for k resampled clusters), against chi2(len(names) - 1).
    1.0 when fewer than two paths are named."""
    if len(names) < 2:
        return 1.0
    ref_point, ref_draws = paths[names[0]]
    d = np.array([paths[n][0] - ref_point for n in names[1:]])
    draws = np.stack([paths[n][1] - ref_draws for n in names[1:]], axis=1)
    cov = np.atleast_2d(np.cov(draws, rowvar=False)) * n_clusters / max(n_clusters - 1, 1)
    scale = float(np.trace(cov))
    if not np.isfinite(scale) or scale <= 0.0:
        return 1.0 if np.allclose(d, 0.0) else 0.0
    stat = float(d @ np.linalg.pinv(cov, rcond=1e-10) @ d)
    return float(chdtrc(len(d), stat))
