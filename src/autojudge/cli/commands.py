"""The subcommand table of `autojudge` and its dispatch.

A subcommand is chosen only by the first argument being exactly one of these names, so
every Hydra override (`report.html=false`, `model=[a,b]`) and flag (`-m`, `--cfg job`,
`--help`) reaches the experiment as before. `run` is the experiment itself, spelled out.
"""
from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Callable, Sequence, cast


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, the `module:function` main it runs, a usage and a summary."""

    name: str
    target: str
    usage: str
    summary: str

    @property
    def module(self) -> str:
        """The module of the `python -m autojudge.NAME` alias (store: `autojudge.store`)."""
        return f"autojudge.{self.name}"


COMMANDS: tuple[Command, ...] = (
    Command("run", "autojudge.__main__:main", "[OVERRIDES...] [-m] [--cfg job]",
            "an experiment (the same as without `run`)"),
    Command("rate", "autojudge.cli.rate:main", "FILE [--bootstrap N] [--json]",
            "rate any battle log"),
    Command("gate", "autojudge.cli.gate:main", "RUN_DIR --baseline A --candidate B",
            "release gate (exit 1: worse)"),
    Command("validate", "autojudge.cli.validate:main", "judge=[ocr] [--n N]",
            "judge accuracy on known pairs"),
    Command("store", "autojudge.cli.store:main", "check|repair [--root PATH]",
            "check / mend the image store"),
    Command("report", "autojudge.report.__main__:main", "RUN_DIR",
            "rebuild report.html, plots/"),
    Command("compare", "autojudge.cli.compare:main", "RUN_DIR... [--out DIR]",
            "one board over runs / a sweep"),
    Command("arena", "autojudge.arena.__main__:main", "RUN_DIR",
            "people vote; live human board"),
)

# A bare word: never a Hydra override (those need `=` or start with `~`/`+`) nor a flag.
_BARE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def find_command(name: str) -> Command | None:
    """The subcommand called `name`, or None."""
    return next((c for c in COMMANDS if c.name == name), None)


def split_command(args: Sequence[str]) -> tuple[Command | None, list[str]]:
    """(subcommand, its arguments) when the first argument names one, else (None, args)."""
    command = find_command(args[0]) if args else None
    return (command, list(args[1:])) if command else (None, list(args))


def unknown_command(args: Sequence[str]) -> str | None:
    """A first argument that is a bare word but no subcommand (`autojudge rat x.jsonl`):
    Hydra would reject it with a grammar error; say which commands exist instead."""
    if not args or not _BARE_WORD.fullmatch(args[0]):
        return None
    names = [c.name for c in COMMANDS]
    close = difflib.get_close_matches(args[0], names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"unknown command '{args[0]}'{hint}; commands: {', '.join(names)}; or Hydra "
            "overrides (key=value) for an experiment; see autojudge --help")


def run_command(command: Command, args: Sequence[str]) -> int:
    """Run a subcommand other than `run` with `args`; returns its exit status."""
    from autojudge.cli import base

    module, _, function = command.target.partition(":")
    main = cast(Callable[[list[str]], "int | None"],
                getattr(importlib.import_module(module), function))
    base._dispatched.append(command.name)
    try:
        return int(main(list(args)) or 0)
    finally:
        base._dispatched.pop()
