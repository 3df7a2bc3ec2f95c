"""Per-stage progress: images already in the store vs new, judge scores from the store vs
computed (live from the runner), and an ETA from the new work only."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from autojudge.generators.baselines import BlankGenerator
from autojudge.stages.cache import Counts
from autojudge.stages.generate import expand_requests, run_generation
from autojudge.stages.stage_progress import EtaColumn, StageProgress
from autojudge.store.index import Store
from autojudge.types import Prompt


class Recorder:
    """The progress API, remembering what it was told (every description it showed)."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}
        self.shown: list[str] = []

    def add_task(self, description: str, total: Any = None, **fields: Any) -> int:
        self.tasks[len(self.tasks)] = {"description": description, "total": total,
                                       "completed": 0, **fields}
        self.shown.append(description)
        return len(self.tasks) - 1

    def advance(self, task: int, n: float = 1) -> None:
        self.tasks[task]["completed"] += n

    def update(self, task: int, **fields: Any) -> None:
        self.tasks[task].update(fields)
        if "description" in fields:
            self.shown.append(fields["description"])


def test_generation_counts_what_the_store_holds_and_what_is_new(tmp_path) -> None:
    """The counts come from the runner's own events: the images it found in the store
    first, then each batch made new; nothing is looked up twice."""
    prompts = [(Prompt(id=f"p{i}", text=f"text {i}"), 0) for i in range(5)]
    generator = BlankGenerator("blank", BlankGenerator.Config(width=8, height=8))
    with Store(tmp_path / "store") as store:
        run_generation("blank", generator, expand_requests(prompts[:3]), store)  # 3 stored
        recorder = Recorder()
        advance = StageProgress(recorder).stage("generate", "blank", total=len(prompts))
        assert recorder.shown == ["generate blank"]
        run_generation("blank", generator, expand_requests(prompts), store, advance)
    assert recorder.shown[1:] == ["generate blank (3 from store, 0 new)",
                                  "generate blank (3 from store, 2 new)"]  # one batch of 2
    assert recorder.tasks[0]["completed"] == 5


def test_judge_counts_are_live_and_eta_ignores_the_cached_burst(monkeypatch) -> None:
    tally = Counts()
    recorder = Recorder()
    advance = StageProgress(recorder).stage("judge", "ocr", 100, tally=tally, what="scores")
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr("autojudge.stages.stage_progress.time.monotonic", lambda: next(clock))
    tally.cached = 60
    advance(60, from_store=60)  # the store's answers arrive at once
    assert recorder.tasks[0]["eta"] is None
    tally.computed = 10
    advance(10)  # the first new step: the rate is measured from its end
    assert recorder.tasks[0]["eta"] is None
    tally.computed = 20
    advance(10)  # 10 new in 10 s: 1/s
    assert recorder.tasks[0]["eta"] == 20.0  # 20 left at the new-work rate, not 100/s
    assert recorder.tasks[0]["description"] == "judge ocr (scores: 60 from store, 20 new)"


def test_the_judge_stage_reports_batches_the_store_answered(tmp_path) -> None:
    """run_judge says which batches the store answered whole, so the ETA leaves them out."""
    from autojudge.judges.ocr import OCRJudge
    from autojudge.stages.judge import run_judge
    from autojudge.stages.runner import JudgeRunner

    prompts = [(Prompt(id=f"p{i}", text=f"t{i}", expected_text="A"), 0) for i in range(3)]
    generators = {m: BlankGenerator(m, BlankGenerator.Config(width=8, height=8, color=c))
                  for m, c in (("a", "white"), ("b", "black"))}
    events: list[tuple[int, int]] = []
    with Store(tmp_path / "store") as store:
        gens = [g for m, gen in generators.items()
                for g in run_generation(m, gen, expand_requests(prompts), store)[0]]
        for _ in range(2):  # the second time every score is in the store
            judge = JudgeRunner("ocr", OCRJudge("ocr", OCRJudge.Config(batch_size=1)), store)
            run_judge(judge, ["a", "b"], gens, prompts, store,
                      advance=lambda n, from_store=0: events.append((n, from_store)))
    first, second = events[:len(events) // 2], events[len(events) // 2:]
    assert sum(n for n, _ in first) == sum(n for n, _ in second) == 3
    assert all(k == 0 for _, k in first) and all(k == n for n, k in second)


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

    from autojudge.runtime.progress import logs_through, to_log_file

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
