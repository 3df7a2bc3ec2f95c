"""`python -m autojudge.gate`: exit codes, one-line messages and gate.json for every outcome."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli

from autojudge.battles.log import write_battle_log
from autojudge.cli import gate as gate_cli
from autojudge.ratings.simulate import simulate_battles

NAMES = ("base", "cand", "opp1", "opp2")


def make_run(path: Path, cand: float, n_prompts: int = 200, judges=("ocr",),
             tags_every: int = 2, seed: int = 0) -> Path:
    rows = []
    for k, judge in enumerate(judges):
        sim = simulate_battles([1000.0, cand, 1100.0, 900.0], n_prompts, prompt_sd=80.0,
                               tie_rate=0.1, seed=seed + k, names=NAMES)
        names = np.array(NAMES, dtype=object)
        for a, b, w, p in zip(names[sim.ia], names[sim.ib], sim.winners(), sim.prompt):
            rows.append({"model_a": a, "model_b": b, "winner": w, "judge": judge,
                         "prompt_id": f"p{p}", "seed": 0,
                         "tags": ["text"] if p % tags_every == 0 else ["photo"]})
    path.mkdir(parents=True, exist_ok=True)
    write_battle_log(rows, path / "battles.jsonl")
    (path / "leaderboard.json").write_text(json.dumps({"schema": 1, "run": {
        "name": "sim", "models": list(NAMES), "judges": list(judges)}}))
    return path


def gate_main(capsys, *args: str) -> tuple[int, str, str]:
    code = gate_cli.main(["--bootstrap", "300", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_pass_writes_gate_json(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "run", 1000.0)
    code, out, err = gate_main(capsys, str(run), "--baseline", "base", "--candidate", "cand",
                               "--margin", "80")
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("gate: PASS")
    doc = json.loads((run / "gate.json").read_text())
    assert doc["decision"] == "pass" and doc["exit_code"] == 0
    assert doc["inputs"]["baseline"] == "base" and doc["inputs"]["confidence"] == 0.95
    assert doc["inputs"]["correction"] == "holm" and doc["inputs"]["margin"] == 80.0
    assert doc["inputs"]["run"]["name"] == "sim"
    check = doc["checks"][0]
    assert check["judge"] == "ocr" and check["tag"] is None and check["outcome"] == "pass"
    for key in ("diff", "ci_low", "ci_high", "p_worse", "n_prompts", "n_head_to_head",
                "p_regression", "p_regression_adjusted", "p_pass", "method", "paths"):
        assert key in check
    # PASS is what the CI shows: its lower bound lies above -margin
    assert check["ci_low"] > -80.0 and "lower bound lies above -80" in check["reason"]


def test_regression_exits_1_per_judge_and_tag(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "run", 850.0, judges=("ocr", "vlm"))
    code, out, _ = gate_main(capsys, str(run), "--baseline", "base", "--candidate", "cand",
                             "--tag", "text", "--margin", "20")
    assert code == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("gate: REGRESSION") and "cand is worse than base" in last
    doc = json.loads((run / "gate.json").read_text())
    assert [(c["judge"], c["tag"]) for c in doc["checks"]] == [
        ("ocr", None), ("ocr", "text"), ("vlm", None), ("vlm", "text")]
    assert all(c["outcome"] == "regression" and c["ci_high"] < -20 for c in doc["checks"])
    assert doc["inputs"]["margin"] == 20.0 and doc["inputs"]["tags"] == ["text"]


def test_margin_tolerates_a_small_regression(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "run", 960.0, n_prompts=400)
    code, out, _ = gate_main(capsys, str(run), "--baseline", "base", "--candidate", "cand")
    assert code == 1
    code, out, _ = gate_main(capsys, str(run), "--baseline", "base", "--candidate", "cand",
                             "--margin", "150")
    assert code == 0, out


def test_inconclusive_is_said_plainly_and_exit_1_unless_allowed(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "run", 1000.0, n_prompts=6)
    code, out, _ = gate_main(capsys, str(run), "--baseline", "base", "--candidate", "cand")
    assert code == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("gate: INCONCLUSIVE") and "6 shared prompts, 10 needed" in last
    assert "--allow-inconclusive" in last
    code, out, _ = gate_main(capsys, str(run), "--baseline", "base", "--candidate", "cand",
                             "--allow-inconclusive")
    assert code == 0 and "accepted" in out
    assert json.loads((run / "gate.json").read_text())["decision"] == "inconclusive"
    # equal models, margin 0: the CI straddles 0, so neither claim is shown
    wide = make_run(tmp_path / "wide", 1000.0, n_prompts=40)
    code, out, _ = gate_main(capsys, str(wide), "--baseline", "base", "--candidate", "cand",
                             "--margin", "0")
    assert code == 1 and "neither shown worse nor shown not worse" in out, out
    assert "shared prompts would likely decide it" in out
    check = json.loads((wide / "gate.json").read_text())["checks"][0]
    assert check["ci_low"] < 0 < check["ci_high"] and check["outcome"] == "inconclusive"
    assert check["prompts_to_decide"] > 40


@pytest.mark.parametrize("args, needle", [
    (["--baseline", "nope", "--candidate", "cand"], "unknown baseline model 'nope'"),
    (["--baseline", "base", "--candidate", "zz"], "unknown candidate model 'zz'"),
    (["--baseline", "base", "--candidate", "cand", "--judge", "clip"], "unknown judge 'clip'"),
    (["--baseline", "base", "--candidate", "cand", "--tag", "x"], "unknown tag 'x'"),
    (["--baseline", "base", "--candidate", "base"], "same model"),
    (["--baseline", "base", "--candidate", "cand", "--confidence", "2"], "--confidence"),
    (["--baseline", "base", "--candidate", "cand", "--bootstrap", "1"], ">= 200 rounds"),
])
def test_bad_usage_exits_2_with_one_line(tmp_path, capsys, args, needle) -> None:
    run = make_run(tmp_path / "run", 1000.0, n_prompts=12)
    code, out, err = gate_main(capsys, str(run), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def test_missing_run_dir_and_run_without_battles(tmp_path) -> None:
    proc = run_cli(["autojudge.gate", str(tmp_path / "nope"), "--baseline", "a",
                    "--candidate", "b"])
    assert proc.returncode == 2
    assert_one_line_error(proc, "not found")
    (tmp_path / "empty").mkdir()
    proc = run_cli(["autojudge.gate", str(tmp_path / "empty"), "--baseline", "a",
                    "--candidate", "b"])
    assert proc.returncode == 2
    assert_one_line_error(proc, "has no battles")
    proc = run_cli(["autojudge.gate", str(tmp_path / "empty")])
    assert proc.returncode == 2 and "--baseline" in proc.stderr


def test_cli_subprocess_regression_exit_code(tmp_path) -> None:
    run = make_run(tmp_path / "run", 850.0)
    proc = run_cli(["autojudge.gate", str(run), "--baseline", "base", "--candidate", "cand",
                    "--bootstrap", "200"])
    assert proc.returncode == 1, proc.stderr
    assert "gate: REGRESSION" in proc.stdout and (run / "gate.json").is_file()
