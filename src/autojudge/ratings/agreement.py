"""Judge-vs-judge agreement on shared battles, and rank correlation of two boards.

Pure numpy/scipy, explicit seeds, no I/O.

Shared battles: a battle of judge A and one of judge B are the same comparison when they
have the same prompt_id, the same seed and the same unordered model pair. When either
judge's battles lack seeds (human votes usually do), the seed is left out of the key.
Outcomes are oriented to the pair sorted by name (lo, hi) and take three values: lo
wins, hi wins, tie (both tie kinds). A key judged several times by one judge (many human
votes on one prompt and pair) contributes that judge's outcome frequencies, so every
shared key weighs one.

Per shared key k with frequencies a_k, b_k over (lo, hi, tie):
  agreement (incl. ties)     mean_k  a_k . b_k
  decisive agreement         sum_k (a_lo b_lo + a_hi b_hi) / sum_k (a_lo + a_hi)(b_lo + b_hi)
                             (agreement on the battles both judges decided)
  Cohen's kappa              (p_o - p_e) / (1 - p_e) on the table counted in both
                             orientations, so the arbitrary name order cannot matter:
                             p_e = (1 - t_A)(1 - t_B) / 2 + t_A t_B with t the tie rates.
The CI of the agreement is a percentile, prompt-clustered bootstrap (whole prompts drawn
with replacement), like the ratings' CIs.

Example:
    >>> res = pairwise_agreement(
    ...     battle_keys(["p1", "p2"], [0, 0], ["a", "a"], ["b", "b"], ["model_a", "tie"]),
    ...     battle_keys(["p1", "p2"], [0, 0], ["b", "a"], ["a", "b"], ["model_b", "model_a"]),
    ...     rounds=100)
    >>> res["n_shared"], res["agreement"], res["decisive_agreement"]
    (2, 0.5, 1.0)
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from autojudge.ratings.bradley_terry import as_list, winner_to_score

AGREEMENT_KEYS = ("judge_a", "judge_b", "n_shared", "agreement", "ci_low", "ci_high",
                  "decisive_agreement", "kappa", "kendall_tau", "spearman", "n_models")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def battle_keys(prompt_id: Sequence[Any], seed: Sequence[Any] | None,
                model_a: Sequence[str], model_b: Sequence[str],
                winner: Sequence[str]) -> dict[str, Any]:
    """One judge's battles as keyed, oriented outcomes (input of `pairwise_agreement`).

    Returns:
        {"prompt": [...], "seed": [...] or None, "pair": [(lo, hi), ...],
         "outcome": int array (0 lo wins, 1 hi wins, 2 tie)}.
    """
    a, b = as_list(model_a), as_list(model_b)
    score = winner_to_score(winner)
    flip = np.array([x > y for x, y in zip(a, b)], dtype=bool)
    s_lo = np.where(flip, 1.0 - score, score)
    outcome = np.where(s_lo == 1.0, 0, np.where(s_lo == 0.0, 1, 2)).astype(np.int64)
    pair = [(y, x) if f else (x, y) for x, y, f in zip(a, b, flip)]
    seeds = None if seed is None else as_list(seed)
    return {"prompt": as_list(prompt_id), "seed": seeds, "pair": pair, "outcome": outcome}


def _frequencies(keys: dict[str, Any], use_seed: bool) -> dict[tuple, np.ndarray]:
    out: dict[tuple, np.ndarray] = {}
    seeds = keys["seed"] if use_seed else [None] * len(keys["pair"])
    for p, s, pair, o in zip(keys["prompt"], seeds, keys["pair"], keys["outcome"].tolist()):
        if _missing(p):
            continue  # without a prompt id a battle cannot be matched
        key = (p, None if _missing(s) else int(s), pair)
        out.setdefault(key, np.zeros(3))[o] += 1.0
    return {k: v / v.sum() for k, v in out.items()}


def _has_seeds(keys: dict[str, Any]) -> bool:
    return keys["seed"] is not None and all(not _missing(s) for s in keys["seed"])


def pairwise_agreement(a: dict[str, Any], b: dict[str, Any], *, rounds: int = 1000,
                       seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Agreement of two judges on their shared battles (see the module docstring).

    Args:
        a, b: `battle_keys(...)` of each judge.
        rounds: prompt-clustered bootstrap rounds for the CI (0: no CI).
        seed: bootstrap seed.
        confidence: CI level.

    Returns:
        {"n_shared", "n_prompts", "agreement", "ci_low", "ci_high", "decisive_agreement",
         "n_decisive", "kappa"}; values are None when nothing is shared.
    """
    use_seed = _has_seeds(a) and _has_seeds(b)
    fa, fb = _frequencies(a, use_seed), _frequencies(b, use_seed)
    shared = sorted(set(fa) & set(fb), key=repr)
    empty = {"n_shared": 0, "n_prompts": 0, "agreement": None, "ci_low": None,
             "ci_high": None, "decisive_agreement": None, "n_decisive": 0.0, "kappa": None}
    if not shared:
        return empty
    A = np.array([fa[k] for k in shared])
    B = np.array([fb[k] for k in shared])
    agree = (A * B).sum(axis=1)
    dec_w = (A[:, 0] + A[:, 1]) * (B[:, 0] + B[:, 1])
    dec_agree = A[:, 0] * B[:, 0] + A[:, 1] * B[:, 1]
    prompts = {p: k for k, p in enumerate(dict.fromkeys(k[0] for k in shared))}
    cl = np.array([prompts[k[0]] for k in shared], dtype=np.int64)
    n_cl = len(prompts)
    # Per prompt sums: agreement numerator and key count.
    num = np.bincount(cl, weights=agree, minlength=n_cl)
    cnt = np.bincount(cl, minlength=n_cl).astype(np.float64)
    p_o = float(agree.mean())
    t_a, t_b = float(A[:, 2].mean()), float(B[:, 2].mean())
    p_e = (1 - t_a) * (1 - t_b) / 2 + t_a * t_b
    kappa = None if p_e >= 1 else (p_o - p_e) / (1 - p_e)
    low = high = None
    if rounds > 0:
        rng = np.random.default_rng(seed)
        w = rng.multinomial(n_cl, np.full(n_cl, 1.0 / n_cl), size=rounds).astype(np.float64)
        boot = (w @ num) / np.maximum(w @ cnt, 1e-12)
        tail = 50.0 * (1.0 - confidence)
        low, high = (float(v) for v in np.percentile(boot, [tail, 100.0 - tail]))
    n_dec = float(dec_w.sum())
    return {"n_shared": len(shared), "n_prompts": n_cl, "agreement": p_o, "ci_low": low,
            "ci_high": high,
            "decisive_agreement": float(dec_agree.sum() / n_dec) if n_dec > 0 else None,
            "n_decisive": n_dec, "kappa": kappa}


def rank_correlation(ratings_a: Mapping[str, float], ratings_b: Mapping[str, float]
                     ) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho of two boards over the models both rate.

    Example:
        >>> rank_correlation({"x": 3, "y": 2, "z": 1}, {"x": 30, "y": 10, "z": 20, "w": 0})
        {'n_models': 3, 'kendall_tau': 0.3333, 'spearman': 0.5}
    """
    from scipy.stats import kendalltau, spearmanr

    common = sorted(set(ratings_a) & set(ratings_b))
    out: dict[str, Any] = {"n_models": len(common), "kendall_tau": None, "spearman": None}
    if len(common) < 2:
        return out
    x = np.array([ratings_a[m] for m in common], dtype=float)
    y = np.array([ratings_b[m] for m in common], dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return out  # a constant board has no ranking to correlate
    tau = kendalltau(x, y).statistic
    rho = spearmanr(x, y).statistic
    out["kendall_tau"] = None if np.isnan(tau) else round(float(tau), 4)
    out["spearman"] = None if np.isnan(rho) else round(float(rho), 4)
    return out


def agreement_table(battles_by_judge: Mapping[str, dict[str, Any]],
                    ratings_by_judge: Mapping[str, Mapping[str, float]], *,
                    rounds: int = 1000, seed: int = 0, confidence: float = 0.95
                    ) -> list[dict[str, Any]]:
    """Agreement and rank correlation for every pair of judges (in the given order).

    Args:
        battles_by_judge: judge -> `battle_keys(...)`.
        ratings_by_judge: judge -> {model: rating} of its whole-suite board.

    Returns:
        one dict per judge pair with `AGREEMENT_KEYS` (plus n_prompts, n_decisive).
    """
    judges = list(battles_by_judge)
    rows = []
    for x in range(len(judges)):
        for y in range(x + 1, len(judges)):
            ja, jb = judges[x], judges[y]
            res = pairwise_agreement(battles_by_judge[ja], battles_by_judge[jb],
                                     rounds=rounds, seed=seed, confidence=confidence)
            corr = rank_correlation(ratings_by_judge.get(ja, {}), ratings_by_judge.get(jb, {}))
            row = {"judge_a": ja, "judge_b": jb, **res, **corr}
            rows.append({k: (round(v, 4) if isinstance(v, float) else v)
                         for k, v in row.items()})
    return rows
