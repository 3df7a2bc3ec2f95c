"""Benchmark: `python -m autojudge.gate` on a run with 1,000,000 battles, 1,000 rounds.

Builds a synthetic run folder (battles.jsonl written as the pipeline writes it, one judge,
BT strengths plus per-prompt model effects, 10% ties; see bench_ratings.make_battles),
then measures in one process run:

- ours: `python -m autojudge.gate RUN --baseline model-00 --candidate model-01
  --bootstrap 1000` as a subprocess (start-up, JSONL read and validation, the paired
  restriction, point fit, 1000 prompt-clustered rounds batched through the vectorised
  Newton solver, gate.json);
- in-process split: reading the log vs the statistics;
- naive: the same statistic by refitting BT from scratch every round with scipy L-BFGS-B
  as FastChat does (prompts resampled, battles re-aggregated with np.unique); naive
  rounds are slow, so `--naive-rounds` are measured and extrapolated linearly to 1000.
  Its read time is the same reader's, so the ratio compares like with like.

    python benchmarks/bench_gate.py                          # full size
    python benchmarks/bench_gate.py --battles 50000 --rounds 100 --naive-rounds 10
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "src"))
sys.path.insert(0, str(HERE))
from bench_ratings import make_battles
from bench_ratings import naive_fit as fit_rows  # noqa: E402

from autojudge.experiment import gate  # noqa: E402
from autojudge.ratings import DEFAULT_PRIOR  # noqa: E402


def write_jsonl(df, path: Path) -> None:
    """The pipeline's battles.jsonl layout, written fast (one json.dumps per row is slow)."""
    import json

    cols = ["model_a", "model_b", "winner", "judge", "prompt_id", "seed"]
    with open(path, "w") as fh:
        for a, b, w, j, p, s in zip(*(df[c].tolist() for c in cols)):
            fh.write(f'{{"model_a": {json.dumps(a)}, "model_b": {json.dumps(b)}, '
                     f'"winner": "{w}", "judge": "{j}", "prompt_id": "{p}", "seed": {s}, '
                     f'"tags": []}}\n')


def naive_gate(df, rounds: int, seed: int) -> tuple[float, float]:
    """Naive diff + bootstrap; returns (point diff, seconds for `rounds` rounds).

    Same paired restriction as the gate: only prompts where both models fought."""
    has = lambda m: set(df.loc[(df["model_a"] == m) | (df["model_b"] == m), "prompt_id"])  # noqa: E731
    df = df[df["prompt_id"].isin(has("model-00") & has("model-01"))]
    names = sorted(set(df["model_a"]) | set(df["model_b"]))
    m = len(names)
    pos = {n: k for k, n in enumerate(names)}
    a = df["model_a"].map(pos).to_numpy(np.int64)
    b = df["model_b"].map(pos).to_numpy(np.int64)
    out = df["winner"].map({"model_a": 0, "model_b": 1, "tie": 2,
                            "tie (bothbad)": 2}).to_numpy(np.int64)
    code = (a * m + b) * 3 + out
    import pandas as pd

    prompt, _ = pd.factorize(df["prompt_id"])
    order = np.argsort(prompt, kind="stable")
    by_prompt = np.split(order, np.cumsum(np.bincount(prompt))[:-1])
    point = naive_fit(code, m, DEFAULT_PRIOR)
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    diffs = []
    for _ in range(rounds):
        sample = rng.integers(0, len(by_prompt), len(by_prompt))
        r = naive_fit(code[np.concatenate([by_prompt[p] for p in sample])], m, DEFAULT_PRIOR)
        diffs.append(r[1] - r[0])
    return float(point[1] - point[0]), time.perf_counter() - t


def naive_fit(code: np.ndarray, m: int, prior: float) -> np.ndarray:
    """Aggregate battle codes ((a*M+b)*3+outcome) with np.unique, refit by L-BFGS-B."""
    uniq, counts = np.unique(code, return_counts=True)
    return fit_rows(np.column_stack([uniq // 3 // m, uniq // 3 % m]),
                    np.array([1.0, 0.0, 0.5])[uniq % 3], counts.astype(float), m, prior)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--battles", type=int, default=1_000_000)
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--naive-rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    df = make_battles(args.battles, args.models, args.prompts, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        write_jsonl(df, run / "battles.jsonl")
        env = dict(os.environ, PYTHONPATH=str(HERE.parents[0] / "src"))
        cmd = [sys.executable, "-m", "autojudge.gate", str(run), "--baseline", "model-00",
               "--candidate", "model-01", "--bootstrap", str(args.rounds),
               "--seed", str(args.seed)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        ours = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            print(proc.stderr, file=sys.stderr)
            return 1
        t1 = time.perf_counter()
        frame = gate.load_run_battles(run)
        read_s = time.perf_counter() - t1
        settings = gate.GateSettings("model-00", "model-01", bootstrap=args.rounds,
                                     seed=args.seed)
        t2 = time.perf_counter()
        result = gate.evaluate(frame, settings)
        stats_s = time.perf_counter() - t2
    n_naive = min(args.naive_rounds, args.rounds)
    point, naive_s = naive_gate(df, n_naive, args.seed)
    naive_stats = naive_s / n_naive * args.rounds
    check = result.checks[0]
    print(f"data: {args.battles} battles, {args.models} models, {args.prompts} prompts, "
          f"{args.rounds} prompt-clustered bootstrap rounds")
    print(f"ours: python -m autojudge.gate (subprocess, end to end): {ours:.2f} s "
          f"[{proc.stdout.strip().splitlines()[-1][:90]}]")
    print(f"  in-process: read + validate battles.jsonl {read_s:.2f} s, "
          f"statistics (fit + {args.rounds} rounds) {stats_s:.2f} s")
    print(f"naive: {n_naive} L-BFGS rounds from scratch measured {naive_s:.2f} s -> "
          f"{naive_stats:.1f} s for {args.rounds} rounds (extrapolated linearly)")
    print(f"ratio, statistics only: {naive_stats / stats_s:.1f}x; end to end (naive plus "
          f"the same read): {(naive_stats + read_s) / ours:.1f}x")
    bt = check["paths"].get("bt", {}).get("diff", check["diff"])
    print(f"point diff ours {check['diff']:.3f} (BT path {bt:.3f}; paths "
          f"{check['paths']}) vs naive BT {point:.3f} Elo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
