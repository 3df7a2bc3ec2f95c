"""`python -m autojudge` as a user types it: bad input is one clear line, never a traceback,
and a failed run leaves nothing a later run would trust."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli

GOOD_ENTRY = {"id": "p1", "text": "a sign that reads \"OPEN\"", "category": "text_rendering",
              "expected_text": "OPEN"}


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, store: Path, *overrides: str):
    return run_cli(["autojudge", f"store.root={store}", f"hydra.run.dir={tmp_path / 'run'}",
                    "logger=none", "progress=false", "ratings.bootstrap_rounds=50", *overrides])


def _entries(*entries: dict) -> str:
    return json.dumps({"name": "t", "prompts": list(entries)})


@pytest.mark.parametrize("text,needles", [
    (_entries({"id": "p1", "category": "x"}), ["suite.yaml", "text"]),
    (_entries(GOOD_ENTRY, dict(GOOD_ENTRY)), ["suite.yaml", "p1"]),
    ("name: t\nprompts:\n  - id: p1\n    text: [unclosed\n", ["suite.yaml", "line"]),
], ids=["missing-field", "duplicate-id", "malformed-yaml"])
def test_bad_suite_is_one_line(tmp_path, store_root, text, needles) -> None:
    proc = _run(tmp_path, store_root, f"suite.path={_suite(tmp_path, text)}", "suite.name=t")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run" / "leaderboard.json").exists()


def test_unknown_tag_filter(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "suite.tags=[no_such_tag]")
    assert_one_line_error(proc, "no_such_tag")


def test_unknown_model_name_lists_what_exists(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "model=[typeset,blnk]")
    assert_one_line_error(proc, "blnk", "blank", "typeset")


def test_misspelled_key_names_the_right_one(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "ratings.bootstrp=10")
    assert_one_line_error(proc, "bootstrp", "bootstrap_rounds")


def test_empty_folder_for_folder_generator(tmp_path, store_root) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run(tmp_path, store_root, "model=[folder,blank]", f"model.folder.path={empty}")
    assert_one_line_error(proc, "folder", str(empty))
    assert not (tmp_path / "run" / "leaderboard.json").exists()
    assert not list(store_root.rglob("*.png")), "work started before the config was checked"


def test_folder_without_path(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "model=[folder,blank]")
    assert_one_line_error(proc, "model.folder.path")


def test_help_answers_without_heavy_imports() -> None:
    proc = run_cli(["autojudge", "--help"])
    assert proc.returncode == 0 and "model:" in proc.stdout
    assert "powered by Hydra" not in proc.stdout  # autojudge's page, not Hydra's generic one
    for needle in ("typeset", "judge:", "ocr", "suite:", "partiprompts", "autojudge.rate",
                   "autojudge.gate", "autojudge.validate", "autojudge.store", "--cfg job"):
        assert needle in proc.stdout, needle
    code = ("import sys, autojudge.__main__, autojudge.pipeline, autojudge.app, "
            "autojudge.judges.ocr, autojudge.generators.baselines; "
            "heavy = {'torch', 'wandb', 'onnxruntime', 'rapidocr'} & set(sys.modules); "
            "assert not heavy, heavy")
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_multirun_sweep_writes_one_run_per_point(tmp_path, store_root) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli(["autojudge", "-m", "model.typeset.max_font_size=24,72",
                    "suite.tags=[text_rendering]", "suite.limit=3", f"store.root={store_root}",
                    f"hydra.sweep.dir={sweep}", "progress=false", "ratings.bootstrap_rounds=50",
                    "logger=wandb"])
    assert proc.returncode == 0, proc.stderr
    for job in ("0", "1"):
        document = json.loads((sweep / job / "leaderboard.json").read_text())
        assert document["run"]["models"] == ["typeset", "blank", "noise"]
        assert list((sweep / job / "wandb").rglob("*.wandb")), "each sweep point logs its own W&B run"
    first = json.loads((sweep / "0" / "leaderboard.json").read_text())["run"]["cache"]
    second = json.loads((sweep / "1" / "leaderboard.json").read_text())["run"]["cache"]
    assert first["generation"]["computed"] == 9  # 3 prompts x 3 models, fresh store
    assert second["generation"]["computed"] == 3  # only typeset changed between points
