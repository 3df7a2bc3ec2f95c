"""K-wise rows in a battle log (autojudge.battles.rankings): read as the pairs they order,
mixed with pairwise rows, in JSONL, CSV and Parquet; rated by `rate` exactly as the
ratings module rates rankings; bad rankings are one line naming the line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from autojudge.battles.log import read_battle_log
from autojudge.cli.rate import main
from autojudge.errors import AutojudgeError
from autojudge.ratings import RatingConfig
from autojudge.ratings.rankings import rate_rankings

ROWS = [
    {"model_a": "a", "model_b": "b", "winner": "model_a", "judge": "vlm", "prompt_id": "p0"},
    {"models": ["a", "b", "c", "d"], "ranks": [2, 1, 2, 4], "judge": "vlm",
     "prompt_id": "p1", "seed": 0},
    {"models": ["d", "c", "b"], "ranks": [1, None, None], "judge": "vlm"},
    {"model_a": "c", "model_b": "d", "winner": "tie", "judge": "vlm", "prompt_id": "p2"},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rankings_read_as_the_pairs_they_order_in_file_order(tmp_path) -> None:
    df = read_battle_log(_write(tmp_path / "b.jsonl", ROWS))
    got = list(zip(df["model_a"], df["model_b"], df["winner"]))
    assert got == [("a", "b", "model_a"),
                   # ranks [2, 1, 2, 4]: b best, a and c tie, d last
                   ("a", "b", "model_b"), ("a", "c", "tie"), ("a", "d", "model_a"),
                   ("b", "c", "model_a"), ("b", "d", "model_a"), ("c", "d", "model_a"),
                   # best of three: d beats each, nothing between c and b
                   ("d", "c", "model_a"), ("d", "b", "model_a"),
                   ("c", "d", "tie")]
    assert list(df["ranking"].iloc[1:7]) == ["line 2"] * 6
    assert set(df["prompt_id"].iloc[7:9]) == {"ranking@line 3"}  # one cluster, not two
    assert set(df["judge"]) == {"vlm"}


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_csv_and_parquet_carry_rankings_too(tmp_path, suffix) -> None:
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"b.{suffix}"
    if suffix == "csv":
        for col in ("models", "ranks"):
            frame[col] = [json.dumps(v) if isinstance(v, list) else "" for v in frame[col]]
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    df = read_battle_log(path)
    expected = read_battle_log(_write(tmp_path / "b.jsonl", ROWS))
    assert list(zip(df["model_a"], df["model_b"], df["winner"])) == \
        list(zip(expected["model_a"], expected["model_b"], expected["winner"]))


def test_rate_rates_a_mixed_log_as_the_ratings_module_does(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    truth = {"a": 0.0, "b": 60.0, "c": 120.0, "d": 180.0}
    rows, models, ranks, prompts = [], [], [], []
    for p in range(40):
        order = sorted(truth, key=lambda m: -(truth[m] / 173.7 + rng.gumbel()))
        rank = [order.index(m) + 1 for m in truth]
        rows.append({"models": list(truth), "ranks": rank, "prompt_id": f"p{p}"})
        models.append(list(truth))
        ranks.append(rank)
        prompts.append(f"p{p}")
    rows.append({"model_a": "a", "model_b": "d", "winner": "model_b", "prompt_id": "p0"})
    assert main([str(_write(tmp_path / "b.jsonl", rows)), "--bootstrap", "100",
                 "--json"]) == 0
    board = {r["model"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    reference = rate_rankings(models, ranks, prompts, model_a=["a"], model_b=["d"],
                              winner=["model_b"], pair_clusters=["p0"],
                              config=RatingConfig(bootstrap_rounds=100))
    for row in reference:
        got = board[row["model"]]
        assert got["rating"] == pytest.approx(row["rating"], abs=1e-6)
        assert got["ci_low"] == pytest.approx(row["ci_low"], abs=1e-6)
        assert got["battles"] == row["battles"]


@pytest.mark.parametrize("row, words", [
    ({"models": ["a", "a"], "ranks": [1, 2]}, "appears twice"),
    ({"models": ["a", "b"], "ranks": [1]}, "one rank per model"),
    ({"models": ["a", "b"], "ranks": [0, 1]}, "integer >= 1"),
    ({"models": ["a", "b"], "ranks": [None, None]}, "no ranked entry"),
    ({"models": "a,b", "ranks": [1, 2]}, "not a JSON list"),
    ({"models": ["a", "b"]}, "needs both models and ranks"),
])
def test_a_bad_ranking_is_one_line_naming_its_line(tmp_path, row, words) -> None:
    path = _write(tmp_path / "b.jsonl", [ROWS[0], row])
    with pytest.raises(AutojudgeError) as err:
        read_battle_log(path)
    text = str(err.value)
    assert words in text and "\n" not in text
    assert "line 2" in text or "needs both" in text


def test_two_calls_ranks_become_the_pairs_both_agree_on(tmp_path) -> None:
    """A K-wise judge asked in two slot orders logs both calls' ranks: a pair the calls
    order differently is a tie (as a swap-debiased pairwise verdict)."""
    row = {"models": ["a", "b", "c"], "ranks": [[1, 2, 3], [2, 1, 3]], "prompt_id": "p"}
    df = read_battle_log(_write(tmp_path / "b.jsonl", [row]))
    assert list(zip(df["model_a"], df["model_b"], df["winner"])) == [
        ("a", "b", "tie"), ("a", "c", "model_a"), ("b", "c", "model_a")]
    bad = {"models": ["a", "b"], "ranks": [[1, 2], [1, 2], [2, 1]]}
    with pytest.raises(AutojudgeError, match="line 1: bad ranking"):
        read_battle_log(_write(tmp_path / "c.jsonl", [bad]))


@pytest.mark.parametrize("override, words", [
    ("judge.vlm.k=1", "integer from 2 to 8"),
    ("judge.vlm.k=9", "integer from 2 to 8"),
    ("judge.ocr.k=4", "Key 'k' not in"),  # the schema: pointwise judges have no k
])
def test_a_bad_k_is_refused_before_any_image(tmp_path, override, words) -> None:
    from helpers import REPO, run_cli

    judge = "ocr" if "ocr" in override else "vlm"
    proc = run_cli(["autojudge", f"judge=[{judge}]", override, "judge.vlm.api_key_env=",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"]
                   if judge == "vlm" else
                   ["autojudge", f"judge=[{judge}]", override,
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=REPO, timeout=300)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-500:]
    assert not [f for f in (tmp_path / "store").rglob("*") if f.suffix == ".png"]


def test_a_rankings_features_become_each_pairs_sides(tmp_path) -> None:
    """A run with ratings.control writes each model's image features on its K-wise rows;
    every pair read from the row carries its two sides' features, so `rate --control`
    and `gate --control` work on a K-wise log."""
    from autojudge.battles.rankings import expand_rows

    features = {"a": {"contrast": 0.1}, "b": {"contrast": 0.2}, "c": {"contrast": 0.3}}
    row = {"models": ["a", "b", "c"], "ranks": [1, 2, 3], "prompt_id": "p",
           "features": features}
    df = read_battle_log(_write(tmp_path / "b.jsonl", [row, ROWS[0]]))
    assert "features" not in df.columns
    got = [(a, b, fa, fb) for a, b, fa, fb in
           zip(df["model_a"], df["model_b"], df["features_a"], df["features_b"])][:3]
    assert got == [("a", "b", features["a"], features["b"]),
                   ("a", "c", features["a"], features["c"]),
                   ("b", "c", features["b"], features["c"])]
    assert [r["features_a"] for r in expand_rows([row])] == \
        [features["a"], features["a"], features["b"]]
