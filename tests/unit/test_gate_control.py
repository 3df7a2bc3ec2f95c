"""`gate --control`: the release gate on style-controlled ratings, so a release is not
blocked (or passed) by a style change the judge merely likes."""
from __future__ import annotations

import json

from test_style_control import simulate

from autojudge.cli.gate import main


def _run_dir(tmp_path, bias: float, prompts: int = 400, features: bool = True):
    """A finished run's folder holding a judge's battle log: the candidate "b" is truly
    40 Elo better than the baseline "a" but less saturated, and the judge adds `bias` Elo
    per unit of saturation."""
    data = simulate(seed=7, bias=bias, prompts=prompts)
    run = tmp_path / f"run_{bias:g}_{features}"
    run.mkdir()
    with open(run / "battles.jsonl", "w") as f:
        for k in range(len(data["ia"])):
            row = {"model_a": "abcd"[data["ia"][k]], "model_b": "abcd"[data["ib"][k]],
                   "winner": "model_a" if data["score"][k] == 1.0 else "model_b",
                   "judge": "vlm", "prompt_id": f"p{data['prompt'][k]}", "seed": 0}
            if features:
                row["features_a"] = {"colourfulness": float(data["xa"][k, 0])}
                row["features_b"] = {"colourfulness": float(data["xb"][k, 0])}
            f.write(json.dumps(row) + "\n")
    return run


ARGS = ["--baseline", "a", "--candidate", "b", "--margin", "10", "--bootstrap", "300"]


def test_a_style_bias_blocks_the_plain_gate_and_not_the_controlled_one(tmp_path,
                                                                       capsys) -> None:
    run = _run_dir(tmp_path, bias=90.0)
    assert main([str(run), *ARGS]) == 1
    plain = capsys.readouterr().out
    assert "REGRESSION" in plain and "on plain ratings" in plain
    assert main([str(run), *ARGS, "--control", "colourfulness"]) == 0
    controlled = capsys.readouterr().out
    assert "PASS" in controlled and "colourfulness held fixed" in controlled
    gate = json.loads((run / "gate.json").read_text())
    assert gate["decision"] == "pass" and gate["inputs"]["control"] == ["colourfulness"]
    assert "style-controlled" in gate["inputs"]["estimator"]
    (check,) = gate["checks"]
    assert check["method"] == "controlled" and check["ci_low"] > -10


def test_gate_control_on_a_log_without_features_is_one_line(tmp_path, capsys) -> None:
    run = _run_dir(tmp_path, bias=0.0, prompts=30, features=False)
    assert main([str(run), *ARGS, "--control", "contrast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "features_a.contrast" in err
    assert "ratings.control" in err and not (run / "gate.json").exists()


def test_a_separated_controlled_check_is_inconclusive_not_a_verdict(tmp_path,
                                                                    capsys) -> None:
    run = tmp_path / "sep"
    run.mkdir()
    rows = [{"model_a": "b", "model_b": "a", "winner": "model_a", "judge": "j",
             "prompt_id": f"p{k}", "features_a": {"contrast": 0.1 * (k % 5)},
             "features_b": {"contrast": 0.1 * ((k + 2) % 5)}} for k in range(40)]
    (run / "battles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(run), *ARGS, "--control", "contrast"]) == 1
    out = capsys.readouterr().out
    assert "INCONCLUSIVE" in out and "never lost" in out
