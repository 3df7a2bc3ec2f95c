"""`autojudge store check|repair [--root PATH]` (also `python -m autojudge.store`): the
command line of the store check and repair (autojudge.store.check).
"""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Sequence

from autojudge.cli.base import command_parser
from autojudge.errors import AutojudgeError
from autojudge.store.check import check, default_root, repair, root_problem


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m autojudge.store`; returns the exit status."""
    parser = command_parser(
        "store", description="Check or repair an autojudge store. Run it only while no "
                             "autojudge run uses the store.")
    parser.add_argument("action", choices=("check", "repair"),
                        help="check: report damage (exit 1 if any); repair: mend it")
    parser.add_argument("--root", help="the store folder (default: store.root, i.e. "
                                       "AUTOJUDGE_STORE or ~/.cache/autojudge)")
    args = parser.parse_args(argv)
    # Absolute, so the repair command it prints works from any folder.
    root = (Path(args.root).expanduser() if args.root else default_root()).absolute()
    problem = root_problem(root)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return check(root) if args.action == "check" else repair(root)
    except (AutojudgeError, OSError, sqlite3.Error) as exc:
        print(f"error: store {root}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
