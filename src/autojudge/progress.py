"""Progress bars for every stage that takes more than a moment (rich), or a silent
stand-in when progress is off (`progress=false`, tests, piped JSON)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class Silent:
    """The progress API that does nothing."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def progress_bar(enabled: bool, stderr: bool = False) -> Iterator[Any]:
    """A rich progress display (on stderr when stdout carries data), or `Silent`."""
    if not enabled:
        yield Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from autojudge.stage_progress import EtaColumn  # rich's ETA unless a stage gives one

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), EtaColumn(),
                  console=Console(stderr=True) if stderr else None,
                  transient=False) as progress:
        yield progress
