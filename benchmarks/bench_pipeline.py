"""CLI start-up and the cache, measured side by side in one run.

Prints: seconds for `python -m autojudge --help` and for a config error (both must answer
in under 2 s: torch, wandb and onnxruntime load only when a stage needs them), then the
default experiment cold (empty store) and warm (same store, same run dir), the warm
run's wall time as a fraction of the cold run's (aim: at most 0.05 with the default
logger and report on), and where the warm run's time goes (the `timing:` lines the run
writes to its log file; W&B's child process overlaps the run, so its parts are not
added to the run's own).

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
        warm_runs, parts = [], []
        for _ in range(args.repeats):
            warm_runs.append(timed(common, env))
            parts.append(timing_lines(run_dir))
        warm_s = statistics.median(t for t, _ in warm_runs)
        cache = json.loads((run_dir / "leaderboard.json").read_text())["run"]["cache"]
    print(f"cold run:      {cold_s:.2f} s")
    print(f"warm re-run:   {warm_s:.2f} s (median of {args.repeats}); cache: {json.dumps(cache)}")
    print(f"warm / cold:   {warm_s / cold_s:.3f}  ({cold_s / warm_s:.1f}x faster; aim <= 0.05)")
    where_the_time_goes(warm_s, parts)
    return 0


def timing_lines(run_dir: Path) -> dict[str, float]:
    """The last run's `timing: PART SECONDS s` lines from the run folder's log file."""
    out: dict[str, float] = {}
    for log in run_dir.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "timing: " in line:
                what, _, seconds = line.split("timing: ", 1)[1].rpartition(" s")[0] \
                    .rpartition(" ")
                out[what] = float(seconds)
    return out


def where_the_time_goes(wall: float, parts: list[dict[str, float]]) -> None:
    """Median seconds per part over the warm runs, and the rest (start-up: Python,
    imports, Hydra composing the config, pre-flight; the terminal report)."""
    names = [k for k in parts[0] if "child" not in k] if parts else []
    child = [k for k in parts[0] if "child" in k] if parts else []
    print("where the warm run's time goes (median over the warm runs):")
    own = 0.0
    for name in names:
        value = statistics.median(p.get(name, 0.0) for p in parts)
        own += value
        print(f"  {name:<28} {value:6.2f} s  {value / wall:5.1%}")
    print(f"  {'start-up, pre-flight, rest':<28} {wall - own:6.2f} s  {(wall - own) / wall:5.1%}")
    for name in child:
        value = statistics.median(p.get(name, 0.0) for p in parts)
        print(f"  {name:<28} {value:6.2f} s  (in W&B's own process, overlapping the run)")


if __name__ == "__main__":
    sys.exit(main())
