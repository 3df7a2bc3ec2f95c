"""`python -m autojudge.rate`: JSON shape, formats agree, one-line errors with exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autojudge.battles.log import write_battle_log
from autojudge.cli.rate import main
from autojudge.ratings import BOARD_KEYS, RatingConfig, rate_battles

ROUNDS = 60


def make_log(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array(["flux", "sdxl", "sd15", "NA"], dtype=object)
    a = rng.integers(0, 4, n)
    b = (a + rng.integers(1, 4, n)) % 4
    p = 1.0 / (1.0 + np.exp(a - b))  # lower index is stronger
    u = rng.random(n)
    winner = np.where(u < 0.1, "tie (bothbad)", np.where(u < 0.1 + 0.9 * p, "model_a",
                                                         "model_b"))
    return pd.DataFrame({
        "model_a": names[a], "model_b": names[b], "winner": winner,
        "judge": np.where(rng.random(n) < 0.5, "ocr", "clip"),
        "prompt_id": [f"p{k}" for k in rng.integers(0, 40, n)],
        "seed": rng.integers(0, 3, n), "tags": [["text", "hard"]] * n,
        "score_a": rng.random(n), "score_b": rng.random(n),
        "rationale": "because, \"quoted\"", "tstamp": 1.7e9 + np.arange(n)})


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autojudge.rate", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[int, str, str]]:
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        out[key] = (proc.returncode, stdout, stderr)
    return out


@pytest.fixture(scope="module")
def log_df() -> pd.DataFrame:
    return make_log()


@pytest.fixture(scope="module")
def format_runs(tmp_path_factory: pytest.TempPathFactory, log_df: pd.DataFrame
                ) -> dict[str, tuple[int, str, str]]:
    """The same log as JSONL, CSV and Parquet through the CLI (run concurrently)."""
    d = tmp_path_factory.mktemp("formats")
    procs = {}
    for suffix in ("jsonl", "csv", "parquet"):
        write_battle_log(log_df, d / f"battles.{suffix}")
        procs[suffix] = run_cli(str(d / f"battles.{suffix}"), "--bootstrap", str(ROUNDS),
                                "--seed", "5", "--json")
    procs["judge"] = run_cli(str(d / "battles.parquet"), "--bootstrap", "0", "--json",
                             "--judge", "ocr", "--anchor", "sdxl")
    return collect(procs)


def test_json_output_shape_and_values(format_runs: dict, log_df: pd.DataFrame) -> None:
    rc, stdout, stderr = format_runs["jsonl"]
    assert rc == 0, stderr
    out = json.loads(stdout)
    assert list(out)[0] == "models" and out["connected"] is True
    assert out["cluster"] == "prompt_id" and out["n_unrated"] == 0
    assert all(tuple(row) == BOARD_KEYS for row in out["models"])
    assert [r["model"] for r in out["models"]][:1] == ["flux"]
    assert sorted(r["model"] for r in out["models"]) == ["NA", "flux", "sd15", "sdxl"]
    expected = rate_battles(log_df["model_a"], log_df["model_b"], log_df["winner"],
                            log_df["prompt_id"],
                            config=RatingConfig(bootstrap_rounds=ROUNDS, seed=5))
    assert out["models"] == expected


def test_csv_jsonl_parquet_give_identical_ratings(format_runs: dict) -> None:
    outputs = {k: format_runs[k] for k in ("jsonl", "csv", "parquet")}
    assert all(rc == 0 for rc, _, _ in outputs.values()), outputs
    assert outputs["csv"][1] == outputs["jsonl"][1] == outputs["parquet"][1]


def test_judge_filter_and_anchor(format_runs: dict, log_df: pd.DataFrame) -> None:
    rc, stdout, stderr = format_runs["judge"]
    assert rc == 0, stderr
    rows = json.loads(stdout)["models"]
    ocr = log_df[log_df["judge"] == "ocr"]
    assert sum(r["battles"] for r in rows) == 2 * len(ocr)
    assert next(r for r in rows if r["model"] == "sdxl")["rating"] == pytest.approx(1000.0)
    expected = rate_battles(ocr["model_a"], ocr["model_b"], ocr["winner"], ocr["prompt_id"],
                            config=RatingConfig(bootstrap_rounds=0, anchor="sdxl"))
    assert rows == expected


BAD_CASES = {
    # case: (file name, file content or None for "do not create", extra args, expected text)
    "unknown_winner": ("b.jsonl", '{"model_a":"x","model_b":"y","winner":"model_a"}\n'
                       '{"model_a":"x","model_b":"y","winner":"A"}\n', (), "'A' (line 2)"),
    "unknown_winner_csv": ("b.csv", "model_a,model_b,winner\nx,y,draw\nx,y,tie\n", (),
                           "'draw' (row 1"),
    "missing_columns": ("b.csv", "model_a,model_b,judge\nx,y,ocr\n", (), "missing column"),
    "malformed_jsonl": ("b.jsonl", '{"model_a":"x","model_b":"y","winner":"tie"}\n\n'
                        '{"model_a": "x", "model_b"\n', (), "line 3"),
    "missing_file": ("absent.parquet", None, (), "not found"),
    "empty_jsonl": ("b.jsonl", "", (), "empty"),
    "empty_csv": ("b.csv", "", (), "empty"),
    "header_only_csv": ("b.csv", "model_a,model_b,winner\n", (), "no battles"),
    "garbage_parquet": ("b.parquet", "not parquet at all", (), "Parquet"),
    "unknown_suffix": ("b.txt", "x", (), "unknown format"),
    "unknown_anchor": ("b.csv", "model_a,model_b,winner\nx,y,tie\n", ("--anchor", "zz"),
                       "anchor"),
    "unknown_judge": ("b.csv", "model_a,model_b,winner,judge\nx,y,tie,ocr\n",
                      ("--judge", "clip"), "judged by 'clip'"),
    "negative_bootstrap": ("b.csv", "model_a,model_b,winner\nx,y,tie\n",
                           ("--bootstrap", "-1"), "--bootstrap"),
    "bad_int_flag": ("b.csv", "model_a,model_b,winner\nx,y,tie\n", ("--seed", "x"),
                     "--seed"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    procs = {}
    for case, (name, content, extra, _) in BAD_CASES.items():
        d = tmp_path_factory.mktemp(case)
        if content is not None:
            (d / name).write_text(content)
        procs[case] = run_cli(str(d / name), "--bootstrap", "5", *extra, cwd=d)
    return collect(procs)


@pytest.mark.slow  # one CLI process per bad input, all started before the first check
@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_error_line_with_exit_2(case: str, bad_runs: dict) -> None:
    rc, stdout, stderr = bad_runs[case]
    assert rc == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert BAD_CASES[case][3] in lines[0]
    assert stdout == ""


def test_table_output_in_process(tmp_path: Path, log_df: pd.DataFrame,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "b.parquet"
    write_battle_log(log_df, path)
    assert main([str(path), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    for text in ("flux", "sdxl", "sd15", "NA", "95% CI", "W/L/T", "400 battles"):
        assert text in out
    assert main([str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_module_import_is_cheap() -> None:
    code = ("import sys, autojudge.rate; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'scipy', 'rich') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
