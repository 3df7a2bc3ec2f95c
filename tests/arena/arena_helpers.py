"""Arena test helpers: a finished run built by hand (store blobs, generations, battles,
leaderboard.json and a suite), fast and with known contents; a settable clock."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

from autojudge.ratings import RatingConfig, board_structure, rate_battles
from autojudge.store.index import Store

MODELS = ("alpha_model", "beta_model", "gamma_model")
PROMPTS = [
    {"id": "p-cat", "text": "a cat on a red sofa", "category": "animals"},
    {"id": "p-sign", "text": 'a sign that reads "OPEN"', "category": "text_rendering",
     "capabilities": ["text"]},
    {"id": "p-xss", "text": "<script>window.pwned=1</script><b>bold</b> & friends",
     "category": "objects"},
    {"id": "p-dog", "text": "a dog in the snow", "category": "animals"},
]


def png(color: tuple[int, int, int], note: str | None = None) -> bytes:
    """A small PNG; `note` goes into a tEXt chunk (as some pipelines write model names)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if note is not None:
        info.add_text("parameters", note)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def make_run(run_dir: Path, store_root: Path, models: Sequence[str] = MODELS,
             prompts: Sequence[dict] = PROMPTS, seeds: Sequence[int] = (0,),
             judge: str | None = "fake", color_shift: int = 0,
             shifted: Sequence[str] = ()) -> Path:
    """Write a finished run: one image per (model, prompt, seed), a judge that prefers
    earlier models, and leaderboard.json with its whole-suite board. Models in `shifted`
    get their colours moved by `color_shift` (other images than another run's)."""
    import yaml

    run_dir.mkdir(parents=True, exist_ok=True)
    suite = run_dir.parent / f"{run_dir.name}_suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "arena_test", "prompts": list(prompts)}))
    store = Store(store_root)
    gens = []
    for m, model in enumerate(models):
        for p, prompt in enumerate(prompts):
            for seed in seeds:
                shift = color_shift if model in shifted else 0
                data = png(((40 * m + shift) % 256, 30 * p % 256, seed % 256),
                           note=f"made by {model}")
                sha, ext = store.put_blob(data)
                gens.append({"model": model, "prompt_id": prompt["id"], "seed": seed,
                             "status": "ok", "image_sha256": sha,
                             "image_path": str(store.blob_path(sha, ext)), "latency_s": 0.1 * (m + 1),
                             "cost_usd": 0.001 * m})
    store.close()
    battles = []
    if judge is not None:
        for prompt in prompts:
            for seed in seeds:
                for a in range(len(models)):
                    for b in range(a + 1, len(models)):
                        battles.append({"model_a": models[a], "model_b": models[b],
                                        "winner": "model_a", "judge": judge,
                                        "prompt_id": prompt["id"], "seed": seed,
                                        "tags": [prompt["category"]], "tstamp": 1.0})
    boards = []
    if battles:
        rows = rate_battles([b["model_a"] for b in battles], [b["model_b"] for b in battles],
                            [b["winner"] for b in battles], [b["prompt_id"] for b in battles],
                            config=RatingConfig(bootstrap_rounds=50), models=list(models))
        boards.append({"judge": judge, "tag": None, "method": "bt", "n_battles": len(battles),
                       "n_prompts": len(prompts), **board_structure(rows), "models": rows})
    stats = [{"model": model, "images": len(prompts) * len(seeds), "failed": 0,
              "failure_rate": 0.0, "latency_p50_s": 0.1 * (m + 1),
              "latency_p95_s": 0.2 * (m + 1), "cost_usd": 0.001 * m * len(prompts),
              "cost_per_image_usd": 0.001 * m} for m, model in enumerate(models)]
    document = {"schema": 1, "run": {"name": "arena_test", "suite": "arena_test",
                                     "suite_path": str(suite), "models": list(models),
                                     "judges": [judge] if judge else [], "store": str(store_root),
                                     "ratings": {"bootstrap_rounds": 50, "seed": 0,
                                                 "confidence": 0.95}},
                "boards": boards, "models": stats, "agreement": []}
    (run_dir / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gens))
    (run_dir / "battles.jsonl").write_text("".join(json.dumps(b) + "\n" for b in battles))
    (run_dir / "leaderboard.json").write_text(json.dumps(document))
    return run_dir


class Clock:
    """A settable clock for token expiry and rate limits."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def arena_config(run_dir: Path, **overrides: Any) -> Any:
    from autojudge.arena.app import ArenaConfig

    settings = {"runs": [run_dir], "workers": "thread", "refit_interval_s": 0.05,
                "bootstrap_rounds": 20, "votes_per_minute": 0, "seed": 0}
    settings.update(overrides)
    return ArenaConfig(**settings)


def serve(run_dir: Path, *args: str, env: dict | None = None) -> tuple[Any, str]:
    """Start `python -m autojudge.arena RUN_DIR --port 0 ARGS` as a user would; returns
    (process, base URL) once it listens. Stop it with `stop(process)`."""
    from autojudge.testing.arena_process import start_arena

    try:
        return start_arena(run_dir, args, env)
    except RuntimeError as exc:
        raise AssertionError(str(exc)) from None


def stop(proc: Any) -> tuple[int, str]:
    """Ctrl-C the server; (exit code, stderr)."""
    import signal
    import subprocess

    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode, proc.stderr.read()
