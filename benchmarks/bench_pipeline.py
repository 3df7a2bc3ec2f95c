"""CLI start-up and the cache, measured side by side in one run.

Prints: seconds for `python -m autojudge --help` and for a config error (both must answer
in under 2 s: torch, wandb and onnxruntime load only when a stage needs them), then the
default experiment cold (empty store) and warm (same store, same run dir), and the warm
run's wall time as a fraction of the cold run's.

    python benchmarks/bench_pipeline.py            # the default experiment, W&B offline
    python benchmarks/bench_pipeline.py --quick    # text prompts only, logger=none
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autojudge", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    return time.perf_counter() - start, proc


def best_of(n: int, args: list[str], env: dict[str, str]) -> float:
    return min(timed(args, env)[0] for _ in range(n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="text prompts only, no W&B")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each start-up probe")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}
    help_s = best_of(args.repeats, ["--help"], env)
    error_s = best_of(args.repeats, ["model=[typeset,blnk]"], env)
    print(f"--help:        {help_s:.2f} s (best of {args.repeats}; limit 2 s)")
    print(f"config error:  {error_s:.2f} s (best of {args.repeats}; limit 2 s)")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        extra = ["suite.tags=[text_rendering]", "logger=none"] if args.quick else []
        common = [f"store.root={Path(tmp) / 'store'}", f"hydra.run.dir={run_dir}",
                  "progress=false", *extra]
        cold_s, cold = timed(common, env)
        if cold.returncode != 0:
            print(cold.stderr, file=sys.stderr)
            return 1
        warm_runs = [timed(common, env) for _ in range(args.repeats)]
        warm_s = statistics.median(t for t, _ in warm_runs)
        cache = json.loads((run_dir / "leaderboard.json").read_text())["run"]["cache"]
    print(f"cold run:      {cold_s:.2f} s")
    print(f"warm re-run:   {warm_s:.2f} s (median of {args.repeats}); cache: {json.dumps(cache)}")
    print(f"warm / cold:   {warm_s / cold_s:.3f}  ({cold_s / warm_s:.1f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
