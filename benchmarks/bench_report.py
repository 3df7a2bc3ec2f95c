"""report.html build time per 100 images, measured side by side in one run.

A synthetic finished run (4 models, one pointwise judge, P prompts, 512x512 PNG images
with real-photo-like noise, boards rated by the real rating code) is written for several
sizes; `build_report` is timed on each (median of 3), with the charts alone and the
thumbnails alone timed too. Prints seconds per 100 images and the page's size.

    python benchmarks/bench_report.py [--prompts 25 100] [--repeat 3]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MODELS = ["model_a", "model_b", "model_c", "model_d"]
QUALITY = {"model_a": 0.8, "model_b": 0.6, "model_c": 0.55, "model_d": 0.3}


def _image(rng: np.random.Generator) -> bytes:
    """A 512x512 PNG with smooth structure plus noise (compresses like a photo)."""
    base = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(base).resize((512, 512), Image.BILINEAR), dtype=np.int16)
    big = np.clip(big + rng.integers(-12, 12, size=big.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    return buffer.getvalue()


def make_run(run_dir: Path, store_root: Path, n_prompts: int, seed: int = 0) -> int:
    """Write a synthetic finished run; returns how many images it holds."""
    from autojudge.ratings import RatingConfig
    from autojudge.report.files import leaderboard_document, write_run_files
    from autojudge.report.html import write_config
    from autojudge.report.rundata import write_prompts
    from autojudge.stages.boards import BoardSpec, RunFacts, build_boards, model_stats
    from autojudge.store.index import Store
    from autojudge.types import Battle, Generation, Prompt

    rng = np.random.default_rng(seed)
    prompts = [Prompt(id=f"p{i:04d}", text=f"prompt {i}", tags=(f"tag{i % 5}",))
               for i in range(n_prompts)]
    gens, battles, scores = [], [], []
    with Store(store_root) as store:
        for model in MODELS:
            for p in prompts:
                sha, ext = store.put_blob(_image(rng))
                gens.append(Generation(model, p, 0, sha, str(store.blob_path(sha, ext)),
                                       float(rng.uniform(0.5, 2.0)), 0.003))
    for p in prompts:
        score = {m: QUALITY[m] + float(rng.normal(0, 0.2)) for m in MODELS}
        for m in MODELS:
            scores.append({"judge": "fake", "model": m, "prompt_id": p.id, "seed": 0,
                           "score": score[m], "raw": {}, "failure_kind": None})
        for i, a in enumerate(MODELS):
            for b in MODELS[i + 1:]:
                winner = "model_a" if score[a] > score[b] else "model_b"
                battles.append(Battle(a, b, winner, "fake", p.id, 0, p.tags, score[a],
                                      score[b], "synthetic"))
    rating = RatingConfig(bootstrap_rounds=200, seed=0)
    boards = build_boards(battles, MODELS, ["fake"], BoardSpec(rating, 5, 20),
                          RunFacts(gens, [], {"fake": n_prompts}))
    run = {"name": "bench", "suite": "synthetic", "models": MODELS, "judges": ["fake"],
           "n_prompts": n_prompts, "seeds": [0], "n_battles": len(battles), "n_skipped": 0,
           "ratings": {"confidence": 0.95}, "store": str(store_root)}
    write_run_files(run_dir, leaderboard_document(run, boards, model_stats(gens, MODELS)),
                    battles, gens, scores, [])
    write_prompts(run_dir, prompts)
    write_config(run_dir, {"store": {"root": str(store_root)},
                           "report": {"max_prompts": n_prompts}})
    return len(gens)


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from autojudge.report import figures
    from autojudge.report.html import ReportOptions, _prompt_context, build_report, render_report
    from autojudge.report.rundata import load_run

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MPLCONFIGDIR", str(Path(tmp) / "mpl"))
        with figures.pyplot():  # matplotlib imported once, outside the timings
            pass
        print(f"{'images':>7} {'build s':>8} {'s/100 img':>10} {'thumbs s/100':>13} "
              f"{'charts s':>9} {'page MB':>8}")
        for n in args.prompts:
            run_dir, store = Path(tmp) / f"run{n}", Path(tmp) / "store"
            images = make_run(run_dir, store, n)
            options = ReportOptions(max_prompts=n, cache_dir=str(store))
            total = _median_time(lambda: build_report(run_dir, options), args.repeat)
            data = load_run(run_dir)
            thumbs = _median_time(lambda: _prompt_context(data, options), args.repeat)
            no_grid = ReportOptions(max_prompts=0, plots=False, cache_dir=str(store))
            charts = _median_time(lambda: render_report(data, no_grid), args.repeat)
            size = (run_dir / "report.html").stat().st_size / 1e6
            print(f"{images:>7} {total:>8.2f} {100 * total / images:>10.3f} "
                  f"{100 * thumbs / images:>13.3f} {charts:>9.2f} {size:>8.2f}")
    print("build = charts (fixed per board, independent of images) + thumbnails (per image)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
