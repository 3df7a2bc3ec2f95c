"""Progress bars for every stage that takes more than a moment (rich), or a silent
stand-in when progress is off (`progress=false`, tests, piped JSON).

While the bars are live, a log handler writing straight to the terminal would print under
rich's cursor: the line lands inside a bar and rich, miscounting the lines it drew,
draws the finished bars again. So for that time console logging goes through rich
(warnings and errors above the bars; the stage lines the bars already show go to the
log file only).
"""
from __future__ import annotations

import logging
import sys
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

    from autojudge.stages.stage_progress import EtaColumn  # rich's ETA unless a stage gives one

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), EtaColumn(),
                  console=Console(stderr=True) if stderr else None,
                  transient=False) as progress, logs_through(progress.console):
        yield progress


def _is_console_handler(handler: logging.Handler) -> bool:
    """A handler that writes to this process's terminal streams (Hydra's `console`)."""
    streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    return (isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
            and any(handler.stream is s for s in streams if s is not None))


@contextmanager
def logs_through(console: Any, level: int = logging.WARNING) -> Iterator[None]:
    """Swap the root logger's console handlers for one `RichHandler` on `console` (records
    of `level` and above) until the block ends; file handlers are left alone."""
    root = logging.getLogger()
    swapped = [h for h in root.handlers if _is_console_handler(h)]
    if not swapped:
        yield
        return
    from rich.logging import RichHandler

    rich_handler = RichHandler(console=console, show_time=False, show_path=False,
                               markup=False, rich_tracebacks=False)
    rich_handler.setLevel(max(level, min(h.level for h in swapped)))
    for handler in swapped:
        root.removeHandler(handler)
    root.addHandler(rich_handler)
    try:
        yield
    finally:
        root.removeHandler(rich_handler)
        for handler in swapped:
            root.addHandler(handler)


def to_log_file(message: str, level: int = logging.INFO, name: str = "autojudge") -> None:
    """One record for the run's log file(s) only: for a fact the console already shows in
    its own words (a `note:` line, the resume hint), so the terminal says it once."""
    record = logging.getLogger(name).makeRecord(name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)
