"""Which folders are runs and which are sweeps: one rule for `compare` and the arena."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autojudge.errors import AutojudgeError
from autojudge.sweeps.jobs import find_jobs
from autojudge.sweeps.pool_jobs import load_job


def run(folder: Path, finished: bool = True, pooled: bool = False) -> Path:
    folder.mkdir(parents=True)
    (folder / "generations.jsonl").write_text("{}\n")
    if finished:
        doc = {"run": {"compare": {}} if pooled else {}, "boards": []}
        (folder / "leaderboard.json").write_text(json.dumps(doc))
    return folder


def test_a_sweep_folder_stands_for_its_jobs_in_job_order(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    for k in (10, 2, 0):
        run(sweep / str(k))
    run(sweep / "compare", pooled=True)  # compare's own output is never a job
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    assert [p.name for p in find_jobs([sweep])] == ["0", "2", "10"]
    # an Optuna sweep writes optimization_results.yaml instead of multirun.yaml
    (sweep / "multirun.yaml").rename(sweep / "optimization_results.yaml")
    assert [p.name for p in find_jobs([sweep, sweep / "0"])] == ["0", "2", "10"]


def test_a_folder_that_merely_holds_runs_is_not_pooled_by_accident(tmp_path) -> None:
    run(tmp_path / "runs" / "a")
    with pytest.raises(AutojudgeError, match="nor a multirun sweep folder .*pass them by name"):
        find_jobs([tmp_path / "runs"])
    with pytest.raises(AutojudgeError, match="no such folder"):
        find_jobs([tmp_path / "nope"])
    with pytest.raises(AutojudgeError, match="is a file, not a run folder"):
        find_jobs([tmp_path / "runs" / "a" / "generations.jsonl"])
    with pytest.raises(AutojudgeError, match="no run folder given"):
        find_jobs([])


def test_an_unfinished_job_of_a_sweep_is_named_not_dropped(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    run(sweep / "0")
    run(sweep / "1", finished=False)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    jobs = find_jobs([sweep])
    assert [p.name for p in jobs] == ["0", "1"]
    with pytest.raises(AutojudgeError, match="1 is not finished .*pass the finished jobs"):
        load_job(jobs[1])
