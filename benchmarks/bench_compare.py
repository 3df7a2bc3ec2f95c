"""`autojudge.compare` over a 3-job sweep vs running the pooled experiment from scratch,
measured side by side in one run (same machine, same settings, each a fresh process).

1. the sweep: `python -m autojudge -m model.typeset.max_font_size=4,6,24` (typeset vs
   blank, OCR judge) on a fresh store;
2. compare: `python -m autojudge.compare SWEEP_DIR` (pools the 3 jobs: 4 models, every
   pair judged from the score cache);
3. from scratch: the same pooled experiment as one run (the three font sizes as variants
   of one run, `+model.typeset.sweep.max_font_size=[4,6,24]`) on another fresh store.

Prints the wall times, the ratio compare / from scratch (aim: under 0.1), and checks that
compare generated and judged nothing and gives the same board.

    python benchmarks/bench_compare.py [--prompts 28]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (4, 6, 24)
COMMON = ["model=[typeset,blank]", "model.typeset.width=256", "model.typeset.height=256",
          "model.typeset.min_font_size=2", "suite.tags=[text_rendering]", "logger=none",
          "progress=false"]


def _run(args: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(args[:3])} ...\n{proc.stderr[-2000:]}")
    return elapsed


def _board(path: Path) -> dict:
    document = json.loads(path.read_text())
    board = next(b for b in document["boards"] if b["judge"] == "ocr" and b["tag"] is None)
    return {"cache": document["run"]["cache"],
            "ratings": {r["model"]: round(r["rating"], 6) for r in board["models"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=28, help="text prompts (max 28)")
    args = parser.parse_args()
    limit = [f"suite.limit={args.prompts}"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sweep = _run(["autojudge", "-m", "model.typeset.max_font_size="
                      + ",".join(map(str, SIZES)), *COMMON, *limit,
                      f"store.root={root / 'store'}", f"hydra.sweep.dir={root / 'sweep'}"])
        pooled = _run(["autojudge.compare", str(root / "sweep"), "--quiet"])
        scratch = _run(["autojudge", *COMMON, *limit, "+model.typeset.sweep.max_font_size=["
                        + ",".join(map(str, SIZES)) + "]", f"store.root={root / 'fresh'}",
                        f"hydra.run.dir={root / 'scratch'}"])
        compared = _board(root / "sweep" / "compare" / "leaderboard.json")
        from_scratch = _board(root / "scratch" / "leaderboard.json")
    print(f"prompts: {args.prompts}, models pooled: {len(compared['ratings'])}")
    print(f"sweep (3 jobs, fresh store)         {sweep:7.2f} s")
    print(f"compare (pool the 3 jobs)           {pooled:7.2f} s")
    print(f"pooled experiment from scratch      {scratch:7.2f} s")
    print(f"compare / from scratch              {pooled / scratch:7.3f}x  (aim < 0.1x)")
    judged = compared["cache"]["judges"]["ocr"]["computed"]
    made = compared["cache"]["generation"]["computed"]
    print(f"compare generated {made} images and judged {judged}; same ratings as the "
          f"one-run experiment: {compared['ratings'] == from_scratch['ratings']}")


if __name__ == "__main__":
    main()
