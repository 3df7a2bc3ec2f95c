"""Benchmark: `python -m autojudge.rate` vs the straightforward bootstrap, in one run.

Generates a seeded synthetic battle log (Bradley-Terry with true strengths plus
per-prompt model effects, 10% ties) as Parquet in a temp dir, then times:

- ours: `python -m autojudge.rate FILE --bootstrap R --json --timings` as a subprocess
  (start-up, imports, Parquet read, validation, encoding, point fit, all R rounds,
  intervals, online Elo and JSON output included), best of `--repeats`, with the time
  split it reports;
- straightforward: the same statistic in-process: read with pandas, encode, then per
  round resample prompts with replacement, aggregate the resampled battles onto unique
  (model_a, model_b, outcome) rows with weights, and refit the same penalised BT
  likelihood with scipy L-BFGS-B (gtol 1e-6), as FastChat's bootstrap does. All rounds
  are run unless `--naive-rounds` asks for fewer (then extrapolated; the output says so).

    python benchmarks/bench_ratings.py                      # full size (1e6 battles)
    python benchmarks/bench_ratings.py --battles 20000 --rounds 50
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from autojudge.ratings import DEFAULT_PRIOR  # noqa: E402

SCALE = 400.0 / math.log(10.0)


def make_battles(n: int, n_models: int, n_prompts: int, seed: int) -> pd.DataFrame:
    """Seeded synthetic battles: BT strengths + prompt x model effects, 10% ties."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 0.8, n_models)
    effect = rng.normal(0.0, 0.5, (n_prompts, n_models))
    prompt = rng.integers(0, n_prompts, n)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    p = expit(strength[a] + effect[prompt, a] - strength[b] - effect[prompt, b])
    u = rng.random(n)
    tie = rng.random(n) < 0.1
    winner = np.where(u < p, "model_a", "model_b").astype(object)
    winner[tie] = np.where(rng.random(int(tie.sum())) < 0.5, "tie", "tie (bothbad)")
    names = np.array([f"model-{k:02d}" for k in range(n_models)], dtype=object)
    pids = np.array([f"p{k:05d}" for k in range(n_prompts)], dtype=object)
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner,
                         "judge": "synthetic", "prompt_id": pids[prompt],
                         "seed": rng.integers(0, 4, n)})


def bt_loss_and_grad(s: np.ndarray, pairs: np.ndarray, outcome: np.ndarray,
                     weight: np.ndarray, prior: float) -> tuple[float, np.ndarray]:
    """FastChat's bt_loss_and_grad (natural-log strengths) plus the same L2 prior."""
    d = s[pairs[:, 0]] - s[pairs[:, 1]]
    loss = (weight * (outcome * np.logaddexp(0.0, -d)
                      + (1.0 - outcome) * np.logaddexp(0.0, d))).sum()
    g = -(outcome - expit(d)) * weight
    grad = np.zeros_like(s)
    np.add.at(grad, pairs[:, 0], g)
    np.add.at(grad, pairs[:, 1], -g)
    return loss + 0.5 * prior * s @ s, grad + prior * s


def naive_fit(pairs: np.ndarray, outcome: np.ndarray, weight: np.ndarray, n_models: int,
              prior: float) -> np.ndarray:
    """Refit BT on weighted unique (model_a, model_b, outcome) rows with L-BFGS-B."""
    res = minimize(bt_loss_and_grad, np.zeros(n_models),
                   args=(pairs, outcome, weight, prior), jac=True,
                   method="L-BFGS-B", options={"maxiter": 100, "gtol": 1e-6})
    r = res.x * SCALE
    return r - r.mean() + 1000.0


def naive_run(path: Path, rounds: int, seed: int, prior: float, fast_aggregation: bool
              ) -> tuple[np.ndarray, float, float]:
    """The straightforward version, in-process: read with pandas, encode, then per round
    resample prompts with replacement, aggregate the resampled battles onto unique
    (model_a, model_b, outcome) rows with weights and refit with scipy L-BFGS (gtol 1e-6).

    fast_aggregation False (as the issue describes it): each round's resampled battles
    are materialised (the drawn prompts' battle indices) and counted per unique row with
    np.unique. True (a stronger reference): a battle's weight is its prompt's draw count,
    summed per unique row by one weighted bincount, with nothing materialised.

    Returns:
        (point ratings, seconds to read + encode + point-fit, seconds for the rounds).
    """
    t0 = time.perf_counter()
    df = pd.read_parquet(path, columns=["model_a", "model_b", "winner", "prompt_id"])
    names = sorted(set(df["model_a"].unique()) | set(df["model_b"].unique()))
    m = len(names)
    a = pd.Categorical(df["model_a"], categories=names).codes.astype(np.int64)
    b = pd.Categorical(df["model_b"], categories=names).codes.astype(np.int64)
    out = df["winner"].map({"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2})
    code = (a * m + b) * 3 + out.to_numpy(np.int64)
    prompt, _ = pd.factorize(df["prompt_id"])
    uniq, row = np.unique(code, return_inverse=True)
    pairs = np.column_stack([uniq // 3 // m, uniq // 3 % m])
    outcome = np.array([1.0, 0.0, 0.5])[uniq % 3]
    point = naive_fit(pairs, outcome, np.bincount(row, minlength=len(uniq)).astype(float),
                      m, prior)
    order = np.argsort(prompt, kind="stable")
    by_prompt = np.split(order, np.cumsum(np.bincount(prompt))[:-1])
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_prompts = int(prompt.max()) + 1
    for _ in range(rounds):
        sample = rng.integers(0, n_prompts, n_prompts)
        if fast_aggregation:
            draws = np.bincount(sample, minlength=n_prompts)
            weight = np.bincount(row, weights=draws[prompt], minlength=len(uniq))
            naive_fit(pairs, outcome, weight, m, prior)
        else:
            drawn = code[np.concatenate([by_prompt[p] for p in sample])]
            u, counts = np.unique(drawn, return_counts=True)
            naive_fit(np.column_stack([u // 3 // m, u // 3 % m]),
                      np.array([1.0, 0.0, 0.5])[u % 3], counts.astype(float), m, prior)
    return point, t1 - t0, time.perf_counter() - t1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--battles", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    p.add_argument("--naive-rounds", type=int, default=None,
                   help="naive rounds actually run (default all; fewer are extrapolated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="runs of ours (best is kept)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "battles.parquet"
        make_battles(args.battles, args.models, args.prompts, args.seed).to_parquet(path)
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        cmd = [sys.executable, "-m", "autojudge.rate", str(path), "--bootstrap",
               str(args.rounds), "--seed", str(args.seed), "--json", "--timings"]
        runs = []
        for _ in range(args.repeats):  # best of N: the machine is shared and noisy
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            runs.append((time.perf_counter() - t0, proc))
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
        ours, proc = min(runs, key=lambda r: r[0])
        split = dict(item.split(" ") for item in
                     proc.stderr.strip().split("timings: ", 1)[1].split(", "))
        rows = {r["model"]: r["rating"] for r in json.loads(proc.stdout)["models"]}
        n_naive = args.rounds if args.naive_rounds is None else min(args.naive_rounds,
                                                                    args.rounds)
        refs = {}
        for label, fast in (("straightforward", False), ("bincount-aggregated", True)):
            point, base_s, measured = naive_run(path, n_naive, args.seed, DEFAULT_PRIOR, fast)
            refs[label] = (point, base_s, measured)
    read_s, rate_s = float(split["read_encode_s"]), float(split["rate_s"])
    print(f"data: {args.battles} battles, {args.models} models, {args.prompts} prompts, "
          f"{args.rounds} prompt-clustered bootstrap rounds (Parquet)")
    print(f"ours (python -m autojudge.rate --bootstrap {args.rounds}, subprocess, best of "
          f"{args.repeats}): {ours:.2f} s = start-up + imports + output "
          f"{ours - read_s - rate_s:.2f} s, read + encode {read_s:.2f} s, rating (fit, "
          f"bootstrap, intervals, Elo) {rate_s:.2f} s")
    extrapolated = "" if n_naive == args.rounds else " (rounds extrapolated linearly)"
    for label, (point, base_s, measured) in refs.items():
        total = base_s + measured / max(n_naive, 1) * args.rounds
        diff = max(abs(rows[f"model-{k:02d}"] - point[k]) for k in range(args.models))
        print(f"{label}: read + encode + point fit {base_s:.2f} s, {n_naive} rounds "
              f"{measured:.2f} s ({measured / max(n_naive, 1):.4f} s/round); total "
              f"{total:.2f} s{extrapolated}; ours is {total / ours:.1f}x faster; max "
              f"|ours - it| point rating {diff:.4f} Elo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
