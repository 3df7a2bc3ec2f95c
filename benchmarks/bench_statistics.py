"""Acceptance numbers of issue 5, measured on simulated battles with known strengths.

    python benchmarks/bench_statistics.py            # full size (~3-4 min on 2 cores)
    python benchmarks/bench_statistics.py --quick    # smaller, for a smoke check

1. Coverage: 95% CIs of rating[B] - rating[A] over 200 simulated runs (4 models, 400
   prompts x 2 seeds, all pairs, per-prompt per-model effects sd 150 Elo, 10% ties); the
   target is the value the same estimator reaches on infinitely many prompts
   (`population_ratings`). Prompt-clustered vs naive (single-battle) bootstrap.
2. Gate false-alarm rate on equal models (confidence 0.95, margin 0) and the power curve
   over regression size (400 prompts, 1 seed, baseline + candidate + two common
   opponents, prompt effects sd 100 Elo, 10% ties).
3. Adaptive scheduling vs all-pairs: battles needed to bring every CI under 100 Elo on a
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from autojudge.ratings.simulate import coverage_study, gate_study, schedule_study  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = p.parse_args()
    q = args.quick
    out: dict = {}
    t0 = time.perf_counter()
    cov = coverage_study(60 if q else 200, rounds=300 if q else 1000, seed=0)
    out["coverage"] = cov
    print(f"[coverage] {cov['runs']} runs, 95% CI of the rating difference "
          f"(target {cov['target']:.1f} Elo, true strength gap {cov['true']:.0f}):")
    print(f"  prompt-clustered bootstrap: {cov['clustered']:.1%} "
          f"(mean width {cov['mean_width_clustered']:.1f})")
    print(f"  naive battle bootstrap:     {cov['naive']:.1%} "
          f"(mean width {cov['mean_width_naive']:.1f})   [{time.perf_counter() - t0:.0f} s]")
    t1 = time.perf_counter()
    fa = gate_study(0.0, 200 if q else 1000, rounds=300 if q else 1000, seed=100)
    out["false_alarm"] = fa
    print(f"[gate] false-alarm rate on equal models ({fa['runs']} runs, confidence 0.95): "
          f"{fa['regression']:.1%} (inconclusive {fa['inconclusive']:.1%})")
    curve = []
    for size in (10, 20, 30, 40, 50, 60, 75, 100):
        r = gate_study(float(size), 100 if q else 200, rounds=300 if q else 1000,
                       seed=1000 + size)
        curve.append({"regression_elo": size, **r})
        print(f"  power at a {size:>3}-point regression (population diff "
              f"{r['population_diff']:6.1f}): {r['regression']:.1%}")
    out["power"] = curve
    print(f"  [{time.perf_counter() - t1:.0f} s]")
    t2 = time.perf_counter()
    sched = schedule_study(3 if q else 10, bootstrap_rounds=100, seed=0)
    out["scheduling"] = sched
    print(f"[scheduling] 12 models, target CI width 100: adaptive {sum(sched['adaptive'])} vs "
          f"all-pairs {sum(sched['all_pairs'])} battles over {len(sched['adaptive'])} pools: "
          f"ratio {sched['ratio']:.3f}  [{time.perf_counter() - t2:.0f} s]")
    print(f"  per pool: " + ", ".join(f"{a}/{b}" for a, b in zip(sched["adaptive"],
                                                                 sched["all_pairs"])))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
