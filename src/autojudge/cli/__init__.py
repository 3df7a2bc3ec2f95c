"""One command line: `autojudge COMMAND ...` and the parser base every command shares.

    autojudge [run] [OVERRIDES...]     an experiment (Hydra overrides, -m, --cfg job, ...)
    autojudge rate|gate|validate|store|report|compare|arena ...

`base` holds the parser base (a usage error is one `error:` line and exit 2), `commands`
the subcommand table and its dispatch, `help` the help page, `checks` the one-line checks
of overrides before Hydra composes; `rate`, `gate`, `validate`, `store` and `compare` each
hold one command's arguments and hand the work to the package that does it. The older spellings stay as aliases: the console
scripts `autojudge-rate`, ... and `python -m autojudge.rate`, ... run the same `main`.
Only the standard library is imported here: `autojudge --help` must stay fast.
"""
from __future__ import annotations

from autojudge.cli.base import Parser, command_parser
from autojudge.cli.commands import COMMANDS, Command, find_command, run_command, split_command

__all__ = ["COMMANDS", "Command", "Parser", "command_parser", "find_command", "run_command",
           "split_command"]
