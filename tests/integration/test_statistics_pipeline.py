"""Issue 5 inside a run: agreement between judges (human votes included), provisional
flags, the adaptive schedule and the in-run gate, on the offline OCR pipeline."""
from __future__ import annotations

import csv
import json

import pytest
from helpers import run_cli

from autojudge.experiment import pipeline

pytestmark = pytest.mark.slow  # whole-pipeline runs with two judges, schedules and gates

SMALL = ["suite.tags=[text_rendering]", "suite.limit=8", "ratings.bootstrap_rounds=100",
         "logger=none", "progress=false"]
TWO_JUDGES = ["+judge.strict.kind=ocr", "+judge.strict.tie_margin=0.3"]


@pytest.fixture(scope="module")
def two_judge_run(tmp_path_factory):
    from autojudge.experiment.schema import compose

    root = tmp_path_factory.mktemp("stats")
    cfg = compose([f"store.root={root / 'store'}", *SMALL, *TWO_JUDGES])
    document = pipeline.run(cfg, root / "run1")
    return compose, root, document


def test_agreement_rows_for_two_judges(two_judge_run) -> None:
    _, root, document = two_judge_run
    on_disk = json.loads((root / "run1" / "leaderboard.json").read_text())
    rows = on_disk["agreement"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["judge_a"], row["judge_b"]) == ("ocr", "strict")
    assert row["n_shared"] == 8 * 3
    assert 0.0 <= row["ci_low"] <= row["agreement"] <= row["ci_high"] <= 1.0
    for key in ("decisive_agreement", "kappa", "kendall_tau", "spearman"):
        assert key in row
    # every model has 16 battles per judge < report.min_battles (20): provisional
    ocr = next(b for b in document["boards"] if b["judge"] == "ocr" and b["tag"] is None)
    assert all(r["provisional"] for r in ocr["models"])


def test_human_votes_become_a_judge_with_agreement(two_judge_run) -> None:
    compose, root, document = two_judge_run
    battles = [json.loads(x) for x in (root / "run1" / "battles.jsonl").read_text().splitlines()]
    from autojudge.experiment import build

    suite = build.load_suite_from_config(compose(SMALL).suite)
    text = {p.id: p.text for p in suite.prompts}
    flip = {"model_a": "model_b", "model_b": "model_a", "tie": "tie",
            "tie (bothbad)": "tie (bothbad)"}
    lines = [["model_a", "model_b", "preference", "prompt"]]
    disagree = 0
    for k, b in enumerate(r for r in battles if r["judge"] == "ocr"):
        vote = b["winner"] if k % 4 else flip[b["winner"]]  # humans disagree 1 in 4
        disagree += vote != b["winner"]
        pref = {"model_a": "0", "model_b": "1"}.get(vote, "2")  # imgsys: 0 = model_a won
        lines.append([b["model_a"], b["model_b"], pref, text[b["prompt_id"]]])
    lines.append(["someone", "else", "0", "a prompt nobody ran"])
    votes = root / "votes.csv"
    with open(votes, "w", newline="") as fh:
        csv.writer(fh).writerows(lines)
    doc = pipeline.run(compose([f"store.root={root / 'store'}", *SMALL, *TWO_JUDGES,
                                f"human_votes.path={votes}", "report.min_battles=0"]),
                       root / "run2")
    assert doc["run"]["human_votes"]["n_used"] == 24
    assert doc["run"]["human_votes"]["n_unknown_model"] == 1
    human = next(b for b in doc["boards"] if b["judge"] == "human" and b["tag"] is None)
    assert human["n_battles"] == 24 and not any(r["provisional"] for r in human["models"])
    pairs = {(r["judge_a"], r["judge_b"]): r for r in doc["agreement"]}
    assert set(pairs) == {("ocr", "strict"), ("ocr", "human"), ("strict", "human")}
    vs_human = pairs[("ocr", "human")]
    assert vs_human["n_shared"] == 24
    assert disagree > 0
    assert vs_human["agreement"] == pytest.approx(1 - disagree / 24, abs=0.001)
    assert vs_human["kendall_tau"] is not None
    rows = [json.loads(x) for x in (root / "run2" / "battles.jsonl").read_text().splitlines()]
    assert sum(r["judge"] == "human" for r in rows) == 24


def test_adaptive_schedule_records_why_it_stopped(two_judge_run) -> None:
    compose, root, _ = two_judge_run
    doc = pipeline.run(compose([f"store.root={root / 'store'}", *SMALL,
                                "battles.schedule=adaptive", "battles.batch=5",
                                "battles.max_battles=12", "battles.bootstrap_rounds=20"]),
                       root / "run3")
    info = doc["run"]["schedules"]["ocr"]
    assert doc["run"]["schedule"] == "adaptive"
    assert info["stop_reason"] == "max_battles" and info["n_scheduled"] == 12
    assert info["n_pool"] == 24 and info["fraction_of_all_pairs"] == 0.5
    rows = (root / "run3" / "battles.jsonl").read_text().splitlines()
    assert len(rows) == 12
    done = pipeline.run(compose([f"store.root={root / 'store'}", *SMALL,
                                 "battles.schedule=adaptive", "battles.target_ci_width=5",
                                 "battles.bootstrap_rounds=20"]), root / "run4")
    assert done["run"]["schedules"]["ocr"]["stop_reason"] == "exhausted"
    from autojudge.cli.checks import check_composition

    # an enum in the schema: refused at composition, before any work, naming the choices
    problem = check_composition(["battles.schedule=sometimes"])
    assert problem is not None and "expected one of [all_pairs, adaptive]" in problem


def test_in_run_gate_exits_1_after_writing_outputs(two_judge_run, tmp_path) -> None:
    _, root, _ = two_judge_run
    env = {"AUTOJUDGE_STORE": str(root / "store")}
    common = [*SMALL, f"hydra.run.dir={tmp_path / 'r1'}"]
    proc = run_cli(["autojudge", *common, "gate.baseline=typeset", "gate.candidate=blank",
                    "gate.min_prompts=5"], env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "gate: REGRESSION" in proc.stdout
    assert (tmp_path / "r1" / "leaderboard.json").is_file()
    assert json.loads((tmp_path / "r1" / "gate.json").read_text())["decision"] == "regression"
    common[-1] = f"hydra.run.dir={tmp_path / 'r2'}"
    proc = run_cli(["autojudge", *common, "gate.baseline=blank", "gate.candidate=typeset",
                    "gate.allow_inconclusive=true"], env=env, cwd=tmp_path)
    # 8 prompts < gate.min_prompts (10): inconclusive, accepted -> exit 0
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gate: INCONCLUSIVE" in proc.stdout and "accepted" in proc.stdout
