"""Every command of README's "Running experiments" block runs as written.

The commands are listed here verbatim, and `test_the_list_is_the_readme_block` fails when
the block and the list differ, so an example cannot change (or be added) untested. Each
runs as `python -m ...` in a fresh working folder, against a store of this module's own
(AUTOJUDGE_STORE), with only these changes, named per example below:

- placeholder paths: `/data/PartiPrompts.tsv` and `/data/evaluation_metadata.jsonl` are
  the shared copies in ../shared/data (tests skip when absent); `/data/my_model_outputs`
  is a folder of images written here; `runs/<time>_starter_sweep` is the sweep folder the
  previous example made;
- speed (`FAST`): OCR reads about one image a second on two busy cores, so each run keeps
  2 prompts (`suite.limit=2`, replacing the README's own limit where it has one), 20
  bootstrap rounds and `logger=none`; everything else is the README's;
- weights: the GenEval example's CLIP judge loads the tiny random CLIP of
  tests/tiny_clip.py from local files (the README's command would download ViT-B/32).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import GENEVAL, PARTI, REPO, needs_shared_data

README = REPO / "README.md"

EXAMPLES = {
    "choose": "python -m autojudge model=[typeset,blank] judge=[ocr] suite=starter",
    "filter": "python -m autojudge suite.tags=[text_rendering] suite.limit=10 "
              "suite.seeds=[0,1,2] ratings.bootstrap_rounds=200",
    "folder": "python -m autojudge model=[folder,blank] model.folder.path=/data/my_model_outputs",
    "parti": "python -m autojudge suite=partiprompts suite.path=/data/PartiPrompts.tsv "
             "suite.limit=200",
    "geneval": "python -m autojudge suite=geneval suite.path=/data/evaluation_metadata.jsonl "
               "judge=[clip]",
    "sweep": "python -m autojudge -m model.typeset.max_font_size=24,48,96",
    "compare": "python -m autojudge.compare runs/<time>_starter_sweep",
    "run_dir": "python -m autojudge hydra.run.dir=runs/my_experiment logger=none",
    "rejudge": "python -m autojudge model=[folder,blank] "
               "model.folder.path=runs/my_experiment/images/typeset",
}
FAST = {"suite.limit": "2", "ratings.bootstrap_rounds": "20", "logger": "none"}

pytestmark = pytest.mark.slow


def readme_block(heading: str = "## Running experiments", nth: int = 0) -> list[str]:
    """The commands of the `nth` bash block under `heading` (0: the first), continuation
    lines joined."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    body = re.findall(r"```bash\n(.*?)```", section, re.S)[nth]
    joined = re.sub(r"\\\n\s*", "", body)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def argv(command: str, paths: dict[str, str] | None = None,
         overrides: dict[str, str] | None = None) -> list[str]:
    """The command as a process runs it: placeholders replaced, `overrides` replacing the
    command's own value of each key, or added after it."""
    for placeholder, real in (paths or {}).items():
        assert placeholder in command, (placeholder, command)
        command = command.replace(placeholder, real)
    args = shlex.split(command, comments=True)  # a trailing `# ...` is the README's note
    assert args[0] == "python"
    for key, value in (overrides or {}).items():
        mine = [i for i, a in enumerate(args) if a.split("=", 1)[0] == key]
        if mine:
            args[mine[0]] = f"{key}={value}"
        else:
            args.append(f"{key}={value}")
    return [sys.executable, *args[1:]]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme_store")


def run(args: list[str], cwd: Path, store: Path, timeout: float = 900,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `args` in `cwd` against `store`; `env` adds variables (e.g. a fake's address)."""
    env = {**os.environ, "AUTOJUDGE_STORE": str(store), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def only_run(cwd: Path) -> Path:
    runs = [p for p in (cwd / "runs").iterdir() if (p / "leaderboard.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def board_judges(run_dir: Path) -> set[str]:
    document = json.loads((run_dir / "leaderboard.json").read_text())
    return {b["judge"] for b in document["boards"]}


def test_the_list_is_the_readme_block() -> None:
    assert readme_block() == list(EXAMPLES.values())


@pytest.mark.parametrize("name", ["choose", "filter"])
def test_starter_examples(name: str, tmp_path: Path, store: Path) -> None:
    run(argv(EXAMPLES[name], overrides=FAST), tmp_path, store)
    assert "ocr" in board_judges(only_run(tmp_path))


def test_folder_example(tmp_path: Path, store: Path) -> None:
    from PIL import Image

    from autojudge.suites.load import load_suite

    folder = tmp_path / "my_model_outputs"
    folder.mkdir()
    for prompt in load_suite(REPO / "prompt_suites" / "starter.yaml", limit=2).prompts:
        Image.new("RGB", (64, 64), "white").save(folder / f"{prompt.id}.png")
    run(argv(EXAMPLES["folder"], {"/data/my_model_outputs": str(folder)}, FAST), tmp_path,
        store)
    rows = (only_run(tmp_path) / "generations.jsonl").read_text().splitlines()
    assert sum(json.loads(r)["model"] == "folder" and json.loads(r)["status"] == "ok"
               for r in rows) == 2


@needs_shared_data(PARTI.name)
def test_partiprompts_example(tmp_path: Path, store: Path) -> None:
    proc = run(argv(EXAMPLES["parti"], {"/data/PartiPrompts.tsv": str(PARTI)}, FAST),
               tmp_path, store)
    # the README's limit of 200 would keep all 43 prompts OCR reads, from rows 1541 on
    assert ("note: keeping 2 of 1632 prompts: judge ocr applies to 43 of them and "
            "suite.limit=2 keeps the first 2") in proc.stdout
    assert "ocr" in board_judges(only_run(tmp_path))


@needs_shared_data(GENEVAL.name)
def test_geneval_example_with_a_local_clip(tmp_path: Path, store: Path) -> None:
    pytest.importorskip("open_clip", reason="judge clip needs the [clip] extra")
    from tiny_clip import TINY_ARCH, make_open_clip

    config, weights = make_open_clip(tmp_path / "weights")
    local = {"judge.clip.arch": TINY_ARCH, "judge.clip.model_config": str(config),
             "judge.clip.pretrained": str(weights)}
    run(argv(EXAMPLES["geneval"], {"/data/evaluation_metadata.jsonl": str(GENEVAL)},
             {**FAST, **local}), tmp_path, store)
    assert "clip" in board_judges(only_run(tmp_path))


def test_sweep_then_compare_examples(tmp_path: Path, store: Path) -> None:
    run(argv(EXAMPLES["sweep"], overrides=FAST), tmp_path, store)
    sweeps = list((tmp_path / "runs").glob("*_starter_sweep"))
    assert len(sweeps) == 1
    run(argv(EXAMPLES["compare"], {"runs/<time>_starter_sweep": str(sweeps[0])}), tmp_path,
        store)
    assert (sweeps[0] / "compare" / "leaderboard.json").is_file()


def test_run_dir_then_rejudge_its_images(tmp_path: Path, store: Path) -> None:
    run(argv(EXAMPLES["run_dir"], overrides=FAST), tmp_path, store)
    first = tmp_path / "runs" / "my_experiment"
    assert (first / "leaderboard.json").is_file()
    proc = run(argv(EXAMPLES["rejudge"], overrides=FAST), tmp_path, store)
    # the run's own typeset images, found by the folder model and judged from the cache
    assert "ocr: 0 judged, 4 from cache" in proc.stdout, proc.stdout[-2000:]
