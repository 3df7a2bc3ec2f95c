"""A run killed at any point (SIGKILL) and started again ends with the same tables as an
uninterrupted run; two runs at once against one store don't corrupt it."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, rows_in

pytestmark = pytest.mark.slow  # whole-pipeline runs killed and resumed

ARGS = ["suite.tags=[text_rendering]", "suite.limit=8", "ratings.bootstrap_rounds=100",
        "logger=none", "progress=false"]


def start(store: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autojudge", f"store.root={store}", f"hydra.run.dir={run_dir}",
         *ARGS], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def comparable(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """Battle rows without timestamps (they record when work happened) and the boards."""
    battles = [json.loads(line) for line in (run_dir / "battles.jsonl").read_text().splitlines()]
    for row in battles:
        row.pop("tstamp")
    boards = json.loads((run_dir / "leaderboard.json").read_text())["boards"]
    return battles, boards


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    proc = start(root / "store", root / "run")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return root / "run"


@pytest.mark.parametrize("table,threshold", [("generations", 1), ("scores", 3)],
                         ids=["killed-while-generating", "killed-while-judging"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, reference, table, threshold) -> None:
    store = tmp_path / "store"
    proc = start(store, tmp_path / "run")
    deadline = time.time() + 300
    while rows_in(store, table) < threshold and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert killed, "the run finished before it could be killed"
    assert not (tmp_path / "run" / "leaderboard.json").exists()
    done_before = rows_in(store, "generations") + rows_in(store, "scores")
    resumed = start(store, tmp_path / "run")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert comparable(tmp_path / "run") == comparable(reference)
    assert rows_in(store, "generations") == 24 and rows_in(store, "scores") == 24
    cache = json.loads((tmp_path / "run" / "leaderboard.json").read_text())["run"]["cache"]
    reused = cache["generation"]["cached"] + cache["judges"]["ocr"]["cached"]
    assert reused == done_before, "completed work was redone or lost"


def test_two_runs_at_once_share_a_store(tmp_path, reference) -> None:
    store = tmp_path / "store"
    procs = [start(store, tmp_path / f"run{i}") for i in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert comparable(tmp_path / "run1") == comparable(reference)
    assert comparable(tmp_path / "run2") == comparable(reference)
    with sqlite3.connect(store / "index.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows_in(store, "generations") == 24 and rows_in(store, "scores") == 24
