"""Model names must be plain text wherever they are read: a list, an object or a number
would be rated under its printed form (['x'], inf), and a newline splits table rows.
Battle logs (rate, gate, human votes), run configs and command-line options refuse them
in one line naming the place."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from autojudge.battles.log import read_battle_log
from autojudge.cli.checks import check_overrides
from autojudge.cli.rate import main
from autojudge.errors import AutojudgeError
from autojudge.experiment.preflight import check_models
from autojudge.experiment.schema import CONF_DIR

GOOD = {"model_a": "x", "model_b": "y", "winner": "model_a"}


def jsonl(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# (file maker, message); every log also holds clean rows, so only the name is wrong
HOSTILE = {
    "list": (lambda d: jsonl(d / "votes.jsonl", GOOD, GOOD, {**GOOD, "model_a": ["x"]}),
             "votes.jsonl, line 3: model_a must be a string, got a list"),
    "dict": (lambda d: jsonl(d / "votes.jsonl", GOOD, {**GOOD, "model_b": {"x": 1}}),
             "votes.jsonl, line 2: model_b must be a string, got an object"),
    # 1e309 parses as infinity; as the only kind of value in its column, Arrow's fast path
    # would have read it as the name "inf"
    "inf": (lambda d: (d / "votes.jsonl").write_text(
        '{"model_a": 1e309, "model_b": "y", "winner": "model_a"}\n' * 2) and d / "votes.jsonl",
        "votes.jsonl, line 1: model_a must be a string, got a number"),
    "newline": (lambda d: jsonl(d / "votes.jsonl", GOOD, {**GOOD, "model_b": "a\nb"}),
                "votes.jsonl, line 2: model_b must be printable text, got 'a\\nb'"),
    "csv newline": (lambda d: (d / "votes.csv").write_text(
        'model_a,model_b,winner\nx,y,tie\nx,"a\rb",model_a\n') and d / "votes.csv",
        "votes.csv, row 2 (after the header): model_b must be printable text, got 'a\\rb'"),
    "parquet ints": (lambda d: pd.DataFrame({"model_a": [1, 2], "model_b": [3, 4],
                                             "winner": ["tie", "tie"]}).to_parquet(
        d / "votes.parquet") or d / "votes.parquet",
        "votes.parquet, row 1: model_a must be a string, got a number"),
    "line separator": (lambda d: pd.DataFrame({"model_a": ["x", "p\u2028q"], "model_b": "y",
                                               "winner": "tie"}).to_parquet(
        d / "votes.parquet") or d / "votes.parquet",
        "votes.parquet, row 2: model_a must be printable text, got 'p\\u2028q'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_rate_refuses_hostile_names_in_one_line(tmp_path, capsys, case) -> None:
    make, needle = HOSTILE[case]
    path = make(tmp_path)
    assert main([str(path), "--bootstrap", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no table was printed
    assert err.count("\n") == 1 and err.startswith("error: battle log ") and needle in err


@pytest.mark.parametrize("case", ["list", "newline", "parquet ints"])
def test_every_battle_log_reader_refuses_them(tmp_path, case) -> None:
    """read_battle_log is what the gate and the human-votes import read with."""
    make, needle = HOSTILE[case]
    with pytest.raises(AutojudgeError, match="must be"):
        read_battle_log(make(tmp_path))
    from autojudge.battles.human_votes import load_human_votes

    with pytest.raises(AutojudgeError) as info:
        load_human_votes(make(tmp_path), [], ["x", "y"])
    assert needle in str(info.value)


def test_clean_names_still_rate(tmp_path, capsys) -> None:
    path = jsonl(tmp_path / "votes.jsonl", GOOD, {**GOOD, "model_b": "sd15[cfg=5]"},
                 {**GOOD, "model_a": "模型 é", "winner": "tie"})
    assert main([str(path), "--bootstrap", "0", "--json"]) == 0
    names = {r["model"] for r in json.loads(capsys.readouterr().out)["models"]}
    assert names == {"x", "y", "sd15[cfg=5]", "模型 é"}


@pytest.mark.parametrize("label, needle", [
    ("a\nb", "model label 'a\\nb' must be printable text"),
    (5, "model label 5 must be a string, got a number"),
    ("  ", "model label '  ' must not be empty"),
])
def test_run_config_labels_must_be_plain_text(label, needle) -> None:
    with pytest.raises(AutojudgeError) as info:
        check_models(["typeset", label])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_command_line_options_must_be_names() -> None:
    assert check_overrides(["model=[typeset,5]"], CONF_DIR).startswith(
        "model=[typeset,5]: 5 is a number, not a model name; available: blank,")
    assert "is a number, not a judge name" in check_overrides(["judge=[ocr,1.5]"], CONF_DIR)
    assert check_overrides(["model=[typeset,blank]"], CONF_DIR) is None
