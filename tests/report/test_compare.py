"""`python -m autojudge.compare`: a 3-point font-size sweep pooled into one OCR board that
ranks the three variants with CIs, from cached work only (nothing generated, nothing
judged: the store's rows do not change), equal to the same variants run in one run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_cli
from report_helpers import FONT_SIZES, SUITE_SMALL, TYPESET_SMALL

from autojudge.experiment import pipeline
from autojudge.store.index import Store

pytestmark = pytest.mark.slow
VARIANTS = [f"typeset[max_font_size={size}]" for size in FONT_SIZES]


def _rows(store: Path) -> dict[str, int]:
    with Store(store) as s:
        return {table: s.count(table) for table in ("generations", "scores", "verdicts")}


def _board(document: dict, judge: str = "ocr") -> dict:
    return next(b for b in document["boards"] if b["judge"] == judge and b["tag"] is None)


@pytest.fixture(scope="module")
def pooled(font_sweep: dict) -> dict:
    before = _rows(font_sweep["store"])
    proc = run_cli(["autojudge.compare", str(font_sweep["sweep"]), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    out = font_sweep["sweep"] / "compare"
    return {"out": out, "stdout": proc.stdout, "before": before,
            "after": _rows(font_sweep["store"]),
            "document": json.loads((out / "leaderboard.json").read_text())}


def test_one_ocr_board_ranks_the_three_variants_with_cis(pooled: dict) -> None:
    document = pooled["document"]
    assert document["run"]["models"] == [*VARIANTS, "blank"]
    board = _board(document)
    rows = {r["model"]: r for r in board["models"]}
    assert set(rows) == {*VARIANTS, "blank"} and board["connected"]
    for model in VARIANTS:
        row = rows[model]
        assert row["rating"] is not None and row["rank"] is not None
        assert row["ci_low"] is not None or row["ci_high"] is not None  # a CI, honestly open
        assert row["battles"] == 3 * 4  # three opponents on four prompts
    order = [r["model"] for r in board["models"]]
    assert order.index(VARIANTS[2]) < order.index(VARIANTS[0])  # 24 px reads, 4 px barely
    assert rows[VARIANTS[2]]["rating"] > rows[VARIANTS[0]]["rating"]
    for name in ("leaderboard.csv", "battles.jsonl", "generations.jsonl", "scores.jsonl",
                 "models.csv", "report.html", "config.json", "prompts.jsonl"):
        assert (pooled["out"] / name).is_file(), name
    assert "typeset[max_font_size=24]" in pooled["stdout"]


def test_nothing_is_generated_or_judged(pooled: dict) -> None:
    cache = pooled["document"]["run"]["cache"]
    assert cache["generation"]["computed"] == 0
    assert cache["judges"]["ocr"]["computed"] == 0 and cache["judges"]["ocr"]["cached"] > 0
    assert pooled["after"] == pooled["before"]  # not one row added to the store
    sources = pooled["document"]["run"]["compare"]["sources"]
    assert [s["swept"] for s in sources] == [{"model.typeset.max_font_size": f}
                                             for f in FONT_SIZES]


def test_pooled_board_equals_the_variants_run_in_one_run(pooled: dict, font_sweep: dict,
                                                         compose, tmp_path: Path) -> None:
    cfg = compose(["model=[typeset,blank]", *TYPESET_SMALL, *SUITE_SMALL,
                   "+model.typeset.sweep.max_font_size=[" + ",".join(map(str, FONT_SIZES)) + "]",
                   f"store.root={font_sweep['store']}", "logger=none", "report.html=false"])
    document = pipeline.run(cfg, tmp_path / "variants")
    assert document["run"]["cache"]["generation"]["computed"] == 0  # the sweep made them all
    one_run = {r["model"]: r for r in _board(document)["models"]}
    pooled_rows = {r["model"]: r for r in _board(pooled["document"])["models"]}
    assert set(one_run) == set(pooled_rows)
    for model, row in one_run.items():
        for key in ("rating", "ci_low", "ci_high", "rank", "wins", "losses", "ties"):
            assert row[key] == pytest.approx(pooled_rows[model][key]), (model, key)


def test_bad_inputs_are_one_line_errors(font_sweep: dict, tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["autojudge.compare", str(tmp_path / "missing"),
                                   "--out", str(tmp_path / "o")]), "no such folder")
    # the missing folder is named even when --out is missing too
    assert_one_line_error(run_cli(["autojudge.compare", str(font_sweep["jobs"][0]),
                                   str(tmp_path / "missing")]), "missing: no such folder")
    assert_one_line_error(run_cli(["autojudge.compare", str(font_sweep["jobs"][0]),
                                   str(font_sweep["jobs"][1])]), "--out")
    other = tmp_path / "other_job"
    shutil.copytree(font_sweep["jobs"][1], other, symlinks=True)
    config = json.loads((other / "config.json").read_text())
    config["judge"]["ocr"]["tie_margin"] = 0.5
    (other / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run_cli(["autojudge.compare", str(font_sweep["jobs"][0]), str(other),
                                   "--out", str(tmp_path / "o")]), "judge ocr", "tie_margin")
    document = json.loads((other / "leaderboard.json").read_text())
    document["run"]["store"] = str(tmp_path / "elsewhere")
    (other / "leaderboard.json").write_text(json.dumps(document))
    config["judge"]["ocr"]["tie_margin"] = 0.02
    (other / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run_cli(["autojudge.compare", str(font_sweep["jobs"][0]), str(other),
                                   "--out", str(tmp_path / "o")]), "different stores")


def test_pools_exactly_the_prompts_the_runs_generated(tmp_path: Path) -> None:
    """With suite.only_judged a run generates only prompts a judge applies to, the first
    suite.limit of those: compare pools those, not the suite file's first `limit`."""
    unjudged = [{"id": f"scene{i}", "text": f"a quiet lake at dawn, view {i}",
                 "category": "scenes"} for i in range(2)]  # first in the file; no OCR here
    signs = [{"id": f"sign{i}", "text": f'a sign that reads "{word}"', "expected_text": word,
              "category": "text_rendering"} for i, word in enumerate(["OPEN", "SALE", "EXIT"])]
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "mixed", "prompts": [*unjudged, *signs]}))
    sweep = tmp_path / "sweep"
    proc = run_cli(["autojudge", "-m", "model=[typeset,blank]",
                    "model.typeset.max_font_size=12,24", *TYPESET_SMALL, f"suite.path={suite}",
                    "suite.name=mixed", "suite.limit=3", "ratings.bootstrap_rounds=20",
                    "progress=false", "logger=none", f"store.root={tmp_path / 'store'}",
                    f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    ids = {"sign0", "sign1", "sign2"}
    for job in ("0", "1"):
        rows = (sweep / job / "generations.jsonl").read_text().splitlines()
        assert {json.loads(row)["prompt_id"] for row in rows} == ids  # the judged ones
    proc = run_cli(["autojudge.compare", str(sweep), "--quiet", "--no-report"])
    assert proc.returncode == 0, proc.stderr
    out = sweep / "compare"
    document = json.loads((out / "leaderboard.json").read_text())
    assert document["run"]["n_prompts"] == 3 and document["run"]["n_requests"] == 3
    pooled = [json.loads(row) for row in (out / "generations.jsonl").read_text().splitlines()]
    assert {row["prompt_id"] for row in pooled} == ids and len(pooled) == 3 * 3
    prompts = [json.loads(row)["id"] for row in (out / "prompts.jsonl").read_text().splitlines()]
    assert prompts == ["sign0", "sign1", "sign2"]
    assert _board(document)["n_battles"] == 3 * 3  # three pairs of models on every prompt


def test_a_run_whose_prompts_left_the_suite_file_is_one_line(tmp_path: Path) -> None:
    from autojudge.errors import AutojudgeError
    from autojudge.sweeps.pool_jobs import Job, job_requests

    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "s", "prompts": [
        {"id": "kept", "text": "a red door", "category": "c"}]}))
    config = {"suite": {"name": "s", "path": str(suite), "format": "auto", "tags": ["c"],
                        "exclude_tags": [], "limit": 1, "seeds": None}}
    rows = [{"prompt_id": "kept", "seed": 0}, {"prompt_id": "gone", "seed": 0}]
    with pytest.raises(AutojudgeError, match="1 of its .prompt, seed. requests are not in "
                                             "its suite .* prompt 'gone'"):
        job_requests(Job(tmp_path / "run", config, {}, rows))
    assert [(p.id, s) for p, s in job_requests(Job(tmp_path, config, {}, rows[:1]))] == \
        [("kept", 0)]
