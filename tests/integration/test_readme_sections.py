"""Every command block of the README's later sections runs as written.

The sibling of test_readme_examples.py (whose helpers it uses): each section's commands
are listed here verbatim, and `test_the_lists_are_the_readme_blocks` fails when a README
block and its list differ, so a command cannot change (or be added) untested. Each runs
as `python -m ...` against this module's own store (AUTOJUDGE_STORE), with only these
changes, all made by `command()`/`experiment()` below from the maps passed per test:

- speed (`FAST`, as in test_readme_examples): every experiment keeps 2 prompts
  (`suite.limit=2`, replacing the README's own limit), 20 bootstrap rounds and
  `logger=none`; Optuna's `n_trials=12` becomes 2; `validate` checks 4 pairs (`--n 4`,
  not 20: OCR reads about an image a second here); the release run keeps 10 prompts
  (the gate refuses to decide on fewer) and runs in `hydra.run.dir=runs/release`, the
  folder the gate line reads;
- weights: a hub id or a `/models/...` folder of a diffusers model is the tiny random
  Stable Diffusion pipeline of tests/tiny_diffusers.py (also under the name sdxl_turbo),
  `/runs/ft/checkpoint-*` its perturbed UNets and `/loras/watercolor` its random LoRA;
  those models make 64x64 images in 2 steps on the CPU in float32 (replacing
  `device=cuda dtype=float16`: no GPU here); CLIP (`/models/open_clip_vit_b32.bin`) and
  the aesthetic head are the tiny ones of tests/tiny_clip.py, with their arch, model
  config and the head's sha256; `/models/Qwen2-VL-2B-Instruct` is tests/tiny_vlm.py;
- keys and servers: `FAL_KEY` is the block's own `export` placeholder, which the fake
  fal queue server (autojudge.testing.fake_fal, reached through FAL_RUN_HOST /
  FAL_QUEUE_RUN_HOST and its self-signed certificate) requires; the VLM endpoint
  (`judge.vlm.base_url`, added, or replacing the README's localhost:8000) is the
  scripted OpenAI-compatible server of tests/vlm_server.py, with a fake OPENAI_API_KEY
  where the README's line has none (`...` where it has one); the arena listens on a
  free port (`--port 0`, not 8000/8080);
- placeholders: `model=[...]` is two weight-free baselines under the README's names,
  `'+model.sdxl-v1={kind: blank}' '+model.sdxl-v2={kind: typeset}'`; the run folders
  `runs/2026-01-01_starter`, `runs/x` and `runs/a` are the Quickstart's
  `python -m autojudge` (FAST) run here as `runs/2024-05-01_starter` (the arena's own
  example name), `runs/b` is the release run, `runs/my_sweep` and
  `runs/<time>_starter_sweep` the sweep folder of the Sweeps multirun; `battles.jsonl`
  is that starter run's battle log, and `human_votes.csv` / `votes.csv` its battles
  written as human votes (`model_a, model_b, winner, prompt_id, seed`); `votes.jsonl`
  is exported after three votes cast over HTTP in the served arena.

Not run: the `pip install` lines (the test environment has every extra; the tests check
that the extra's modules import instead), the arena's `curl` block (tests/arena drive
that API), the W&B `wandb sync` lines (they need a W&B account), and of the Ray blocks
all but the local line `python -m autojudge executor=ray` (the others need a running
cluster, GPUs and an S3 bucket, a Ray Client address, or a launcher plugin;
tests/integration/test_ray*.py drive the same executor on a local Ray, through workers
killed, a lost raylet and shared blob storage).
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from readme_sections import SECTIONS
from test_readme_examples import FAST, argv, board_judges, readme_block, run

pytestmark = pytest.mark.slow

FAL, DIFFUSERS, JUDGES, VALIDATE, RATE, GATES, REPORT, SWEEPS, ARENA, RAY = SECTIONS.values()
STARTER = "runs/2024-05-01_starter"
TINY_DIFFUSERS = {"device": "cpu", "dtype": "float32", "width": "64", "height": "64",
                  "num_inference_steps": "2"}
FAKE_OPENAI_KEY = {"OPENAI_API_KEY": "sk-fake-for-the-scripted-server"}


def command(line: str, paths: dict[str, str] | None = None,
            overrides: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of a README line: a leading `NAME=value` is the environment."""
    env = {}
    while match := re.match(r"([A-Z_]+)=(\S*)\s+", line):
        env[match.group(1)] = match.group(2)
        line = line[match.end():]
    return argv(line, paths, overrides), env


def run_line(line: str, cwd: Path, store: Path, paths: dict[str, str] | None = None,
             overrides: dict[str, str] | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess:
    args, line_env = command(line, paths, overrides)
    return run(args, cwd, store, env={**(env or {}), **line_env})


def experiment(line: str, cwd: Path, store: Path, paths: dict[str, str] | None = None,
               overrides: dict[str, str] | None = None, env: dict[str, str] | None = None
               ) -> Path:
    """Run a README experiment with FAST and return the run folder it wrote."""
    proc = run_line(line, cwd, store, paths, {**FAST, **(overrides or {})}, env)
    written = re.findall(r"wrote (\S+)/leaderboard\.json", proc.stdout)
    assert len(written) == 1, proc.stdout[-2000:]
    return Path(written[0])


def diffusers_local(labels: list[str], new: bool = False) -> dict[str, str]:
    """TINY_DIFFUSERS for each model; `new`: models made on the command line, whose keys
    Hydra only adds with `+`."""
    plus = "+" if new else ""
    return {f"{plus}model.{label}.{key}": value for label in labels
            for key, value in TINY_DIFFUSERS.items()}


def winners(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "battles.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ shared runs, fakes


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme_sections_store")


@pytest.fixture(scope="module")
def work(tmp_path_factory, store) -> Path:
    """A working folder with the default experiment (FAST) at runs/2024-05-01_starter, its
    battle log as battles.jsonl, and its battles as human votes (human_votes.csv,
    votes.csv)."""
    work = tmp_path_factory.mktemp("readme_sections")
    run(argv("python -m autojudge", overrides={**FAST, "hydra.run.dir": STARTER}), work, store)
    battles = winners(work / STARTER)
    shutil.copy(work / STARTER / "battles.jsonl", work / "battles.jsonl")
    fields = ["model_a", "model_b", "winner", "prompt_id", "seed"]
    for name in ("human_votes.csv", "votes.csv"):
        with open(work / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(battles)
    return work


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("diffusers", reason="needs the [diffusers] extra")
    pytest.importorskip("open_clip", reason="needs the [clip] extra")
    from tiny_clip import make_aesthetic_head, make_open_clip
    from tiny_diffusers import build_tiny_lora, build_tiny_sd, perturbed_unet

    root = tmp_path_factory.mktemp("weights")
    sd = build_tiny_sd(root / "sd15")
    config, clip = make_open_clip(root / "clip")
    return {"sd": sd, "clip_config": config, "clip": clip,
            "head": make_aesthetic_head(root / "sac+logos+ava1-l14-linearMSE.pth", in_dim=16),
            "ck500": perturbed_unet(sd, root / "ft" / "checkpoint-500", seed=500),
            "ck1000": perturbed_unet(sd, root / "ft" / "checkpoint-1000", seed=1000),
            "lora": build_tiny_lora(sd, root / "watercolor")}


def tiny_clip(weights: dict[str, Path], *judges: str) -> dict[str, str]:
    """The tiny CLIP backbone for each judge named (clip, aesthetic)."""
    from tiny_clip import TINY_ARCH

    out = {}
    for judge in judges:
        out.update({f"judge.{judge}.arch": TINY_ARCH,
                    f"judge.{judge}.model_config": str(weights["clip_config"]),
                    f"judge.{judge}.pretrained": str(weights["clip"])})
    return out


@pytest.fixture(scope="module")
def fal(tmp_path_factory) -> Iterator[dict]:
    """The environment that points fal-client at a fake queue server taking the README's
    placeholder key (from the block's own `export` line)."""
    pytest.importorskip("fal_client", reason="needs the [fal] extra")
    from autojudge.testing.fake_fal import FakeFal

    name, key = shlex.split(FAL["key"], comments=True)[1].split("=", 1)
    with FakeFal(tmp_path_factory.mktemp("fal_tls"), expected_key=key,
                 service_s=0.01) as server:
        yield {name: key, "FAL_QUEUE_RUN_HOST": server.host, "FAL_RUN_HOST": server.host,
               "SSL_CERT_FILE": str(server.cert_path), "server": server}


@pytest.fixture(scope="module")
def vlm_url() -> Iterator[str]:
    pytest.importorskip("openai", reason="needs the [vlm] extra")
    from vlm_server import ScriptedVLM

    with ScriptedVLM() as server:
        yield server.base_url


def fal_env(fal: dict) -> dict[str, str]:
    return {k: v for k, v in fal.items() if k != "server"}


# ------------------------------------------------------------------ the lists


@pytest.mark.parametrize("heading,nth", list(SECTIONS))
def test_the_lists_are_the_readme_blocks(heading: str, nth: int) -> None:
    assert readme_block(heading, nth) == list(SECTIONS[heading, nth].values())


# ------------------------------------------------------------------ sections


def images_ok(run_dir: Path) -> dict[str, int]:
    """Model -> images made without a failure."""
    rows = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    out: dict[str, int] = {}
    for row in rows:
        out[row["model"]] = out.get(row["model"], 0) + (row["status"] == "ok")
    return out


def image_hashes(run_dir: Path) -> dict[str, frozenset[str]]:
    """Model -> the content hashes of its images."""
    out: dict[str, set[str]] = {}
    for line in (run_dir / "generations.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.setdefault(row["model"], set()).add(row["image_sha256"])
    return {model: frozenset(hashes) for model, hashes in out.items()}


def test_hosted_fal_models(tmp_path: Path, store: Path, weights, fal) -> None:
    run_dir = experiment(FAL["fal"], tmp_path, store, overrides=tiny_clip(weights, "clip"),
                         env=fal_env(fal))
    assert images_ok(run_dir) == {"flux_schnell": 2, "fast_sdxl": 2, "sd35_medium": 2}
    assert {"ocr", "clip"} <= board_judges(run_dir)
    assert fal["server"].seen_auth == {f"Key {fal['FAL_KEY']}"}  # the exported key, as written


def test_local_diffusers_pipelines(tmp_path: Path, store: Path, weights, fal) -> None:
    sd, local = str(weights["sd"]), diffusers_local(["sd15"])
    hub = experiment(DIFFUSERS["hub"], tmp_path, store, overrides={
        "model.sdxl_turbo.model": sd, **diffusers_local(["sdxl_turbo"]),
        **tiny_clip(weights, "clip")})
    assert images_ok(hub) == {"sdxl_turbo": 2, "blank": 2}
    folder = experiment(DIFFUSERS["folder"], tmp_path, store, {"/models/my-sd15": sd}, local)
    assert images_ok(folder) == {"sd15": 2, "blank": 2}
    checkpoints = experiment(DIFFUSERS["checkpoints"], tmp_path, store, {
        "/models/sd15": sd, "/runs/ft/checkpoint-500": str(weights["ck500"]),
        "/runs/ft/checkpoint-1000": str(weights["ck1000"])},
        {"model.sd15.model": sd, **local, **diffusers_local(["ck500", "ck1000"], new=True)})
    assert images_ok(checkpoints) == {"sd15": 2, "ck500": 2, "ck1000": 2}
    assert len(set(image_hashes(checkpoints).values())) == 3  # each checkpoint draws its own
    lora = experiment(DIFFUSERS["lora"], tmp_path, store,
                      {"/loras/watercolor": str(weights["lora"])},
                      {"model.sd15.model": sd, **local})
    assert images_ok(lora) == {"sd15": 2, "blank": 2}
    assert image_hashes(lora)["sd15"] != image_hashes(folder)["sd15"]  # the adapter applied
    editing = experiment(DIFFUSERS["editing"], tmp_path, store, overrides={
        "model.sd15.model": sd, **local, **tiny_clip(weights, "clip")}, env=fal_env(fal))
    assert images_ok(editing) == {"sd15": 2, "fast_sdxl": 2}
    assert {"preservation", "clip"} <= board_judges(editing)


def test_judges_with_local_weights_and_fake_endpoints(tmp_path: Path, store: Path, weights,
                                                      vlm_url: str) -> None:
    from autojudge.judges.aesthetic import file_sha256

    weight_paths = {"/models/open_clip_vit_b32.bin": str(weights["clip"]),
                    "/models/sac+logos+ava1-l14-linearMSE.pth": str(weights["head"])}
    scored = experiment(JUDGES["clip"], tmp_path, store, weight_paths, {
        **tiny_clip(weights, "clip", "aesthetic"),
        "judge.aesthetic.sha256": file_sha256(weights["head"])})
    assert {"clip", "aesthetic", "ocr"} <= board_judges(scored)
    openai = experiment(JUDGES["openai"], tmp_path, store,
                        overrides={"judge.vlm.base_url": vlm_url})
    server = experiment(JUDGES["server"], tmp_path, store, {"http://localhost:8000/v1": vlm_url})
    for run_dir in (openai, server):
        assert "vlm" in board_judges(run_dir)
        assert {b["judge"] for b in winners(run_dir)} == {"vlm"}


def test_judge_vlm_transformers_backend(tmp_path: Path, store: Path) -> None:
    pytest.importorskip("transformers", reason="needs the [vlm-local] extra")
    from tiny_vlm import make_tiny_vlm

    model = make_tiny_vlm(tmp_path / "tiny_vlm")
    run_dir = experiment(JUDGES["local"], tmp_path, store,
                         {"/models/Qwen2-VL-2B-Instruct": str(model)})
    assert "vlm" in board_judges(run_dir)


def test_validate_ocr(tmp_path: Path, store: Path) -> None:
    proc = run_line(VALIDATE["validate"], tmp_path, store, overrides={"--n": "4"})
    assert re.search(r"^ocr\s+text\s+4\s", proc.stdout, re.M), proc.stdout


def test_rate_any_battle_log(work: Path, store: Path) -> None:
    proc = run_line(RATE["rate"], work, store)
    assert all(model in proc.stdout for model in ("typeset", "blank", "noise")), proc.stdout
    document = json.loads(run_line(RATE["json"], work, store).stdout)
    assert {row["model"] for row in document["models"]} == {"typeset", "blank", "noise"}


RELEASE_MODELS = "model=[] '+model.sdxl-v1={kind: blank}' '+model.sdxl-v2={kind: typeset}'"


@pytest.fixture(scope="module")
def release(work: Path, store: Path) -> Path:
    """runs/release: the in-run gate command (it exits 0 only when the gate passes)."""
    run_dir = experiment(GATES["in_run"], work, store, {"model=[...]": RELEASE_MODELS},
                         {"suite.limit": "10", "hydra.run.dir": "runs/release",
                          "ratings.control": "[contrast]"})
    assert run_dir == work / "runs" / "release"
    return run_dir


def test_release_gate_inside_a_run_then_on_its_folder(work: Path, store: Path,
                                                      release: Path) -> None:
    document = json.loads((release / "leaderboard.json").read_text())
    assert {m["model"] for m in document["models"]} == {"sdxl-v1", "sdxl-v2"}
    proc = run_line(GATES["gate"], work, store)
    assert "gate: PASS" in proc.stdout, proc.stdout
    # blank never beats typeset at OCR: the controlled fit is unbounded, so no verdict
    args, _ = command(GATES["control"], None, None)
    proc = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AUTOJUDGE_STORE": str(store)})
    assert proc.returncode == 1 and "contrast held fixed" in proc.stdout, proc.stdout


def test_adaptive_battles_and_human_votes(work: Path, store: Path, vlm_url: str) -> None:
    adaptive = experiment(GATES["adaptive"], work, store,
                          overrides={"judge.vlm.base_url": vlm_url}, env=FAKE_OPENAI_KEY)
    assert "vlm" in board_judges(adaptive)
    human = experiment(GATES["human"], work, store)
    assert "human" in board_judges(human)


def test_report_rebuild(work: Path, store: Path) -> None:
    page = work / STARTER / "report.html"
    page.unlink()
    run_line(REPORT["rebuild"], work, store, {"runs/2026-01-01_starter": STARTER})
    assert page.is_file() and any((work / STARTER / "plots").glob("*.png"))
    page.unlink()
    run_line(REPORT["options"], work, store, {"runs/x": STARTER})
    assert page.is_file()


@pytest.fixture(scope="module")
def sweep_dir(work: Path, store: Path) -> Path:
    """The multirun's sweep folder (runs/<time>_starter_sweep)."""
    before = set((work / "runs").glob("*_starter_sweep"))
    run(argv(SWEEPS["multirun"], overrides=FAST), work, store)
    made = set((work / "runs").glob("*_starter_sweep")) - before
    assert len(made) == 1, made
    return made.pop()


def test_sweeps(tmp_path: Path, store: Path, weights, sweep_dir: Path) -> None:
    variants = experiment(SWEEPS["variants"], tmp_path, store,
                          overrides={"model.sd15.model": str(weights["sd"]),
                                     **diffusers_local(["sd15"])})
    made = images_ok(variants)
    assert len(made) == 4 and made.pop("blank") == 2 and set(made.values()) == {2}
    run_line(SWEEPS["compare"], tmp_path, store, {"runs/<time>_starter_sweep": str(sweep_dir)})
    assert (sweep_dir / "compare" / "leaderboard.json").is_file()
    assert importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper")  # the install line
    optuna = tmp_path / "optuna"
    optuna.mkdir()
    run(argv(SWEEPS["optuna"], overrides={**FAST, "hydra.sweeper.n_trials": "2"}), optuna,
        store)
    assert len(list(optuna.glob("runs/*_sweep/optimization_results.yaml"))) == 1


def serve(line: str, cwd: Path, store: Path, paths: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start an arena line on a free port; (process, http://127.0.0.1:PORT)."""
    args, _ = command(line, paths)
    if "--port" in args:
        args[args.index("--port") + 1] = "0"
    else:
        args += ["--port", "0"]
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "AUTOJUDGE_STORE": str(store)})
    for out in proc.stdout:  # the arena prints its address once it listens
        if found := re.match(r"arena: http://\S+:(\d+)/", out):
            return proc, f"http://127.0.0.1:{found.group(1)}"
    proc.kill()
    raise AssertionError(f"{args} did not start: {proc.stderr.read()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.communicate(timeout=60)


def test_arena(work: Path, store: Path, release: Path, sweep_dir: Path) -> None:
    import httpx

    assert all(importlib.util.find_spec(m) for m in ("starlette", "uvicorn", "sse_starlette"))
    proc, url = serve(ARENA["serve"], work, store, {})
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for choice in ("left", "right", "tie"):
                pair = client.get("/api/pair").json()
                vote = client.post("/api/vote", json={"token": pair["token"], "choice": choice})
                assert vote.status_code == 200, vote.text
    finally:
        stop(proc)
    proc, url = serve(ARENA["sweep"], work, store, {"runs/my_sweep": str(sweep_dir)})
    try:
        assert httpx.get(f"{url}/api/info", timeout=30).status_code == 200
    finally:
        stop(proc)
    proc, url = serve(ARENA["kwise"], work, store, {})
    try:  # the starter run has 3 models: groups of 3, one vote by order
        with httpx.Client(base_url=url, timeout=30) as client:
            group = client.get("/api/group").json()
            slots = [image["slot"] for image in group["images"]]
            vote = client.post("/api/vote", json={"token": group["token"], "order": slots})
            assert vote.status_code == 200 and len(slots) == 3, vote.text
    finally:
        stop(proc)
    proc, url = serve(ARENA["public"], work, store, {"runs/a": STARTER, "runs/b": "runs/release"})
    try:
        assert httpx.get(f"{url}/api/leaderboard", timeout=30).status_code == 200
    finally:
        stop(proc)
    run_line(ARENA["export"], work, store)
    rows = [json.loads(line) for line in (work / "votes.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and sum("ranks" in row for row in rows) == 1  # 3 pairs, 1 ranking
    assert all(("model_a" in row) != ("ranks" in row) for row in rows)
    human = experiment(ARENA["human"], work, store)
    assert "human" in board_judges(human)
    assert "typeset" in run_line(ARENA["rate"], work, store).stdout


def test_ray_on_this_machine(tmp_path: Path, store: Path) -> None:
    pytest.importorskip("ray", reason="executor=ray needs the [ray] extra")
    run_dir = experiment(RAY["local"], tmp_path, store)
    document = json.loads((run_dir / "leaderboard.json").read_text())
    assert {"typeset", "blank", "noise"} == set(images_ok(run_dir))
    assert "ocr" in board_judges(run_dir) and document["run"]["n_battles"] > 0
