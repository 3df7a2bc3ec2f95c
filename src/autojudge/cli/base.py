"""The parser base of every autojudge command.

argparse's own `error` prints the whole usage block and then the message; autojudge's
contract (README, "Exit codes") is one `error:` line that says where help is, and exit 2,
the same for every command and every spelling of it (`autojudge rate`, `autojudge-rate`,
`python -m autojudge.rate`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

#: the command `autojudge COMMAND` is running, set by `commands.run_command`; None when a
#: command module was started under its own name (console script or `python -m`)
_dispatched: list[str] = []


class Parser(argparse.ArgumentParser):
    """argparse with autojudge's usage errors: one `error:` line naming `--help`, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {' '.join(message.split())}; see {self.prog} --help\n")
        raise SystemExit(2)


def prog_for(command: str, argv0: str | None = None) -> str:
    """How the user called `command`, for usage lines and errors: `autojudge rate` after
    dispatch, `autojudge-rate` as a console script, else `python -m autojudge.rate`."""
    if _dispatched and _dispatched[-1] == command:
        return f"autojudge {command}"
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    return name if name == f"autojudge-{command}" else f"python -m autojudge.{command}"


def command_parser(command: str, description: str, **kwargs: Any) -> Parser:
    """The argument parser of subcommand `command` (the other arguments as argparse's)."""
    return Parser(prog=prog_for(command), description=description, **kwargs)
