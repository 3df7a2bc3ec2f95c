"""The arena on a real run: votes exported by the arena are read back by the pipeline
(`human_votes.path=`) as imgsys exports are, join the run's battles by prompt_id and seed,
and give the same judge-vs-human agreement the arena showed live."""
from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from arena_helpers import arena_config
from autojudge.arena.app import create_app
from helpers import run_cli

pytestmark = pytest.mark.slow

COMMON = ["model=[typeset,blank]", "suite.tags=[text_rendering]", "suite.limit=3",
          "logger=none", "progress=false", "ratings.bootstrap_rounds=20"]


def test_arena_votes_feed_the_pipeline(tmp_path) -> None:
    store = tmp_path / "store"
    run = tmp_path / "run"
    made = run_cli(["autojudge", *COMMON, f"store.root={store}", f"hydra.run.dir={run}"])
    assert made.returncode == 0, made.stderr
    app = create_app(arena_config(run, bootstrap_rounds=20))
    with TestClient(app) as client:
        for choice in ("left", "right", "tie", "left", "bothbad", "right"):
            pair = client.get("/api/pair").json()
            assert client.post("/api/vote", json={"token": pair["token"],
                                                  "choice": choice}).status_code == 200
        arena = app.state.arena
        deadline = time.monotonic() + 30
        while arena.live.refit_n_votes < 6:
            assert time.monotonic() < deadline, "no refit with the votes"
            time.sleep(0.05)
        live = client.get("/api/leaderboard").json()
    votes = tmp_path / "votes.jsonl"
    exported = run_cli(["autojudge.arena", str(run), "--export", str(votes)])
    assert exported.returncode == 0 and "wrote 6 votes" in exported.stdout, exported.stderr
    first = json.loads(votes.read_text().splitlines()[0])  # style features of both images
    assert {"contrast", "colourfulness", "text_area"} <= set(first["features_a"])
    assert set(first["features_b"]) == set(first["features_a"])
    controlled = run_cli(["autojudge.rate", str(votes), "--control", "contrast,text_area",
                          "--bootstrap", "20"])
    assert controlled.returncode == 0, controlled.stderr

    again = tmp_path / "with_votes"
    proc = run_cli(["autojudge", *COMMON, f"store.root={store}", f"hydra.run.dir={again}",
                    f"human_votes.path={votes}"])
    assert proc.returncode == 0, proc.stderr
    document = json.loads((again / "leaderboard.json").read_text())
    summary = document["run"]["human_votes"]
    assert summary["n_used"] == 6 and summary["n_unmatched_prompt"] == 0
    human = next(b for b in document["boards"] if b["judge"] == "human" and b["tag"] is None)
    assert human["n_battles"] == 6
    row = next(a for a in document["agreement"] if {a["judge_a"], a["judge_b"]} == {"ocr", "human"})
    shown = next(a for a in live["agreement"] if a["judge_a"] == "ocr")
    # 2 models x 3 prompts: 3 keys, each voted twice (under-voted first), all judged by OCR
    assert row["n_shared"] == shown["n_shared"] == 3
    for key in ("agreement", "decisive_agreement", "kappa", "ci_low", "ci_high"):
        assert row[key] == shown[key], key
    live_human = {r["model"]: r for r in live["boards"][0]["models"]}
    for r in human["models"]:
        assert (r["wins"], r["losses"], r["ties"]) == (live_human[r["model"]]["wins"],
                                                       live_human[r["model"]]["losses"],
                                                       live_human[r["model"]]["ties"])
