"""Acceptance studies of the statistics, on simulated battles with known strengths.

Tests run them small; `benchmarks/bench_statistics.py` runs them full size and
docs/statistics.md records the figures. Pure numpy, explicit seeds, no I/O.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from autojudge.ratings.simulate import (population_ratings, simulate_battles,
                                        simulate_scores)

GATE_POOL = (1000.0, 1000.0, 1100.0, 900.0)  # baseline, candidate, two common opponents


def coverage_study(runs: int, *, ratings: Sequence[float] = (1000.0, 970.0, 1100.0, 900.0),
                   n_prompts: int = 400, seeds: int = 2, prompt_sd: float = 150.0,
                   tie_rate: float = 0.1, rounds: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, float]:
    """How often the CI of rating[1] - rating[0] covers the estimator's population value,
    with the prompt-clustered and the naive (single-battle) bootstrap, on the same data
    (BT path alone, so both differ only in how they resample).

    Returns:
        {"clustered", "naive" (coverage fractions), "target" (population difference),
         "true" (strength difference), "runs", "mean_width_clustered", "mean_width_naive"}.
    """
    from autojudge.ratings.compare import rating_difference

    pop = population_ratings(ratings, prompt_sd=prompt_sd, tie_rate=tie_rate)
    target = float(pop[1] - pop[0])
    sim = simulate_battles(ratings, n_prompts, seeds=seeds, prompt_sd=prompt_sd,
                           tie_rate=tie_rate, runs=runs, seed=seed)
    hits = np.zeros((2, runs), dtype=bool)
    width = np.zeros((2, runs))
    for k in range(runs):
        battles = sim.battles(k)
        for row, clusters in enumerate((sim.prompt, None)):
            res = rating_difference(battles, clusters, 0, 1, rounds=rounds, seed=seed + k,
                                    confidence=confidence, paths=False)
            hits[row, k] = res.ci_low <= target <= res.ci_high
            width[row, k] = res.ci_high - res.ci_low
    return {"clustered": float(hits[0].mean()), "naive": float(hits[1].mean()),
            "target": target, "true": float(ratings[1] - ratings[0]), "runs": runs,
            "mean_width_clustered": float(width[0].mean()),
            "mean_width_naive": float(width[1].mean())}


def gate_study(regression: float, runs: int, *, judges: int = 1, n_prompts: int = 400,
               seeds: int = 1, prompt_sd: float = 100.0, tie_rate: float = 0.1,
               rounds: int = 500, confidence: float = 0.95, margin: float = 0.0,
               min_prompts: int = 10, correction: str = "holm", paths: bool = True,
               seed: int = 0) -> dict[str, float]:
    """Gate verdicts over `runs` simulated runs where the candidate's true strength is
    `regression` Elo points below the baseline's (pool `GATE_POOL`, all pairs), judged
    by `judges` judges that see the same prompts (shared prompt effects, independent
    verdicts), decided exactly as `python -m autojudge.gate` decides.

    Returns:
        {"regression", "inconclusive", "pass" (fractions of runs by verdict),
         "population_diff", "runs"}.
    """
    from autojudge.gate import holm
    from autojudge.ratings.compare import rating_difference

    ratings = np.array(GATE_POOL)
    ratings[1] -= regression
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, prompt_sd, (runs, n_prompts, len(ratings))) if prompt_sd > 0 \
        else np.zeros((runs, n_prompts, len(ratings)))
    sims = [simulate_battles(ratings, n_prompts, seeds=seeds, tie_rate=tie_rate, runs=runs,
                             seed=seed * 7919 + j + 1, offsets=offsets) for j in range(judges)]
    alpha = (1.0 - confidence) / 2.0
    counts = {"regression": 0, "inconclusive": 0, "pass": 0}
    for k in range(runs):
        res = [rating_difference(sim.battles(k), sim.prompt, 0, 1, rounds=rounds,
                                 seed=seed + k, confidence=confidence, margin=margin,
                                 paths=paths) for sim in sims]
        raw = [r.p_regression for r in res]
        adjusted = holm(raw) if correction == "holm" else raw
        outcomes = [r.decide(alpha=alpha, min_prompts=min_prompts, regression_p=p)
                    for r, p in zip(res, adjusted)]
        verdict = ("regression" if "regression" in outcomes else
                   "pass" if all(o == "pass" for o in outcomes) else "inconclusive")
        counts[verdict] += 1
    pop = population_ratings(ratings, prompt_sd=prompt_sd, tie_rate=tie_rate)
    return {**{k: v / runs for k, v in counts.items()},
            "population_diff": float(pop[1] - pop[0]), "runs": runs}


def power_pair(regression: float, n_prompts: int, runs: int, *, kind: str = "battles",
               prompt_sd: float = 100.0, rounds: int = 300, confidence: float = 0.95,
               seed: int = 0) -> dict[str, float]:
    """Share of runs the gate flags a `regression`-point regression (margin 0), with the
    BT-only estimator ("old") and the combined paths ("new") on the SAME data.

    kind "battles": pairwise outcomes (`simulate_battles`, 10% ties: the BT and
    head-to-head paths); kind "scores": a pointwise judge (`simulate_scores`: the score
    path too).
    """
    from autojudge.ratings.compare import rating_difference

    ratings = np.array(GATE_POOL)
    ratings[1] -= regression
    if kind == "scores":
        sim_s = simulate_scores(ratings, n_prompts, prompt_sd=prompt_sd, runs=runs, seed=seed)
        sim = sim_s.battles
    else:
        sim = simulate_battles(ratings, n_prompts, prompt_sd=prompt_sd, tie_rate=0.1,
                               runs=runs, seed=seed)
    flagged = {"old": 0, "new": 0}
    for k in range(runs):
        scores = None if kind != "scores" else {
            "score_a": sim_s.score_a[k], "score_b": sim_s.score_b[k],
            "seed": sim.seed.astype(float)}
        for name, paths in (("old", False), ("new", True)):
            res = rating_difference(sim.battles(k), sim.prompt, 0, 1, rounds=rounds,
                                    seed=seed + k, confidence=confidence, paths=paths,
                                    scores=scores)
            flagged[name] += res.decide() == "regression"
    return {name: n / runs for name, n in flagged.items()}


def prompts_for_power(regression: float, *, target: float = 0.8, kind: str = "battles",
                      runs: int = 100, rounds: int = 300, start: int = 200,
                      seed: int = 0) -> dict[str, Any]:
    """Prompts each estimator needs for `target` power at a `regression`-point regression:
    powers are measured on a doubling grid of prompt counts (same data for both
    estimators at each count) until both reach the target; each crossing is
    interpolated linearly in log(prompts).

    Returns:
        {"old", "new" (prompts needed, None if never reached), "ratio" (new / old),
         "grid": [{"n_prompts", "old", "new"}, ...]}.
    """
    grid: list[dict[str, Any]] = []
    n = start
    while n >= 25:  # go down until both are below target
        grid.insert(0, {"n_prompts": n, **power_pair(regression, n, runs, kind=kind,
                                                      rounds=rounds, seed=seed + n)})
        if grid[0]["old"] < target and grid[0]["new"] < target:
            break
        n //= 2
    n = start * 2
    while min(grid[-1]["old"], grid[-1]["new"]) < target and n <= 12800:
        grid.append({"n_prompts": n, **power_pair(regression, n, runs, kind=kind,
                                                   rounds=rounds, seed=seed + n)})
        n *= 2
    need = {name: _crossing(grid, name, target) for name in ("old", "new")}
    ratio = need["new"] / need["old"] if need["old"] and need["new"] else None
    return {**need, "ratio": ratio, "grid": grid}


def _crossing(grid: list[dict[str, Any]], name: str, target: float) -> float | None:
    for lo, hi in zip(grid, grid[1:]):
        if lo[name] < target <= hi[name]:
            t = (target - lo[name]) / (hi[name] - lo[name])
            return float(math.exp(math.log(lo["n_prompts"]) + t * (
                math.log(hi["n_prompts"]) - math.log(lo["n_prompts"]))))
    if grid and grid[0][name] >= target:
        return float(grid[0]["n_prompts"])
    return None


def schedule_study(reps: int, *, n_models: int = 12, spread: float = 800.0,
                   n_prompts: int = 1000, prompt_sd: float = 150.0, tie_rate: float = 0.1,
                   target_ci_width: float = 100.0, batch: int = 32,
                   bootstrap_rounds: int = 100, seed: int = 0) -> dict[str, Any]:
    """Battles the adaptive schedule and all-pairs need to reach `target_ci_width` on the
    same pre-drawn outcomes, over `reps` simulated pools (ratings evenly spread).

    Returns:
        {"ratio" (sum adaptive / sum all-pairs), "adaptive", "all_pairs" (lists),
         "reasons"}.
    """
    from autojudge.scheduling import ScheduleConfig, simulate_schedule

    ratings = np.linspace(1000.0 - spread / 2, 1000.0 + spread / 2, n_models)
    adaptive, full, reasons = [], [], []
    for rep in range(reps):
        sim = simulate_battles(ratings, n_prompts, prompt_sd=prompt_sd, tie_rate=tie_rate,
                               seed=seed + rep)
        table = sim.score.reshape(n_prompts, -1)
        cfg = ScheduleConfig(target_ci_width=target_ci_width, batch=batch,
                             bootstrap_rounds=bootstrap_rounds, seed=seed + rep)
        a = simulate_schedule(table, n_models, n_prompts, 1, cfg, adaptive=True)
        b = simulate_schedule(table, n_models, n_prompts, 1, cfg, adaptive=False)
        adaptive.append(a.n_battles)
        full.append(b.n_battles)
        reasons.append((a.reason, b.reason))
    return {"ratio": float(sum(adaptive) / max(sum(full), 1)), "adaptive": adaptive,
            "all_pairs": full, "reasons": reasons}
