"""Benchmark: BT + prompt-clustered bootstrap through `python -m autojudge.rate` vs naive.

Generates a seeded synthetic battle log (Bradley-Terry with true strengths plus
per-prompt model effects, 10% ties) as Parquet in a temp dir, then times in one run:

- ours: `python -m autojudge.rate FILE --bootstrap R --json` as a subprocess (start-up,
  Parquet read, validation, point fit, online Elo and all R rounds included);
- naive: the straightforward implementation of the same statistic, in-process: read the
  Parquet file, then per round resample prompts with replacement, re-aggregate the
  resampled battles onto unique (matchup, outcome) rows with np.unique, and refit the
  same penalised BT likelihood with scipy L-BFGS-B as FastChat does. Naive rounds are
  slow, so `--naive-rounds` of them are measured and the per-round time is extrapolated
  linearly to R rounds (the output says so).

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


def naive_fit(code: np.ndarray, n_models: int, prior: float) -> np.ndarray:
    """Re-aggregate battle codes ((a*M+b)*3+outcome) with np.unique, fit by L-BFGS-B."""
    uniq, counts = np.unique(code, return_counts=True)
    pairs = np.column_stack([uniq // 3 // n_models, uniq // 3 % n_models])
    outcome = np.array([1.0, 0.0, 0.5])[uniq % 3]
    res = minimize(bt_loss_and_grad, np.zeros(n_models),
                   args=(pairs, outcome, counts.astype(float), prior), jac=True,
                   method="L-BFGS-B", options={"maxiter": 100, "gtol": 1e-6})
    r = res.x * SCALE
    return r - r.mean() + 1000.0


def naive_run(path: Path, rounds: int, seed: int, prior: float
              ) -> tuple[np.ndarray, float, float]:
    """Naive point fit + `rounds` bootstrap rounds.

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
    order = np.argsort(prompt, kind="stable")
    by_prompt = np.split(order, np.cumsum(np.bincount(prompt))[:-1])
    point = naive_fit(code, m, prior)
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(rounds):
        sample = rng.integers(0, len(by_prompt), len(by_prompt))
        idx = np.concatenate([by_prompt[p] for p in sample])
        boot.append(naive_fit(code[idx], m, prior))
    return point, t1 - t0, time.perf_counter() - t1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--battles", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    p.add_argument("--naive-rounds", type=int, default=50,
                   help="naive rounds actually run (time is extrapolated to --rounds)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "battles.parquet"
        make_battles(args.battles, args.models, args.prompts, args.seed).to_parquet(path)
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "autojudge.rate", str(path),
                               "--bootstrap", str(args.rounds), "--seed", str(args.seed),
                               "--json"], capture_output=True, text=True, env=env)
        ours = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        rows = {r["model"]: r["rating"] for r in json.loads(proc.stdout)["models"]}
        n_naive = min(args.naive_rounds, args.rounds)
        point, base_s, measured = naive_run(path, n_naive, args.seed, DEFAULT_PRIOR)
    per_round = measured / max(n_naive, 1)
    naive = base_s + per_round * args.rounds
    diff = max(abs(rows[f"model-{k:02d}"] - point[k]) for k in range(args.models))
    print(f"data: {args.battles} battles, {args.models} models, {args.prompts} prompts, "
          f"{args.rounds} prompt-clustered bootstrap rounds (Parquet)")
    print(f"ours (python -m autojudge.rate --bootstrap {args.rounds}, subprocess): "
          f"{ours:.2f} s")
    print(f"naive read + encode + point fit: {base_s:8.2f} s (measured)")
    print(f"naive bootstrap, {n_naive} rounds:   {measured:8.2f} s (measured, "
          f"{per_round:.4f} s/round)")
    print(f"naive total for {args.rounds} rounds:  {naive:8.2f} s (rounds extrapolated "
          "linearly from the measured ones)")
    print(f"speedup: {naive / ours:.1f}x")
    print(f"max |ours - naive| point rating: {diff:.4f} Elo points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
