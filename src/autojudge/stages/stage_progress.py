"""Per-stage progress that says how much came from the store and how much is new, with an
ETA from the new work only.

A stage opens one bar with `StageProgress.stage(kind, label, total)` and gets back the
`Advance` its runner calls: `advance(n, from_store=k)`, n more items done, k of them
answered by the store. Everything shown comes from those events (and, for a judge, the
runner's own tally of scores or verdicts handed over when the bar opens), never from
parsing a bar's description or asking the store again:

- generation ("generate LABEL"): how many of the model's images came from the store, and
  how many were made new so far;
- judging ("judge LABEL"): the judge runner's counts of scores or verdicts taken from the
  store vs computed;
- an ETA from the rate of new work only: answers from the store arrive in one burst, which
  would make rich's own estimate far too short.

Example:
    >>> with progress_bar(True) as bar:                                  # doctest: +SKIP
    ...     progress = StageProgress(bar)
    ...     advance = progress.stage("generate", "sdxl", total=40)
    ...     run_generation("sdxl", generator, requests, store, advance)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from autojudge.stages.cache import Advance

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
class _Bar:
    """One stage's bar and what its runner has reported."""

    base: str
    total: int
    tally: Any = None  # a judge runner's Counts (scores or verdicts), shown live
    what: str = ""
    completed: int = 0
    from_store: int = 0
    new: int = 0
    first_new_at: float | None = None
    new_after_first: int = 0


class StageProgress:
    """Stage bars over the progress API of `autojudge.runtime.progress` (a rich Progress,
    or `Silent`), with store/new counts and a fair ETA."""

    def __init__(self, progress: Any):
        self.progress = progress

    def stage(self, kind: str, label: str, total: int, tally: Any = None,
              what: str = "") -> Advance:
        """Open the bar "KIND LABEL" for `total` items; returns the `Advance` its runner
        calls. `tally`: a judge runner's live Counts of `what` ("scores", "verdicts")."""
        bar = _Bar(f"{kind} {label}", int(total), tally, what)
        handle = self.progress.add_task(self._describe(bar), total=total)

        def advance(n: int, from_store: int = 0) -> None:
            self._advance(handle, bar, int(n), int(from_store))

        return advance

    def _advance(self, handle: Any, bar: _Bar, n: int, from_store: int) -> None:
        self.progress.advance(handle, n)
        now = time.monotonic()
        bar.completed += n
        bar.from_store += from_store
        new = n - from_store
        if new > 0:
            if bar.first_new_at is None:
                bar.first_new_at = now  # the rate is measured from the end of the first step
            else:
                bar.new_after_first += new
            bar.new += new
        eta = None
        if bar.new_after_first and bar.first_new_at is not None and now > bar.first_new_at:
            rate = bar.new_after_first / (now - bar.first_new_at)
            eta = max(0, bar.total - bar.completed) / rate
        self.progress.update(handle, description=self._describe(bar), eta=eta, eta_at=now)

    @staticmethod
    def _describe(bar: _Bar) -> str:
        if bar.tally is not None:
            return (f"{bar.base} ({bar.what}: {bar.tally.cached} from store, "
                    f"{bar.tally.computed} new)")
        if bar.completed:
            return f"{bar.base} ({bar.from_store} from store, {bar.new} new)"
        return bar.base
