"""Human votes: imgsys/Arena imports, preference values, joining the run's prompts."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

from autojudge.battles.human_votes import load_human_votes, preference_to_winner
from autojudge.errors import AutojudgeError
from autojudge.types import Prompt

PROMPTS = [Prompt("p1", "a red sign", ("text",)), Prompt("p2", "a cat", ("animal",))]


@pytest.mark.parametrize("value, winner", [
    ("model_a", "model_a"), ("A", "model_a"), ("left", "model_a"), (0, "model_a"),
    ("0", "model_a"), (0.0, "model_a"), ("model_b", "model_b"), ("b", "model_b"),
    ("Right", "model_b"), (1, "model_b"), ("1.0", "model_b"), ("tie", "tie"), (0.5, "tie"),
    (2, "tie"), (-1, "tie"), ("draw", "tie"), ("tie (bothbad)", "tie (bothbad)"),
    ("both bad", "tie (bothbad)")])
def test_preference_values_follow_imgsys(value, winner) -> None:
    # imgsys' calculate_elo.py: preference 0 -> model_a wins, 1 -> model_b, else tie
    assert preference_to_winner([value]) == [winner]


@pytest.mark.parametrize("value, winner", [(1, "model_a"), ("0", "model_b"), (0.5, "tie"),
                                           ("left", "model_a")])
def test_preference_switch_for_exports_that_store_model_a_score(value, winner) -> None:
    assert preference_to_winner([value], convention="a_score") == [winner]
    with pytest.raises(AutojudgeError, match="not a known vote"):
        preference_to_winner([2], convention="a_score")


def test_unknown_preference_names_row() -> None:
    with pytest.raises(AutojudgeError, match=r"'maybe' \(row 2\)"):
        preference_to_winner(["a", "maybe"])


def test_rate_cli_reads_an_imgsys_export(tmp_path) -> None:
    path = tmp_path / "votes.csv"
    # known winners: 0 -> sdxl (model_a) 10 times, 1 -> flux 5 times, 0.5 -> 5 ties
    path.write_text("model_a,model_b,preference,prompt\n" + "".join(
        f"sdxl,flux,{v},prompt {k}\n" for k, v in enumerate(["0.0", "0.0", "1.0", "0.5"] * 5)))
    proc = run_cli(["autojudge.rate", str(path), "--json", "--bootstrap", "50"])
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(proc.stdout)["models"]}
    assert rows["sdxl"]["wins"] == 10 and rows["flux"]["wins"] == 5 and rows["flux"]["ties"] == 5
    assert rows["sdxl"]["rating"] > rows["flux"]["rating"]
    flipped = run_cli(["autojudge.rate", str(path), "--json", "--bootstrap", "50",
                       "--preference", "a_score"])
    rows = {r["model"]: r for r in json.loads(flipped.stdout)["models"]}
    assert rows["flux"]["wins"] == 10 and rows["sdxl"]["wins"] == 5
    bad = tmp_path / "bad.csv"
    bad.write_text("model_a,model_b,preference\nx,y,maybe\n")
    proc = run_cli(["autojudge.rate", str(bad)])
    assert proc.returncode == 2 and "preference value 'maybe'" in proc.stderr


def test_load_votes_joins_prompts_by_id_or_text_and_maps_models(tmp_path) -> None:
    path = tmp_path / "votes.jsonl"
    rows = [{"model_a": "SDXL", "model_b": "flux", "preference": "A", "prompt": "a red sign"},
            {"model_a": "flux", "model_b": "SDXL", "winner": "tie", "prompt_id": "p2",
             "seed": 3},
            {"model_a": "flux", "model_b": "other", "winner": "tie", "prompt_id": "p2"},
            {"model_a": "flux", "model_b": "SDXL", "winner": "model_a",
             "prompt": "not in suite"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AutojudgeError):  # mixed winner/preference: winner column has gaps
        load_human_votes(path, PROMPTS, ["sdxl", "flux"], {"SDXL": "sdxl"})
    rows[0] = {**rows[0], "winner": "model_a"}
    del rows[0]["preference"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    battles, summary = load_human_votes(path, PROMPTS, ["sdxl", "flux"], {"SDXL": "sdxl"})
    assert summary == {"path": str(path), "n_votes": 4, "n_used": 3, "n_unknown_model": 1,
                       "n_unmatched_prompt": 1}
    first, second, third = battles
    assert (first.model_a, first.prompt_id, first.tags, first.seed) == ("sdxl", "p1",
                                                                        ("text",), None)
    assert first.judge == "human" and second.seed == 3 and second.prompt_id == "p2"
    assert third.prompt_id == "not in suite" and third.tags == ()
