"""An optimising sweep names one "best" trial; when the data cannot tell several trials
apart, the sweep's end lists every one of them (their CIs reach the top trial's), beside
the sweeper's single pick. Each trial's objective carries a prompt-clustered CI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from autojudge.sweeps.variants import best_settings, best_settings_text, compute_objective
from autojudge.types import Battle

KEY = "model.typeset.max_font_size"


def job(sweep: Path, num: int, size: int, value, low=None, high=None) -> None:
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{KEY}={size}"]))
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"mode": "MULTIRUN", "job": {"num": num},
                   "sweeper": {"params": {KEY: "choice(2,4,6,8)"}}}}))
    (folder / "generations.jsonl").write_text("{}\n")
    objective = {"objective": "score", "value": value, "ci_low": low, "ci_high": high,
                 "confidence": 0.95, "reason": None if value is not None else "over budget"}
    (folder / "leaderboard.json").write_text(json.dumps({"run": {"objective": objective},
                                                         "boards": []}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    folder = tmp_path / "sweep"
    job(folder, 0, 2, 0.0, 0.0, 0.0)          # unreadable: clearly below
    job(folder, 1, 8, 1.0, 1.0, 1.0)          # reads exactly
    job(folder, 2, 6, 0.9, 0.7, 1.0)          # CI reaches 1.0: not separated from 8
    job(folder, 3, 12, 1.0, 1.0, 1.0)         # tied with 8
    job(folder, 4, 4, 0.5, 0.3, 0.69)         # below the top's lower bound
    job(folder, 5, 16, None)                  # measured nothing
    (folder / "optimization_results.yaml").write_text(yaml.safe_dump(
        {"name": "optuna", "best_params": {KEY: 8}, "best_value": 1.0}))
    return folder


def test_every_trial_the_data_cannot_separate_from_the_top_is_listed(sweep: Path) -> None:
    summary = best_settings(sweep)
    assert [t["params"][KEY] for t in summary["best"]] == [8, 12, 6]  # best first
    assert summary["n_trials"] == 5 and summary["n_without"] == 1
    assert summary["optuna"] == {KEY: 8}
    text = best_settings_text(summary)
    lines = text.splitlines()
    assert "3 of 5 trials" in lines[0] and "95% CI" in lines[0]
    assert "1 trials measured no objective" in lines[0]
    listed = [line for line in lines if line.startswith(f"  {KEY}=")]
    assert [line.split(":")[0].strip() for line in listed] == \
        [f"{KEY}=8", f"{KEY}=12", f"{KEY}=6"]
    assert listed[0].endswith("<- the sweeper's best_params")
    assert not any("best_params" in line for line in listed[1:])
    assert f"{KEY}=2" not in text and f"{KEY}=4:" not in text


def test_no_objective_means_no_listing(tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    (folder / "0").mkdir(parents=True)
    (folder / "0" / "leaderboard.json").write_text(json.dumps({"run": {}, "boards": []}))
    assert best_settings(folder) is None


def _document(ratings: dict) -> dict:
    rows = [{"model": m, "rating": r, "component": 0, "battles": 10} for m, r in ratings.items()]
    return {"run": {"models": list(ratings)}, "models": [],
            "boards": [{"judge": "ocr", "tag": None, "models": rows}]}


def _battles(n: int, target_wins: int) -> list[Battle]:
    return [Battle("t", "ref", "model_a" if i < target_wins else "model_b", "ocr", f"p{i}", 0,
                   (), 1.0 if i < target_wins else 0.0, 0.0 if i < target_wins else 1.0)
            for i in range(n)]


@pytest.mark.parametrize("kind", ["score", "win_rate", "rating"])
def test_each_objective_carries_a_ci_around_its_value(kind: str) -> None:
    config = {"sweep": {"reference": "ref", "target": "t", "judge": "ocr", "objective": kind},
              "ratings": {"bootstrap_rounds": 300, "seed": 0, "confidence": 0.9}}
    few = compute_objective(config, _document({"t": 1050.0, "ref": 1000.0}), _battles(10, 7))
    many = compute_objective(config, _document({"t": 1050.0, "ref": 1000.0}),
                             _battles(200, 140))
    assert few["confidence"] == 0.9
    for record in (few, many):
        assert record["ci_low"] < record["ci_high"]
        if kind != "rating":  # rating's value is the board's; its CI the head-to-head's
            assert record["ci_low"] <= record["value"] <= record["ci_high"]
    # more prompts, a narrower interval
    assert many["ci_high"] - many["ci_low"] < few["ci_high"] - few["ci_low"]


def test_cost_weight_shifts_the_ci_and_no_value_has_no_ci() -> None:
    doc = _document({"t": 1050.0, "ref": 1000.0})
    doc["models"] = [{"model": "t", "cost_per_image_usd": 0.01}]
    base = {"reference": "ref", "target": "t", "judge": "ocr", "objective": "win_rate"}
    plain = compute_objective({"sweep": base}, doc, _battles(20, 12))
    weighted = compute_objective({"sweep": {**base, "cost_weight": 10}}, doc, _battles(20, 12))
    assert weighted["ci_low"] == pytest.approx(plain["ci_low"] - 0.1)
    assert weighted["ci_high"] == pytest.approx(plain["ci_high"] - 0.1)
    over = compute_objective({"sweep": {**base, "max_cost_per_image_usd": 0.001}}, doc,
                             _battles(20, 12))
    assert over["value"] is None and over["ci_low"] is None and over["ci_high"] is None
