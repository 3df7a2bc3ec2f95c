"""A third-party judge that breaks its contract does not break the run: installed through
an entry point (as a pip-installed plugin is), it raises on some prompts, answers too few
on others and the wrong type on others. The run exits 0, those items are typed failures
in skipped.jsonl, a note counts them, and the judge's board is built from the rest."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PLUGIN = '''
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from autojudge.types import Score

MODES = ("ok", "raise", "short", "junk")


def mode_of(prompt_id: str) -> str:
    """What this judge does when a batch holds an image of `prompt_id`."""
    return MODES[hashlib.sha256(prompt_id.encode()).digest()[0] % len(MODES)]


class FlakyJudge:
    """Mean brightness, when it feels like answering."""

    kind = "flaky"
    version = 1
    score_range = (0.0, 1.0)

    @dataclass
    class Config:
        batch_size: int = 4

    def __init__(self, name: str = "flaky", config: "FlakyJudge.Config | None" = None):
        self.name = name
        self.config = config or FlakyJudge.Config()
        self.batch_size = self.config.batch_size

    def fingerprint(self):
        return {"kind": self.kind, "version": self.version, "params": {}}

    def check(self) -> None:
        pass

    def applies(self, prompt) -> bool:
        return True

    def score(self, items):
        modes = [mode_of(item.prompt.id) for item in items]
        if "raise" in modes:
            raise RuntimeError("flaky judge fell over")
        scores = [Score(sum(item.image.convert("L").getdata()) / 255.0
                        / (item.image.width * item.image.height)) for item in items]
        if "short" in modes:
            return scores[:-1]
        return [{"score": 0.5} if mode == "junk" else s for mode, s in zip(modes, scores)]
'''


def install(root: Path) -> tuple[Path, Path]:
    """The plugin package and its dist-info (the entry point) on a path; its config."""
    site = root / "site"
    (site / "flaky_judges").mkdir(parents=True)
    (site / "flaky_judges" / "__init__.py").write_text("")
    (site / "flaky_judges" / "flaky.py").write_text(PLUGIN)
    dist = site / "flaky_judges-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flaky-judges\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[autojudge.judges]\nflaky = flaky_judges.flaky:FlakyJudge\n")
    conf = root / "conf" / "judge"
    conf.mkdir(parents=True)
    # the plugin's own schema, registered from its entry point as a built-in's is
    (conf / "flaky.yaml").write_text("defaults:\n  - /schema/judge/flaky@flaky\n\n"
                                     "flaky:\n  kind: flaky\n  batch_size: 4\n")
    return site, root / "conf"


def load_plugin(site: Path):
    """The plugin's module, read here as the run read it (its `mode_of` is the oracle)."""
    name = "flaky_judges_under_test"
    spec = importlib.util.spec_from_file_location(name, site / "flaky_judges" / "flaky.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_misbehaving_entry_point_judge_fails_its_items_not_the_run(tmp_path: Path) -> None:
    site, conf = install(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), os.environ.get("PYTHONPATH", "")])}
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "autojudge", f"hydra.searchpath=[file://{conf}]",
         "judge=[ocr,flaky]", "model=[typeset,noise]", "suite.tags=[text_rendering]",
         "suite.limit=8", "ratings.bootstrap_rounds=50", "logger=none", "progress=false",
         f"store.root={tmp_path / 'store'}", f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr

    flaky = load_plugin(site)
    battles = [b for b in read_jsonl(run_dir / "battles.jsonl") if b["judge"] == "flaky"]
    skipped = [s for s in read_jsonl(run_dir / "skipped.jsonl") if s["judge"] == "flaky"]
    prompts = {b["prompt_id"] for b in battles} | {s["prompt_id"] for s in skipped}
    mode = {p: flaky.mode_of(p) for p in prompts}
    assert set(mode.values()) == set(flaky.MODES), mode  # every misbehaviour is exercised

    # the board is built from the prompts the judge answered, and only from them
    assert {b["prompt_id"] for b in battles} == {p for p, m in mode.items() if m == "ok"}
    kind = {"raise": "judge_error", "short": "judge_bad_output", "junk": "judge_bad_output"}
    assert sorted((s["prompt_id"], s["failure_kind"]) for s in skipped) == sorted(
        (p, kind[m]) for p, m in mode.items() if m != "ok")
    document = json.loads((run_dir / "leaderboard.json").read_text())
    board = next(b for b in document["boards"] if b["judge"] == "flaky" and b["tag"] is None)
    assert sum(m["battles"] for m in board["models"]) == 2 * len(battles)
    assert any(b["judge"] == "ocr" for b in document["boards"])  # the other judge is intact

    # one note counts the failed items (two models' images per failed prompt), by kind
    failed = 2 * sum(m != "ok" for m in mode.values())
    notes = [n for n in document["run"]["notes"] if n.startswith("judge flaky:")]
    assert len(notes) == 1 and notes[0].startswith(f"judge flaky: {failed} items failed (")
    assert "judge_error x" in notes[0] and "judge_bad_output x" in notes[0]
    assert notes[0] in proc.stdout + proc.stderr  # said on the console too


def test_an_entry_point_judges_params_are_typed_when_hydra_composes(tmp_path: Path) -> None:
    """A third-party plugin's schema is registered as a built-in's: a wrongly typed param
    is refused in one line before the run folder exists, and its defaults show in
    `--cfg job`."""
    site, conf = install(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), os.environ.get("PYTHONPATH", "")])}
    common = [sys.executable, "-m", "autojudge", f"hydra.searchpath=[file://{conf}]",
              "judge=[flaky]", "model=[typeset,noise]", "logger=none", "progress=false",
              f"store.root={tmp_path / 'store'}"]
    run_dir = tmp_path / "run"
    bad = subprocess.run([*common, "judge.flaky.batch_size=many", f"hydra.run.dir={run_dir}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stderr[-2000:]
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "batch_size" in lines[0]
    assert not run_dir.exists()
    shown = subprocess.run([*common, "--cfg", "job"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "call_timeout_s: null" in shown.stdout  # the schema's runner key, not in the YAML
