"""Per-stage progress that says how much came from the store and how much is new, with an
ETA from the new work only.

The stages report progress through the plain `add_task` / `advance` / `update` API
(`autojudge.progress`). `StageProgress` wraps that object for a run and adds, per task:

- generation ("generate LABEL"): how many of the model's images the store already holds
  (one index lookup before the stage starts, the same keys the stage looks up), and how
  many were made new so far;
- judging ("judge LABEL"): the judge runner's live counts of scores or verdicts taken
  from the store vs computed;
- an ETA from the rate of the work after the stage's first step: cached results arrive in
  one burst, which would make rich's own estimate far too short.

Example:
    >>> with progress_bar(True) as bar:                                  # doctest: +SKIP
    ...     progress = StageProgress(bar, exp)
    ...     generate_all(exp, progress)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

try:  # rich is a core dependency; the column exists only where rich does
    from rich.progress import ProgressColumn
    from rich.text import Text
except ImportError:  # pragma: no cover
    ProgressColumn = object  # type: ignore[misc,assignment]


class EtaColumn(ProgressColumn):  # type: ignore[misc,valid-type]
    """Time left: the stage wrapper's estimate when it gave one, else rich's own."""

    def render(self, task: Any) -> Any:
        if task.finished:
            return Text("done", style="progress.remaining")
        eta, at = task.fields.get("eta"), task.fields.get("eta_at")
        if eta is not None and at is not None:
            left = max(0.0, eta - (time.monotonic() - at))
        else:
            left = task.time_remaining
        if left is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(left + 0.5), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"eta {hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


@dataclass
class _Task:
    base: str
    total: int
    kind: str = ""
    label: str = ""
    cached_up_front: int | None = None
    completed: int = 0
    first_at: float | None = None
    after_first: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StageProgress:
    """The progress API of `autojudge.progress`, with store/new counts and a fair ETA."""

    def __init__(self, progress: Any, exp: Any = None):
        self.progress = progress
        self.exp = exp
        self._tasks: dict[Any, _Task] = {}

    def add_task(self, description: str, total: Any = None, **fields: Any) -> Any:
        task = _Task(str(description), int(total or 0))
        kind, _, label = task.base.partition(" ")
        if kind in ("generate", "judge"):
            task.kind, task.label = kind, label
        if task.kind == "generate":
            task.cached_up_front = self._stored_generations(label)
        handle = self.progress.add_task(self._describe(task), total=total, **fields)
        self._tasks[handle] = task
        return handle

    def advance(self, task_id: Any, advance: float = 1, **kwargs: Any) -> None:
        self.progress.advance(task_id, advance, **kwargs)
        task = self._tasks.get(task_id)
        if task is None:
            return
        now = time.monotonic()
        task.completed += int(advance)
        if task.first_at is None:
            task.first_at = now
        else:
            task.after_first += int(advance)
        eta = None
        if task.after_first and now > task.first_at:
            rate = task.after_first / (now - task.first_at)
            eta = max(0, task.total - task.completed) / rate
        self.progress.update(task_id, description=self._describe(task), eta=eta, eta_at=now)

    def update(self, task_id: Any, **kwargs: Any) -> None:
        self.progress.update(task_id, **kwargs)

    # -- internals -----------------------------------------------------------------------

    def _describe(self, task: _Task) -> str:
        counts = self._counts(task)
        return f"{task.base} ({counts})" if counts else task.base

    def _counts(self, task: _Task) -> str:
        if task.kind == "generate" and task.cached_up_front is not None:
            new = max(0, task.completed - task.cached_up_front)
            return f"{task.cached_up_front} from store, {new} new"
        runner = (getattr(self.exp, "judges", None) or {}).get(task.label) \
            if task.kind == "judge" else None
        counts = getattr(runner, "counts", None)
        if counts is None:
            return ""
        what = "scores" if getattr(runner, "pointwise", True) else "verdicts"
        return f"{what}: {counts.cached} from store, {counts.computed} new"

    def _stored_generations(self, label: str) -> int | None:
        """How many of `label`'s requests the store already answers (None: unknown)."""
        exp = self.exp
        generator = (getattr(exp, "generators", None) or {}).get(label)
        if generator is None or not getattr(generator, "cacheable", True):
            return None if generator is None else 0
        try:
            from autojudge.stages.cache import fingerprint_hash
            from autojudge.stages.generate import expand_requests, generation_key

            fp = fingerprint_hash(dict(generator.fingerprint()))
            keys = [generation_key(fp, r) for r in expand_requests(exp.requests)]
            return len(exp.store.get_many("generations", keys))
        except Exception:  # a display nicety: never let it stop a run
            return None
