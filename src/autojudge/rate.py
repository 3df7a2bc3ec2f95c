"""`python -m autojudge.rate FILE`: rate any battle log and print the leaderboard.

    python -m autojudge.rate battles.parquet --bootstrap 1000 --seed 0
    python -m autojudge.rate battles.jsonl --judge ocr --anchor sdxl --json

Bradley-Terry ratings with prompt-clustered bootstrap CIs (clusters = `prompt_id` when
the log has it), CI-aware ranks and online Elo. `--json` prints `{"models": [...]}` with
the board keys of leaderboard.json. Bad input prints one `error: ...` line, exit 2.

Heavy imports (pandas, pyarrow, scipy, rich) happen inside `main`, so importing this
module stays cheap.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one `error:` line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message}; see --help\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = _Parser(prog="python -m autojudge.rate",
                description="Rate a battle log (JSONL, CSV or Parquet) with Bradley-Terry "
                            "ratings, bootstrap CIs and online Elo.")
    p.add_argument("file", help="battle log: .jsonl, .csv or .parquet")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap rounds for the CI (0: no CI); default 1000")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed; default 0")
    p.add_argument("--json", action="store_true", help='print {"models": [...]} as JSON')
    p.add_argument("--judge", metavar="J", help="rate only battles judged by J")
    p.add_argument("--anchor", metavar="MODEL", help="pin MODEL at 1000 instead of the mean")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level; default 0.95")
    p.add_argument("--prior", type=float, default=None,
                   help="BT prior precision on log-strengths; default 0.1")
    return p


def rate_file(args: argparse.Namespace) -> list[dict]:
    """Read, filter and rate the log named by parsed `args`."""
    from autojudge.battle_log import read_battle_log
    from autojudge.ratings import DEFAULT_PRIOR, RatingConfig, rate_battles

    if args.bootstrap < 0:
        raise AutojudgeError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    df = read_battle_log(args.file, judge=args.judge, columns=("prompt_id",))
    config = RatingConfig(bootstrap_rounds=args.bootstrap, seed=args.seed,
                          confidence=args.confidence, anchor=args.anchor,
                          prior=DEFAULT_PRIOR if args.prior is None else args.prior)
    clusters = df["prompt_id"] if "prompt_id" in df.columns else None
    return rate_battles(df["model_a"], df["model_b"], df["winner"], clusters, config=config)


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    """A rich table: model, rating, CI, rank, elo, battles, W/L/T."""
    from rich.console import Console
    from rich.table import Table

    level = f"{100 * args.confidence:g}% CI"
    n = sum(r["battles"] for r in rows) // 2
    title = f"{Path(args.file).name}: {n} battle{'s' if n != 1 else ''}" + (f", judge {args.judge}" if args.judge else "")
    table = Table(title=title, caption=f"Bradley-Terry; CI from {args.bootstrap} "
                                       f"prompt-clustered bootstrap rounds, seed {args.seed}")
    for name, justify in [("rank", "right"), ("model", "left"), ("rating", "right"),
                          (level, "right"), ("elo", "right"), ("battles", "right"),
                          ("W/L/T", "right")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["rank"]), r["model"], f"{r['rating']:.1f}",
                      f"{r['ci_low']:.1f} .. {r['ci_high']:.1f}", f"{r['elo']:.1f}",
                      str(r["battles"]), f"{r['wins']}/{r['losses']}/{r['ties']}")
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input)."""
    args: Any = build_parser().parse_args(argv)
    try:
        rows = rate_file(args)
    except AutojudgeError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps({"models": rows}, indent=2) + "\n")
    else:
        print_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
