"""Statistics acceptance numbers, measured on simulated battles with known strengths.

    python benchmarks/bench_statistics.py            # full size (~15-25 min on 2 cores)
    python benchmarks/bench_statistics.py --quick    # smaller, for a smoke check

1. Coverage: 95% CIs of rating[B] - rating[A] over 200 simulated runs (4 models, 400
   prompts x 2 seeds, all pairs, per-prompt per-model effects sd 150 Elo, 10% ties); the
   target is the value the same estimator reaches on infinitely many prompts
   (`population_ratings`). Prompt-clustered vs naive (single-battle) bootstrap.
2. Gate false alarms (REGRESSION on equal models; confidence 0.95) with one judge and
   with three judges (Holm, and without correction), at margin 0 and 25; false PASS rate
   at a true regression 25 points beyond the margin (margin 25, true -50), new rule vs the
   old one (PASS = no significant regression and CI width <= 150).
3. Power: share of runs flagged REGRESSION (margin 0) per regression size at 400
   prompts, old estimator (BT path alone) vs new (combined paths) on the same data, for
   pairwise outcomes (`simulate_battles`: baseline + candidate + two common opponents,
   prompt effects sd 100, 10% ties) and a pointwise judge (`simulate_scores`).
4. Prompts needed for 80% power at true -25 and -50 Elo regressions, old vs new.
5. Adaptive scheduling vs all-pairs: battles needed to bring every CI under 100 Elo on a
   12-model pool (ratings evenly spread over 800 Elo, prompt effects sd 150, 1000-prompt
   pool), same outcomes for both.
All seeds are fixed; the output is deterministic.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from autojudge.ratings.compare import rating_difference  # noqa: E402
from autojudge.ratings.simulate import simulate_battles  # noqa: E402
from autojudge.ratings.studies import (GATE_POOL, coverage_study, gate_study,  # noqa: E402
                                       power_pair, prompts_for_power, schedule_study)


def old_rule_pass_rate(regression: float, runs: int, margin: float, rounds: int,
                       seed: int) -> float:
    """The old gate's PASS rate: no significant regression and a CI <= 150 wide."""
    ratings = np.array(GATE_POOL)
    ratings[1] -= regression
    sim = simulate_battles(ratings, 400, prompt_sd=100.0, tie_rate=0.1, runs=runs, seed=seed)
    passes = 0
    for k in range(runs):
        res = rating_difference(sim.battles(k), sim.prompt, 0, 1, rounds=rounds,
                                seed=seed + k, margin=margin, paths=False)
        passes += not (res.ci_high < -margin) and res.ci_high - res.ci_low <= 150.0
    return passes / runs


def gate_numbers(q: bool, out: dict) -> None:
    runs, rounds = (200, 300) if q else (1000, 500)
    rows = []
    for judges, correction in ((1, "holm"), (3, "holm"), (3, "none")):
        for margin in (0.0, 25.0):
            r = gate_study(0.0, runs // judges if q else runs // 2 if judges > 1 else runs,
                           judges=judges, margin=margin, rounds=rounds,
                           correction=correction, seed=100 + judges)
            rows.append({"judges": judges, "correction": correction, "margin": margin, **r})
            print(f"[gate] equal models, {judges} judge(s), correction {correction:<4}, "
                  f"margin {margin:>4.0f}: false REGRESSION {r['regression']:.1%} "
                  f"(pass {r['pass']:.1%}, inconclusive {r['inconclusive']:.1%}, "
                  f"{r['runs']} runs)")
    out["false_alarm"] = rows
    n = 150 if q else 400
    fp = gate_study(50.0, n, margin=25.0, rounds=rounds, seed=300)
    old = old_rule_pass_rate(50.0, n, 25.0, rounds, seed=300)
    out["false_pass"] = {"new": fp["pass"], "old": old, "runs": n, "true": -50.0,
                         "margin": 25.0}
    print(f"[gate] true -50, margin 25 ({n} runs): false PASS new {fp['pass']:.1%}, "
          f"old rule {old:.1%}")


def power_numbers(q: bool, out: dict) -> None:
    runs, rounds = (60, 200) if q else (200, 300)
    for kind in ("battles", "scores"):
        curve = []
        for size in (10, 25, 40, 50, 75, 100):
            r = power_pair(float(size), 400, runs, kind=kind, rounds=rounds, seed=1000 + size)
            curve.append({"regression_elo": size, **r})
            print(f"[power/{kind}] {size:>3}-point regression, 400 prompts: old "
                  f"{r['old']:.1%}, new {r['new']:.1%}")
        out[f"power_{kind}"] = curve
    need = []
    for kind in ("battles", "scores"):
        for size in (25.0, 50.0):
            r = prompts_for_power(size, kind=kind, runs=60 if q else 150, rounds=rounds,
                                  start=400 if size == 50 else 1600, seed=2000)
            need.append({"kind": kind, "regression_elo": size, **r})
            ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
            print(f"[prompts for 80% power/{kind}] -{size:.0f} Elo: old "
                  f"{_n(r['old'])}, new {_n(r['new'])} (new/old {ratio})")
    out["prompts_for_80pct_power"] = need


def _n(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["coverage", "gate", "power", "scheduling"])
    args = p.parse_args()
    q = args.quick
    out: dict = {}
    if "coverage" not in args.skip:
        t0 = time.perf_counter()
        cov = coverage_study(60 if q else 200, rounds=300 if q else 1000, seed=0)
        out["coverage"] = cov
        print(f"[coverage] {cov['runs']} runs, 95% CI of the rating difference "
              f"(target {cov['target']:.1f} Elo, true strength gap {cov['true']:.0f}):")
        print(f"  prompt-clustered bootstrap: {cov['clustered']:.1%} "
              f"(mean width {cov['mean_width_clustered']:.1f})")
        print(f"  naive battle bootstrap:     {cov['naive']:.1%} "
              f"(mean width {cov['mean_width_naive']:.1f})   "
              f"[{time.perf_counter() - t0:.0f} s]")
    for name, step in (("gate", gate_numbers), ("power", power_numbers)):
        if name not in args.skip:
            t1 = time.perf_counter()
            step(q, out)
            print(f"  [{time.perf_counter() - t1:.0f} s]")
    if "scheduling" not in args.skip:
        t2 = time.perf_counter()
        sched = schedule_study(3 if q else 10, bootstrap_rounds=100, seed=0)
        out["scheduling"] = sched
        print(f"[scheduling] 12 models, target CI width 100: adaptive "
              f"{sum(sched['adaptive'])} vs all-pairs {sum(sched['all_pairs'])} battles "
              f"over {len(sched['adaptive'])} pools: ratio {sched['ratio']:.3f}  "
              f"[{time.perf_counter() - t2:.0f} s]")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
