"""executor=ray vs executor=local on this machine, Ray's per-task costs, and the driver's
store-write rate, measured side by side in one run, then extrapolated to a release run.

Prints, for each experiment (the default one: 3 baselines x 94 prompts = 282 images, OCR;
and "tiny": typeset + two tiny random diffusers pipelines x 94 prompts x 2 seeds = 564
images, OCR): wall time local vs Ray (a local 2-CPU Ray, started by the run), the ratio,
the time to the first stored result, and whether the boards are identical. Then, measured
in this process: Ray start-up, worker start-up, the per-batch round trip through an actor
pool, object-store transfer of image-sized outputs, and the driver's store writes (blob +
row) and verified reads per second for 1.5 MB images. Last, the figures extrapolated to
10,000 prompts x 8 models x 2 seeds on 8 GPUs (docs/scale_out.md explains them).

    python benchmarks/bench_ray.py            # everything (~6 min on 2 cores)
    python benchmarks/bench_ray.py --quick    # the default experiment only, fewer probes
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tiny_diffusers
IMAGE_MB = 1.5  # a 1024x1024 PNG of a photograph-like image


def first_row_after(store: Path, start: float, table: str, out: dict) -> None:
    """Poll the index until `table` has a row: the time to the first stored result."""
    while "first" not in out and not out.get("done"):
        try:
            with sqlite3.connect(store / "index.sqlite", timeout=1) as db:
                if db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]:
                    out["first"] = time.perf_counter() - start
        except sqlite3.Error:
            pass
        time.sleep(0.005)


def timed_run(args: list[str], store: Path, run_dir: Path) -> dict:
    """One `python -m autojudge` run as a user types it: wall, time to first result, doc."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}
    start, seen = time.perf_counter(), {}
    poller = threading.Thread(target=first_row_after, args=(store, start, "generations", seen))
    poller.start()
    proc = subprocess.run([sys.executable, "-m", "autojudge", *args, f"store.root={store}",
                           f"hydra.run.dir={run_dir}", "logger=none", "progress=false"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    seen["done"] = True
    poller.join()
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {proc.stderr[-2000:]}")
    doc = json.loads((run_dir / "leaderboard.json").read_text())
    return {"wall": wall, "first": seen.get("first"), "doc": doc}


MODES = {"local": [], "ray": ["executor=ray", "executor.num_cpus=2"]}


def compare(name: str, args: list[str], tmp: Path, repeats: int) -> dict:
    """The same experiment on a fresh store each time: local and a Ray the run starts
    (alternately), then Ray already running (the run joins it, as on a cluster); the best
    of `repeats` each (other work on the machine only ever slows a run down)."""
    runs: dict[str, list[dict]] = {"local": [], "ray": [], "ray joined": []}

    def one(mode: str, extra: list[str], attempt: int) -> None:
        tag = f"{name.replace(' ', '_')}-{mode.replace(' ', '_')}-{attempt}"
        runs[mode].append(timed_run([*args, *extra], tmp / f"{tag}-store", tmp / f"{tag}-run"))

    for attempt in range(repeats):
        for mode, extra in MODES.items():
            one(mode, extra, attempt)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        joined = ["executor=ray", f"executor.address={ray.get_runtime_context().gcs_address}"]
        for attempt in range(repeats):
            one("ray joined", joined, attempt)
    finally:
        ray.shutdown()
    best = {k: min(v, key=lambda r: r["wall"]) for k, v in runs.items()}
    return report(name, best, runs, repeats)


def report(name: str, best: dict, runs: dict, repeats: int) -> dict:
    local = best["local"]
    cache = local["doc"]["run"]["cache"]
    images = cache["generation"]["computed"]
    scores = sum(j["computed"] for j in cache["judges"].values())
    same = all(r["doc"]["boards"] == local["doc"]["boards"] for v in runs.values() for r in v)
    print(f"\n{name}: {images} images, {scores} scores (best of {repeats})")
    for mode, r in best.items():
        first = min(x["first"] for x in runs[mode])
        print(f"  {mode:10s} wall {r['wall']:6.1f} s (in-run {r['doc']['run']['wall_s']:6.1f} s)"
              f"  x{r['wall'] / local['wall']:.2f}   first result after {first:.2f} s")
    print(f"  boards identical in every run: {same}")
    return {"images": images, "same": same,
            **{mode: r["wall"] / local["wall"] for mode, r in best.items()}}


class Payload:
    """A generator whose images are `size` bytes (to time object-store transfer)."""

    kind, version, cacheable, batch_size = "payload", 1, True, 1
    size = 1  # bytes per image; subclasses set it

    def __init__(self, name: str, config=None):
        self.name = name

    def fingerprint(self):
        return {"kind": self.kind, "version": 1, "params": {}}

    def check(self) -> None:
        pass

    def generate(self, requests):
        from autojudge.types import GenOutput

        return [GenOutput(b"\x89PNG" + os.urandom(self.size - 4), 0.0) for _ in requests]


def ray_costs(quick: bool) -> dict:
    """Ray start-up, worker start-up, per-batch round trip, transfer MB/s (in-process)."""
    import ray
    import ray.cloudpickle

    from autojudge.executors.ray_pool import ActorPool, PoolShape
    from autojudge.executors.ray_worker import PluginSpec
    from autojudge.stages.isolation import guarded_generate
    from autojudge.types import GenRequest, Prompt

    t = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    start_s = time.perf_counter() - t
    if __name__ != "__main__":  # a script's classes travel by value anyway
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    n = 100 if quick else 400
    request = GenRequest(Prompt("p", "x"), 0)
    out = {"ray_start_s": start_s}
    for size, label in ((1, "tiny"), (int(IMAGE_MB * 2 ** 20), "image")):
        cls = type(f"Payload_{label}", (Payload,), {"size": size})
        spec = PluginSpec("model", label, cls, {"kind": "payload"})
        pool = ActorPool(PoolShape(), name_prefix=f"bench-{label}")
        t = time.perf_counter()
        list(pool.imap(spec, 1, "generate", [lambda: ([request],)]))
        out[f"worker_start_s_{label}"] = time.perf_counter() - t
        count = n if label == "tiny" else n // 4
        t = time.perf_counter()
        for _ in pool.imap(spec, 1, "generate", [lambda: ([request],)] * count):
            pass
        ray_s = (time.perf_counter() - t) / count
        local = cls("x")
        t = time.perf_counter()
        for _ in range(count):
            guarded_generate(local, [request])
        local_s = (time.perf_counter() - t) / count
        out[f"per_batch_{label}_s"] = ray_s - local_s
        pool.shutdown()
    out["transfer_mb_s"] = IMAGE_MB / max(out["per_batch_image_s"], 1e-9)
    ray.shutdown()
    print(f"\nRay: start {out['ray_start_s']:.2f} s; a worker {out['worker_start_s_tiny']:.2f} s;"
          f" per-batch round trip {out['per_batch_tiny_s'] * 1e3:.2f} ms (tiny output), "
          f"{out['per_batch_image_s'] * 1e3:.1f} ms with a {IMAGE_MB} MB image "
          f"(= {out['transfer_mb_s']:.0f} MB/s to the driver)")
    return out


def store_rates(tmp: Path, quick: bool) -> dict:
    """The driver's writes for image-sized blobs: put_blob + one row per image,
    committed per batch of 8 as the generate stage does; verified reads; score rows."""
    from autojudge.stages.cache import score_row
    from autojudge.store.index import Store, failure_columns, now
    from autojudge.types import JudgeItem, Prompt, Score

    n = 60 if quick else 240
    blobs = [b"\x89PNG" + os.urandom(int(IMAGE_MB * 2 ** 20) - 4) for _ in range(n)]
    store = Store(tmp / "rate-store")
    t = time.perf_counter()
    for start in range(0, n, 8):
        rows = []
        for i, data in enumerate(blobs[start:start + 8], start):
            sha, ext = store.put_blob(data)
            rows.append({"key": f"k{i}", "fingerprint": "fp", "image_sha": sha,
                         "image_ext": ext, "latency_s": 1.0, "cost_usd": 0.0,
                         **failure_columns(None), "meta": "{}", "created": now()})
        store.put_many("generations", rows)
    write_s = (time.perf_counter() - t) / n
    fresh = Store(tmp / "rate-store")  # a new run hashes each blob once
    shas = [r.values["image_sha"] for r in fresh.get_many("generations",
                                                           [f"k{i}" for i in range(n)]).values()]
    t = time.perf_counter()
    for sha in shas:
        fresh.verified_blob(sha, "png")
    read_s = (time.perf_counter() - t) / n
    prompt = Prompt("p", "x")
    rows = [score_row(f"s{i}", "fp", JudgeItem(prompt, None, f"{i:064x}"), Score(0.5), now())
            for i in range(20000)]
    t = time.perf_counter()
    for start in range(0, len(rows), 32):
        store.put_many("scores", rows[start:start + 32])
    row_s = (time.perf_counter() - t) / len(rows)
    print(f"\ndriver store, {IMAGE_MB} MB images: {1 / write_s:.0f} images/s written "
          f"(blob + row, {IMAGE_MB / write_s:.0f} MB/s); {1 / read_s:.0f} images/s "
          f"verified (hashed) on first read; score rows committed per 32: "
          f"{1 / row_s:.0f} rows/s")
    return {"write_s": write_s, "read_s": read_s, "row_s": row_s}


def extrapolate(gen_s: float, judge_s: float, costs: dict, rates: dict) -> None:
    """10,000 prompts x 8 models x 2 seeds on 8 GPUs, from the measured figures (GPU
    seconds per item for real models are assumptions, printed as such)."""
    images, gpus = 10_000 * 8 * 2, 8
    battles = 10_000 * 2 * 28  # 28 pairs of 8 models per (prompt, seed)
    # generation: the driver receives each image (object store) and commits blob + row
    driver_gen = rates["write_s"] + costs["per_batch_image_s"] / 8  # batches of 8
    # pointwise judging, transfer=bytes: the driver reads + hashes each image and ships it;
    # transfer=shared: only hashes travel (one round trip per batch of 32) + a score row
    ship = rates["read_s"] + costs["per_batch_image_s"]
    shared = costs["per_batch_tiny_s"] / 32 + rates["row_s"]
    print(f"\nextrapolated: {images:,} images, {battles:,} battles per judge, {gpus} GPUs")
    print(f"  driver ceilings: commit generated images {1 / driver_gen:.0f}/s; feed a judge "
          f"images as bytes {1 / ship:.0f}/s; feed it hashes (shared storage) "
          f"{1 / shared:,.0f}/s")
    rows = [("tiny diffusers (measured here, 1 CPU core)", gen_s, driver_gen),
            ("fast model, 1 s/image/GPU (assumed)", 1.0, driver_gen),
            ("SDXL-class, 4 s/image/GPU (assumed)", 4.0, driver_gen),
            ("OCR (measured here, 1 CPU core), bytes", judge_s, ship),
            ("CLIP-like, 2 ms/image/GPU (assumed), bytes", 0.002, ship),
            ("CLIP-like, 2 ms/image/GPU (assumed), shared", 0.002, shared)]
    for name, per_item, driver in rows:
        cluster = per_item / gpus
        who = "workers" if cluster >= driver else "DRIVER"
        print(f"  {name:46s} {images * max(cluster, driver) / 3600:6.2f} h  "
              f"(workers {1 / cluster:,.0f}/s vs driver {1 / driver:,.0f}/s: {who})")
    vlm = 2 * 0.5 / gpus  # swap-debiased: both orders, 0.5 s per call (assumed)
    print(f"  {'VLM pairwise, 2 x 0.5 s/battle/GPU (assumed)':46s} "
          f"{battles * max(vlm, 2 * ship) / 3600:6.2f} h  (workers {1 / vlm:.0f} battles/s)")


def per_item_costs(tmp: Path, tiny_dir: Path) -> tuple[float, float]:
    """Seconds per tiny-diffusers image and per OCR score, in this process (1 thread)."""
    import torch

    from autojudge.generators.diffusers_local import DiffusersGenerator
    from autojudge.judges.ocr import OCRJudge
    from autojudge.stages.judge import decode_image
    from autojudge.types import GenRequest, JudgeItem, Prompt

    torch.set_num_threads(1)  # what a 1-CPU Ray worker gets
    gen = DiffusersGenerator("t", DiffusersGenerator.Config(
        model=str(tiny_dir), num_inference_steps=10, width=64, height=64, batch_size=4,
        device="cpu"))
    requests = [GenRequest(Prompt(f"p{i}", "a sign", expected_text="OPEN"), i) for i in range(16)]
    gen.generate(requests[:4])  # load
    t = time.perf_counter()
    outs = gen.generate(requests)
    gen_s = (time.perf_counter() - t) / len(requests)
    judge = OCRJudge("ocr", OCRJudge.Config())
    items = [JudgeItem(r.prompt, decode_image(o.image), "x") for r, o in zip(requests, outs)]
    judge.score(items[:1])
    t = time.perf_counter()
    judge.score(items)
    judge_s = (time.perf_counter() - t) / len(items)
    print(f"\nper item here: tiny diffusers {gen_s * 1e3:.0f} ms/image (10 steps, 64x64), "
          f"OCR {judge_s * 1e3:.0f} ms/image")
    return gen_s, judge_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="default experiment only")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each executor")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        from tiny_diffusers import build_tiny_sd

        tiny = build_tiny_sd(tmp / "tiny_a")
        tiny_b = build_tiny_sd(tmp / "tiny_b", seed=1)
        results = [compare("default experiment", [], tmp, args.repeats)]
        if not args.quick:
            results.append(compare("tiny", [
                "model=[typeset]", "suite.seeds=[0,1]",
                *(f"+model.{label}={{kind: diffusers, model: '{path}', num_inference_steps: 10,"
                  f" width: 64, height: 64, batch_size: 4, device: cpu}}"
                  for label, path in (("tiny_a", tiny), ("tiny_b", tiny_b)))], tmp,
                args.repeats))
        costs = ray_costs(args.quick)
        rates = store_rates(tmp, args.quick)
        gen_s, judge_s = per_item_costs(tmp, tiny)
        extrapolate(gen_s, judge_s, costs, rates)
        for mode in ("ray", "ray joined"):
            worst = max(r[mode] for r in results)
            print(f"\nworst {mode}/local wall ratio: {worst:.2f}x (aim <= 1.3x)")
        print(f"boards identical: {all(r['same'] for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
