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


def test_logs_go_through_the_live_display_and_come_back_after(tmp_path) -> None:
    """While bars are live a terminal log handler would write under rich's cursor: its
    warnings go through rich's console instead, stage lines to the log file only."""
    import io
    import logging
    import sys

    from rich.console import Console

    from autojudge.progress import logs_through, to_log_file

    root, log = logging.getLogger(), logging.getLogger("autojudge.test_live")
    terminal = logging.StreamHandler(sys.stderr)
    log_file = logging.FileHandler(tmp_path / "run.log")
    root.addHandler(terminal)
    root.addHandler(log_file)
    level, root.level = root.level, logging.INFO
    live = io.StringIO()
    try:
        with logs_through(Console(file=live, width=100)):
            assert terminal not in root.handlers and log_file in root.handlers
            log.info("generate blank: 5 images")
            log.warning("blank: 2 images failed")
        assert terminal in root.handlers
        to_log_file("pre-flight: a note the console printed itself")
    finally:
        root.removeHandler(terminal)
        root.removeHandler(log_file)
        log_file.close()
        root.level = level
    assert "blank: 2 images failed" in live.getvalue()
    assert "generate blank" not in live.getvalue()
    written = (tmp_path / "run.log").read_text()
    for line in ("generate blank: 5 images", "blank: 2 images failed", "pre-flight: a note"):
        assert line in written, written
