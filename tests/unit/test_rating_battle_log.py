"""Battle log reading, validation and atomic writing (in-process)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autojudge.battles.log import read_battle_log, write_battle_log
from autojudge.errors import AutojudgeError
from autojudge.types import Battle

ROWS = [
    {"model_a": "x", "model_b": "NA", "winner": "model_a", "judge": "ocr", "prompt_id": "p1",
     "seed": 0, "tags": ["text", "hard"], "score_a": 0.9, "score_b": None,
     "rationale": "line one\nline, two", "tstamp": 1.5},
    {"model_a": "NA", "model_b": "x", "winner": "tie (bothbad)", "judge": "clip",
     "prompt_id": "p2", "seed": 1, "tags": [], "score_a": 0.1, "score_b": 0.2,
     "rationale": "", "tstamp": 2.5},
]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet", "pq", "json"])
def test_round_trip_every_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"log.{suffix}"
    write_battle_log(ROWS, path)
    df = read_battle_log(path)
    assert df["model_a"].tolist() == ["x", "NA"]
    assert df["winner"].tolist() == ["model_a", "tie (bothbad)"]
    assert df["tags"].tolist() == [["text", "hard"], []]
    assert df["score_a"].tolist() == [0.9, 0.1]
    assert pd.isna(df["score_b"].iloc[0])
    assert df["rationale"].iloc[0] == "line one\nline, two"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_judge_filter_and_battle_objects(tmp_path: Path) -> None:
    battles = [Battle("a", "b", "model_b", "ocr", "p1", 0, ("t",)),
               Battle("a", "c", "tie", "clip", "p1", 0)]
    path = tmp_path / "log.jsonl"
    write_battle_log(battles, path)
    df = read_battle_log(path, judge="clip")
    assert df[["model_a", "model_b", "winner"]].values.tolist() == [["a", "c", "tie"]]
    assert list(df.index) == [0]


def test_csv_tags_as_text(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("model_a,model_b,winner,tags\nx,y,tie,a;b\nx,y,tie,\n")
    assert read_battle_log(path)["tags"].tolist() == [["a", "b"], []]


@pytest.mark.parametrize("name,content,expected", [
    ("b.csv", "model_a,model_b,winner\nx,,tie\n", "row 1 (after the header): empty model_b"),
    ("b.csv", "model_a,model_b,winner\nx,x,tie\n", "cannot battle itself"),
    ("b.csv", "model_a,model_b,winner,score_a\nx,y,tie,high\n", "'high', not a number"),
    ("b.jsonl", '["x","y","tie"]\n', "line 1: expected a JSON object"),
    ("b.jsonl", '{"model_a":"x","model_b":"y","winner":null}\n', "line 1: empty winner"),
    ("b.csv", 'model_a,model_b,winner\nx,y,"tie\n', "not readable CSV"),
])
def test_validation_errors_name_the_place(tmp_path: Path, name: str, content: str,
                                          expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AutojudgeError, match=None) as info:
        read_battle_log(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_write_rejects_rows_without_required_columns(tmp_path: Path) -> None:
    with pytest.raises(AutojudgeError, match="winner"):
        write_battle_log([{"model_a": "x", "model_b": "y"}], tmp_path / "b.csv")
    assert list(tmp_path.iterdir()) == []
