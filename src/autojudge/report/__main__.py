"""`python -m autojudge.report RUN_DIR [--thumbnail-px N] [--max-prompts N] [--no-plots]`:
rebuild report.html (and plots/*.png) from a finished run or a `compare` output folder.

Exit 0 with the page's path, or exit 2 with one `error:` line (missing folder, not a
finished run, a damaged file), never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autojudge.cli.base import command_parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("report",
                            description="Rebuild RUN_DIR/report.html and RUN_DIR/plots/*.png "
                                        "from a finished run (or a compare output folder).")
    parser.add_argument("run_dir", type=Path, help="folder of a finished run")
    parser.add_argument("--thumbnail-px", type=_positive, default=None,
                        help="longest side of embedded images (default: the run's "
                             "report.thumbnail_px, else 160)")
    parser.add_argument("--max-prompts", type=_positive, default=None,
                        help="prompt/seed rows with image grids (default: the run's "
                             "report.max_prompts, else 100)")
    parser.add_argument("--no-plots", action="store_true", help="do not write plots/*.png")
    args = parser.parse_args(argv)
    from autojudge.errors import AutojudgeError
    from autojudge.report.html import ReportOptions, build_report
    from autojudge.report.rundata import load_run

    try:
        data = load_run(args.run_dir)
        options = ReportOptions.from_config(data.config, thumbnail_px=args.thumbnail_px,
                                            max_prompts=args.max_prompts,
                                            plots=False if args.no_plots else None)
        path = build_report(args.run_dir, options)
    except AutojudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the report in {args.run_dir}: {exc.strerror or exc}; "
              "check the folder's permissions", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
