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
6. Style control (benchmarks/style_study.py): a judge biased +60 Elo per unit of an image
   feature that the models' images differ in, and an unbiased one: coverage of the
   coefficient's 95% CI, whether the controlled board has the true order, and its mean
   absolute rating error beside the raw board's.
7. K-wise battles (benchmarks/kwise_study.py): judge calls (and arena votes) to reach a
   target mean CI width and rank correlation for K = 2 (adaptive pairs), 3 and 4 under the
   same noise per implied pair and under attention dilution; coverage of the K-wise CIs;
   agreement of K-wise and pairwise verdicts of one judge; rank breaking vs the exact
   Plackett-Luce MLE.
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
from studies import (GATE_POOL, coverage_study, gate_study, hard_cases,  # noqa: E402
                     intransitive_matrix, matrix_study, power_pair, prompts_for_power,
                     regression_for, schedule_study, wilson)

from kwise_study import kwise_numbers  # noqa: E402
from style_study import style_study  # noqa: E402

from autojudge.ratings.gate_stats import rating_difference  # noqa: E402
from autojudge.ratings.simulate import simulate_battles  # noqa: E402


def rate_line(label: str, hits: int, runs: int, bound: float | None = None) -> dict:
    """One measured error rate with its 95% Monte Carlo (Wilson) interval."""
    low, high = wilson(hits, runs)
    verdict = "" if bound is None else (
        "  ok" if low <= bound else f"  ABOVE {bound:.1%}")
    print(f"  {label:<58} {hits / runs:6.2%}  (MC 95% {low:.2%} .. {high:.2%}; "
          f"{hits}/{runs}){verdict}", flush=True)
    return {"label": label, "rate": hits / runs, "mc_low": low, "mc_high": high,
            "hits": hits, "runs": runs}


def gate_numbers(q: bool, out: dict) -> None:
    """Stated error rates of the gate (each claim a one-sided 2.5% test at 0.95), at 15,
    40 and 150 prompts; "true" differences are population BT differences."""
    runs, rounds = (200, 300) if q else (800, 1000)
    at_50, at_25 = regression_for(-50.0), regression_for(-25.0)
    print(f"[gate] pool {GATE_POOL} (baseline, candidate, two opponents), prompt effects "
          f"sd 100, 10% ties; population -50 / -25 = generating -{at_50:.1f} / "
          f"-{at_25:.1f} (compression {1 - 50 / at_50:.0%}); {runs} data sets per row, "
          f"{rounds} rounds, seeds 100+")
    rows = []
    for n in (15, 40, 150):
        cases = [("equal models, 1 judge, margin 0: false REGRESSION", 0.0, 1, 0.0,
                  "regression"),
                 ("equal models, 3 judges + Holm, margin 0: family-wise", 0.0, 3, 0.0,
                  "regression"),
                 ("true -50, margin 25: false PASS", at_50, 1, 25.0, "pass"),
                 ("true -25, margin 25: false REGRESSION", at_25, 1, 25.0, "regression")]
        for k, (label, regression, judges, margin, wrong) in enumerate(cases):
            r = gate_study(regression, runs, judges=judges, n_prompts=n, margin=margin,
                           rounds=rounds, seed=100 + 10 * n + k)
            rows.append({"n_prompts": n, **rate_line(f"{n:>3} prompts, {label}",
                                                     r["counts"][wrong], runs, 0.025)})
    out["error_rates"] = rows
    win = intransitive_matrix()
    r = matrix_study(win, runs, rounds=rounds, seed=500)
    out["intransitive"] = {**rate_line(
        f"intransitive judge (BT {r['population_diff']:+.0f}), margin 25: false PASS",
        r["counts"]["pass"], runs, 0.025), "disagreement": r["disagreement"],
        "regression": r["regression"]}
    print(f"  (paths disagreed in {r['disagreement']:.1%}; REGRESSION {r['regression']:.1%},"
          f" INCONCLUSIVE {r['inconclusive']:.1%})")
    cases = {}
    for name, (battles, clusters, base, cand, expected, what) in hard_cases().items():
        res = rating_difference(battles, clusters, base, cand, rounds=1000, margin=25.0)
        got = res.decide()
        cases[name] = {"expected": expected, "got": got, "ci_low": res.ci_low,
                       "ci_high": res.ci_high, "why": res.disagreement or res.unlinked}
        print(f"  hard case {name:<27} {got:<12} (expected {expected}; CI "
              f"{_bound(res.ci_low)} .. {_bound(res.ci_high)}; {what})")
    out["hard_cases"] = cases


def _bound(v: float | None) -> str:
    return "open" if v is None else f"{v:+.1f}"


def power_150(q: bool, out: dict) -> None:
    """Power at 150 prompts, margin 0, today's rule (Student t on the bootstrap error,
    paths combined only when sound and consistent) vs the percentile rule before it."""
    runs, rounds = (100, 300) if q else (400, 1000)
    curve = []
    for size in (25.0, 50.0, 75.0):
        gen = regression_for(-size)
        row = {"population_regression": size}
        for name, interval in (("percentile (before)", "percentile"), ("student", "student")):
            r = gate_study(gen, runs, n_prompts=150, rounds=rounds, interval=interval,
                           seed=700 + int(size))
            row[interval] = r["regression"]
        curve.append(row)
        print(f"[power, 150 prompts] true -{size:.0f}: REGRESSION found "
              f"{row['percentile']:.1%} (percentile rule) vs {row['student']:.1%} "
              f"(Student t), {runs} data sets each", flush=True)
    out["power_150"] = curve


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


def style_numbers(q: bool, out: dict) -> None:
    """Style control on simulated biased and unbiased judges (style_study.py)."""
    runs = 100 if q else 300
    out["style"] = []
    for bias in (60.0, 0.0):
        t0 = time.perf_counter()
        res = style_study(runs, bias, seed=1000 if bias else 5000)
        out["style"].append(res)
        print(f"[style] judge bias {bias:+.0f} Elo per unit, {res['n_prompts']} prompts, "
              f"prompt effects sd {res['prompt_sd']:.0f}:")
        rate_line(f"coefficient 95% CI covers {bias:+.0f}", res["covered"], runs)
        print(f"  controlled board in the true order: {res['order']}/{runs}; mean abs "
              f"rating error controlled {res['mae_controlled']:.1f} Elo vs raw "
              f"{res['mae_raw']:.1f} Elo  [{time.perf_counter() - t0:.0f} s]", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["coverage", "gate", "power150", "power", "scheduling", "style",
                            "kwise"])
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
        out["coverage_small"] = []
        for n in (15, 40, 150):
            row = {"n_prompts": n}
            for interval in ("percentile", "student"):
                c = coverage_study(100 if q else 400, n_prompts=n, seeds=1, prompt_sd=100.0,
                                   rounds=300 if q else 1000, interval=interval, seed=40 + n)
                row[interval] = c["clustered"]
            out["coverage_small"].append(row)
            print(f"[coverage] {n:>3} prompts, prompt-clustered 95% CI: percentile "
                  f"{row['percentile']:.1%}, Student t {row['student']:.1%}", flush=True)
    for name, step in (("gate", gate_numbers), ("power150", power_150),
                       ("power", power_numbers)):
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
    if "style" not in args.skip:
        style_numbers(q, out)
    if "kwise" not in args.skip:
        kwise_numbers(q, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
