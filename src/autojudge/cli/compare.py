"""`autojudge compare RUN_DIR... [--out DIR]` (also `python -m autojudge.compare`): the
command line of pooling finished runs into one board (autojudge.sweeps.pool).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from autojudge.cli.base import command_parser
from autojudge.errors import AutojudgeError
from autojudge.sweeps.pool import CompareOptions, compare
from autojudge.sweeps.pool_jobs import image_lines

DESCRIPTION = "Pool finished runs (or a multirun's sweep folder) into one board."


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("compare", description=DESCRIPTION)
    parser.add_argument("runs", nargs="+", type=Path,
                        help="finished run folders, or a multirun's sweep folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: SWEEP_DIR/compare for one sweep folder)")
    parser.add_argument("--bootstrap", type=int, default=None,
                        help="bootstrap rounds (default: the first run's)")
    parser.add_argument("--seed", type=int, default=None, help="bootstrap seed")
    parser.add_argument("--store", default=None, help="the store the runs used (default: "
                                                       "the one their leaderboard.json names)")
    parser.add_argument("--logger", choices=("none", "wandb"), default="none",
                        help="also log the pooled board to W&B (offline by default)")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _out_dir(runs: Sequence[Path], out: Path | None) -> Path:
    from autojudge.sweeps.jobs import is_run

    if out is not None:
        if out.exists() and not out.is_dir():
            raise AutojudgeError(f"--out {out} is a file; give a folder for the pooled run")
        return out
    if len(runs) == 1 and runs[0].is_dir() and not is_run(runs[0]):
        return runs[0] / "compare"
    raise AutojudgeError("--out DIR is needed when pooling several folders (or one run); "
                         "e.g. --out runs/compare_sweep")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.bootstrap is not None and args.bootstrap < 0:
        print("error: --bootstrap must be >= 0", file=sys.stderr)
        return 2
    from autojudge.report.terminal import print_report

    try:
        from autojudge.sweeps.jobs import find_jobs

        find_jobs(args.runs)  # a missing folder is named before --out is asked for
        out = _out_dir(args.runs, args.out)
        options = CompareOptions(out, args.bootstrap, args.seed, args.store, args.logger,
                                 not args.no_report, not args.quiet)
        document = compare(args.runs, options)
    except AutojudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(document, str(out), float(document["run"]["ratings"]["confidence"]))
    info, warnings = image_lines(document["run"].get("images") or {})
    for line in info:
        print(line)
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
