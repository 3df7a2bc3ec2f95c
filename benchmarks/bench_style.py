"""What style control adds to a run, measured side by side in one run.

Runs the default experiment (logger=none) cold, on a fresh store each time, alternately
without and with `ratings.control=[every pixel feature]`, `--repeats` times each, and
prints the median wall times and their ratio; then the controlled run again warm (same
store) against a warm run without control: the features come from the store, so the
difference should be only the controlled fit. The per-image cost of the features alone
is printed too (images of the cold run, in process), and the stage's own time as the
run logs it: whole-run differences of a few seconds are within this machine's noise.

    python benchmarks/bench_style.py              # 3 cold runs of each
    python benchmarks/bench_style.py --repeats 1
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from autojudge.style import PIXEL_FEATURES  # noqa: E402

CONTROL = "ratings.control=[" + ",".join(PIXEL_FEATURES) + "]"


def run(store: Path, run_dir: Path, control: bool, env: dict[str, str]) -> float:
    args = [sys.executable, "-m", "autojudge", "logger=none", "progress=false",
            f"store.root={store}", f"hydra.run.dir={run_dir}", *([CONTROL] if control else [])]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-500:]}")
    return elapsed


def stage_seconds(run_dir: Path) -> float:
    """The style-features stage's own time, from the run's log line."""
    import re

    for log_file in run_dir.glob("*.log"):
        found = re.search(r"style features: .* computed in ([0-9.]+) s", log_file.read_text())
        if found:
            return float(found.group(1))
    raise SystemExit(f"no style-features line in {run_dir}/*.log")


def feature_seconds(run_dir: Path) -> tuple[float, int]:
    from PIL import Image

    from autojudge.style.features import image_features

    images = sorted(p for p in (run_dir / "images").rglob("*") if p.is_file())
    loaded = [Image.open(p).convert("RGB") for p in images]
    start = time.perf_counter()
    for image in loaded:
        image_features(image)
    return time.perf_counter() - start, len(loaded)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    plain, controlled = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k in range(args.repeats):
            plain.append(run(root / f"s{k}a", root / f"r{k}a", False, env))
            controlled.append(run(root / f"s{k}b", root / f"r{k}b", True, env))
        warm_plain = run(root / "s0a", root / "w0a", False, env)
        warm_controlled = run(root / "s0b", root / "w0b", True, env)
        seconds, n = feature_seconds(root / "r0b")
        stage = [stage_seconds(root / f"r{k}b") for k in range(args.repeats)]
        stage_warm = stage_seconds(root / "w0b")
    p, c = statistics.median(plain), statistics.median(controlled)
    print(f"cold default run: without control {p:.2f} s, with {len(PIXEL_FEATURES)} features "
          f"{c:.2f} s (medians of {args.repeats}); ratio {c / p:.3f}")
    print(f"warm default run: without control {warm_plain:.2f} s, with {warm_controlled:.2f} s;"
          f" ratio {warm_controlled / warm_plain:.3f}")
    print(f"style-features stage inside the controlled runs: cold {statistics.median(stage):.2f}"
          f" s = {100 * statistics.median(stage) / c:.1f}% of the cold run; warm "
          f"{stage_warm:.3f} s (every image's features from the store)")
    print(f"features alone: {seconds:.2f} s for {n} images ({1000 * seconds / max(n, 1):.1f} "
          f"ms per image), {100 * seconds / p:.1f}% of the cold run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
