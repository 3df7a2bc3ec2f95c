"""Acceptance studies of the statistics, on simulated battles with known strengths.

Tests run them small; `benchmarks/bench_statistics.py` runs them full size and
docs/statistics.md records the figures. Pure numpy, explicit seeds, no I/O. They live
beside the benchmarks, outside the package: no run of autojudge needs them (the tests
import them through tests/conftest.py, which puts this folder on sys.path).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from autojudge.ratings.bradley_terry import fit_strengths
from autojudge.ratings.simulate import (NATS, all_pairs, population_ratings, simulate_battles,
                                        simulate_scores, simulate_win_matrix)

GATE_POOL = (1000.0, 1000.0, 1100.0, 900.0)  # baseline, candidate, two common opponents


def coverage_study(runs: int, *, ratings: Sequence[float] = (1000.0, 970.0, 1100.0, 900.0),
                   n_prompts: int = 400, seeds: int = 2, prompt_sd: float = 150.0,
                   tie_rate: float = 0.1, rounds: int = 1000, confidence: float = 0.95,
                   interval: str = "student", seed: int = 0) -> dict[str, float]:
    """How often the CI of rating[1] - rating[0] covers the estimator's population value,
    with the prompt-clustered and the naive (single-battle) bootstrap, on the same data
    (BT path alone, so both differ only in how they resample).

    Returns:
        {"clustered", "naive" (coverage fractions), "target" (population difference),
         "true" (strength difference), "runs", "mean_width_clustered", "mean_width_naive"}.
    """
    from autojudge.ratings.gate_stats import rating_difference

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
                                    confidence=confidence, paths=False, interval=interval)
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
               interval: str = "student", seed: int = 0) -> dict[str, float]:
    """Gate verdicts over `runs` simulated runs where the candidate's true strength is
    `regression` Elo points below the baseline's (pool `GATE_POOL`, all pairs), judged
    by `judges` judges that see the same prompts (shared prompt effects, independent
    verdicts), decided exactly as `python -m autojudge.gate` decides.

    Returns:
        {"regression", "inconclusive", "pass" (fractions of runs by verdict),
         "population_diff", "runs"}.
    """
    from autojudge.experiment.gate import holm
    from autojudge.ratings.gate_stats import rating_difference

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
                                 paths=paths, interval=interval) for sim in sims]
        raw = [r.p_regression for r in res]
        adjusted = holm(raw) if correction == "holm" else raw
        outcomes = [r.decide(alpha=alpha, min_prompts=min_prompts, regression_p=p)
                    for r, p in zip(res, adjusted)]
        verdict = ("regression" if "regression" in outcomes else
                   "pass" if all(o == "pass" for o in outcomes) else "inconclusive")
        counts[verdict] += 1
    pop = population_ratings(ratings, prompt_sd=prompt_sd, tie_rate=tie_rate)
    return {**{k: v / runs for k, v in counts.items()}, "counts": counts,
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
    from autojudge.ratings.gate_stats import rating_difference

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
    from autojudge.ratings.scheduling import ScheduleConfig, simulate_schedule

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


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% by default) of a rate measured as hits / n: the Monte
    Carlo uncertainty printed beside every measured error rate.

    Example:
        >>> [round(v, 4) for v in wilson(20, 800)]
        [0.0162, 0.0383]
    """
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def regression_for(target: float, *, prompt_sd: float = 100.0, tie_rate: float = 0.1,
                   pool: Sequence[float] = GATE_POOL) -> float:
    """The generating regression (Elo, subtracted from the candidate's strength in `pool`)
    whose population BT difference candidate - baseline is `target`: prompt effects and
    ties compress BT ratings, so "a true -50" must be set on the estimator's own scale."""
    from scipy.optimize import brentq

    def gap(r: float) -> float:
        ratings = np.array(pool, dtype=float)
        ratings[1] -= r
        pop = population_ratings(ratings, prompt_sd=prompt_sd, tie_rate=tie_rate)
        return float(pop[1] - pop[0]) - target

    return float(brentq(gap, -2000.0, 2000.0, xtol=1e-6))


def intransitive_matrix(h2h: float = 1.0, candidate_vs_opponents: float = 0.3,
                        baseline_vs_opponents: float = 0.7, opponents: int = 4) -> np.ndarray:
    """Win probabilities of an intransitive judge: model 0 is the baseline, 1 the
    candidate, 2.. common opponents (even among themselves). The candidate beats the
    baseline head-to-head with probability `h2h` yet does worse against every opponent."""
    m = 2 + opponents
    win = np.full((m, m), 0.5)
    win[1, 0], win[0, 1] = h2h, 1.0 - h2h
    win[1, 2:], win[2:, 1] = candidate_vs_opponents, 1.0 - candidate_vs_opponents
    win[0, 2:], win[2:, 0] = baseline_vs_opponents, 1.0 - baseline_vs_opponents
    return win


def population_diff_of_matrix(win: np.ndarray, tie_rate: float = 0.0) -> float:
    """BT difference rating[1] - rating[0] (Elo) that the estimator reaches on infinitely
    many battles of every pair drawn from `win` (the population's own BT difference)."""
    pairs = all_pairs(len(win))
    p = (1.0 - tie_rate) * win[pairs[:, 0], pairs[:, 1]] + 0.5 * tie_rate
    big = 1e9 / len(pairs)
    s = fit_strengths(pairs[:, 0], pairs[:, 1], big * p, big * (1.0 - p), len(win), 1e-6)
    return float((s[1] - s[0]) / NATS)


def matrix_study(win: np.ndarray, runs: int, *, n_prompts: int = 150, seeds: int = 2,
                 tie_rate: float = 0.0, margin: float = 25.0, rounds: int = 1000,
                 min_prompts: int = 10, seed: int = 0) -> dict[str, Any]:
    """Gate verdicts (candidate 1 vs baseline 0) over `runs` logs drawn from a win matrix
    (e.g. `intransitive_matrix`), with the population BT difference they should be
    judged against.

    Returns:
        {"regression", "inconclusive", "pass" (fractions), "counts", "runs",
         "population_diff", "disagreement" (fraction of runs whose paths disagreed)}.
    """
    from autojudge.ratings.gate_stats import rating_difference

    sim = simulate_win_matrix(win, n_prompts, seeds=seeds, tie_rate=tie_rate, runs=runs,
                              seed=seed)
    counts = {"regression": 0, "inconclusive": 0, "pass": 0}
    split = 0
    for k in range(runs):
        res = rating_difference(sim.battles(k), sim.prompt, 0, 1, rounds=rounds,
                                seed=seed + k, margin=margin)
        counts[res.decide(min_prompts=min_prompts)] += 1
        split += res.disagreement is not None
    return {**{k: v / runs for k, v in counts.items()}, "counts": counts, "runs": runs,
            "population_diff": population_diff_of_matrix(win, tie_rate),
            "disagreement": split / runs}


def hard_cases(seed: int = 3) -> dict[str, tuple]:
    """Logs on which a gate can go wrong, each as (battles, clusters, baseline,
    candidate, expected outcome at margin 25, what it shows):

    - won_every_head_to_head / lost_every_head_to_head: 6 models, 150 prompts x 2 seeds;
      the candidate beats common opponents 70% of the time where the baseline wins 50%,
      and won (lost) every head-to-head battle: the separated head-to-head path must not
      set the answer (PASS on the common-opponent interval, open above; mirror:
      REGRESSION);
    - intransitive: `intransitive_matrix()` (candidate wins every head-to-head battle but
      30% against four opponents the baseline beats 70% of the time): not PASS;
    - linked_across_prompts_only: both met one opponent, never on the same prompt;
    - disconnected: no chain of opponents links them at all.
    """
    from autojudge.ratings.bradley_terry import Battles, encode_battles

    strong = intransitive_matrix(1.0, 0.7, 0.5)
    out: dict[str, tuple] = {}
    sim = simulate_win_matrix(strong, 150, seeds=2, seed=seed)
    out["won_every_head_to_head"] = (sim.battles(), sim.prompt, 0, 1, "pass",
                                     "separated head-to-head, common opponents agree")
    out["lost_every_head_to_head"] = (sim.battles(), sim.prompt, 1, 0, "regression",
                                      "mirror of won_every_head_to_head")
    sim = simulate_win_matrix(intransitive_matrix(), 150, seeds=2, seed=seed)
    out["intransitive"] = (sim.battles(), sim.prompt, 0, 1, "inconclusive",
                           "head-to-head and common-opponent evidence disagree")
    rng = np.random.default_rng(seed)
    wins = np.where(rng.random(40) < 0.5, "model_a", "model_b")
    across = encode_battles(["base"] * 20 + ["cand"] * 20, ["opp"] * 40, wins)
    b, c = across.names.index("base"), across.names.index("cand")
    out["linked_across_prompts_only"] = (across, np.arange(40), b, c, "inconclusive",
                                         "0 shared prompts")
    apart = encode_battles(["base"] * 20 + ["cand"] * 20, ["oppA"] * 20 + ["oppB"] * 20,
                           wins)
    out["disconnected"] = (Battles(apart.names, apart.ia, apart.ib, apart.score),
                           np.arange(40) % 20, apart.names.index("base"),
                           apart.names.index("cand"), "inconclusive",
                           "no chain of opponents")
    return out
