"""Per-stage progress: images already in the store vs new, judge scores from the store vs
computed (live from the runner), and an ETA from the new work only."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from autojudge.generators.baselines import BlankGenerator
from autojudge.stage_progress import EtaColumn, StageProgress
from autojudge.stages.cache import Counts
from autojudge.stages.generate import expand_requests, run_generation
from autojudge.store import Store
from autojudge.types import Prompt


class Recorder:
    """The progress API, remembering what it was told."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}

    def add_task(self, description: str, total: Any = None, **fields: Any) -> int:
        self.tasks[len(self.tasks)] = {"description": description, "total": total,
                                       "completed": 0, **fields}
        return len(self.tasks) - 1

    def advance(self, task: int, n: float = 1) -> None:
        self.tasks[task]["completed"] += n

    def update(self, task: int, **fields: Any) -> None:
        self.tasks[task].update(fields)


def test_generation_counts_what_the_store_holds_and_what_is_new(tmp_path) -> None:
    prompts = [(Prompt(id=f"p{i}", text=f"text {i}"), 0) for i in range(5)]
    generator = BlankGenerator("blank", BlankGenerator.Config(width=8, height=8))
    with Store(tmp_path / "store") as store:
        run_generation("blank", generator, expand_requests(prompts[:3]), store)  # 3 stored
        exp = SimpleNamespace(generators={"blank": generator}, judges={}, requests=prompts,
                              store=store)
        recorder = Recorder()
        progress = StageProgress(recorder, exp)
        task = progress.add_task("generate blank", total=len(prompts))
        assert recorder.tasks[task]["description"] == "generate blank (3 from store, 0 new)"
        run_generation("blank", generator, expand_requests(prompts), store,
                       lambda n: progress.advance(task, n))
    assert recorder.tasks[task]["description"] == "generate blank (3 from store, 2 new)"
    assert recorder.tasks[task]["completed"] == 5


def test_judge_counts_are_live_and_eta_ignores_the_cached_burst(monkeypatch) -> None:
    runner = SimpleNamespace(counts=Counts(), pointwise=True)
    recorder = Recorder()
    progress = StageProgress(recorder, SimpleNamespace(judges={"ocr": runner}))
    task = progress.add_task("judge ocr", total=100)
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr("autojudge.stage_progress.time.monotonic", lambda: next(clock))
    runner.counts.cached = 60
    progress.advance(task, 60)  # the cached burst arrives at once
    assert recorder.tasks[task]["eta"] is None
    runner.counts.computed = 10
    progress.advance(task, 10)  # 10 new in 10 s: 1/s
    assert recorder.tasks[task]["eta"] == 30.0  # 30 left at the new-work rate, not 100/s
    assert "scores: 60 from store, 10 new" in recorder.tasks[task]["description"]


def test_eta_column_counts_down_and_says_done() -> None:
    column = EtaColumn()
    task = SimpleNamespace(finished=False, fields={"eta": 3725.0, "eta_at": None},
                           time_remaining=None)
    assert str(column.render(task)) == "-:--:--"
    task.fields["eta_at"] = __import__("time").monotonic()
    assert str(column.render(task)).startswith("eta 1:02:0")
    task.finished = True
    assert str(column.render(task)) == "done"
