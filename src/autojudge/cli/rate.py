"""`python -m autojudge.rate FILE`: rate any battle log and print the leaderboard.

    python -m autojudge.rate battles.parquet --bootstrap 1000 --seed 0
    python -m autojudge.rate battles.jsonl --judge ocr --anchor sdxl --json
    python -m autojudge.rate imgsys_export.parquet            # imgsys `preference` votes

Bradley-Terry ratings with prompt-clustered bootstrap CIs, CI-aware ranks and online
Elo, with the board semantics of `autojudge.ratings.boards` (components, open sides for
separated models, no rating without battles). Clusters are `prompt_id` when the log has
it, else the `prompt` text (imgsys exports), else single battles; the caption says which.
`--json` prints `{"models": [...], "connected": ..., ...}` with the board keys of
leaderboard.json. Bad input prints one `error: ...` line, exit 2.

Heavy imports (pandas, scipy, rich) happen inside `main`, so importing this module stays
cheap; a large log is read and encoded by Arrow (`autojudge.battles.arrow`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from autojudge.cli.base import command_parser
from autojudge.experiment.schema import RatingsConfig
from autojudge.errors import AutojudgeError

PREFERENCES = ("imgsys", "a_score")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = command_parser("rate", description="Rate a battle log (JSONL, CSV or Parquet) with "
                                           "Bradley-Terry ratings, bootstrap CIs and online "
                                           "Elo.")
    p.add_argument("file", help="battle log: .jsonl, .csv or .parquet")
    # the defaults of the run's `ratings` settings: one home (config.RatingsConfig)
    p.add_argument("--bootstrap", type=int, default=RatingsConfig.bootstrap_rounds,
                   metavar="N", help="bootstrap rounds for the CI (0: no CI and no rank); "
                                     f"default {RatingsConfig.bootstrap_rounds}")
    p.add_argument("--seed", type=int, default=RatingsConfig.seed,
                   help=f"bootstrap seed; default {RatingsConfig.seed}")
    p.add_argument("--json", action="store_true", help='print {"models": [...]} as JSON')
    p.add_argument("--judge", metavar="J", help="rate only battles judged by J")
    p.add_argument("--anchor", metavar="MODEL", help="pin MODEL at 1000 instead of the mean")
    p.add_argument("--confidence", type=float, default=RatingsConfig.confidence,
                   help=f"CI level; default {RatingsConfig.confidence:g}")
    p.add_argument("--prior", type=float, default=None,
                   help="BT prior precision on log-strengths; default 0.1")
    p.add_argument("--preference", choices=PREFERENCES, default="imgsys",
                   help="how numbers in an imgsys `preference` column read: imgsys (0 = "
                        "model_a won, 1 = model_b won, other = tie; imgsys' own rating "
                        "code) or a_score (model_a's score: 1 won, 0 lost); default imgsys")
    p.add_argument("--control", action="append", default=[], metavar="FEATURE",
                   help="also print a style-controlled board and what the judge rewards: "
                        "FEATURE is a per-image feature of the log (columns "
                        "features_a.FEATURE and features_b.FEATURE; repeatable or "
                        "comma-separated); see docs/statistics.md")
    p.add_argument("--timings", action="store_true",
                   help="print where the time went (read+encode, rating) to stderr")
    return p


def rating_config(args: argparse.Namespace) -> Any:
    """The validated RatingConfig for parsed `args` (bad values: one-line error)."""
    from autojudge.ratings import DEFAULT_PRIOR, RatingConfig

    if args.bootstrap < 0:
        raise AutojudgeError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    config = RatingConfig(bootstrap_rounds=args.bootstrap, seed=args.seed,
                          confidence=args.confidence, anchor=args.anchor,
                          prior=DEFAULT_PRIOR if args.prior is None else args.prior)
    try:
        config.validate()
    except AutojudgeError as exc:
        flag = str(exc).split("rating setting: ", 1)[-1]
        raise AutojudgeError(f"--{flag.split()[0].replace('_', '-')}"
                             f"{flag[len(flag.split()[0]):]}") from None
    return config


def read_log(args: argparse.Namespace) -> Any:
    """The log as `autojudge.battles.arrow.EncodedLog`: Arrow's fast path, else the careful reader
    (which raises the one-line errors)."""
    from autojudge.battles.arrow import EncodedLog, read_encoded

    fast = read_encoded(args.file, args.judge, args.preference)
    if fast is not None:
        return fast
    from autojudge.battles.log import read_battle_log
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles

    df = read_battle_log(args.file, judge=args.judge, columns=("prompt_id", "prompt"),
                         preference=args.preference)
    battles = encode_battles(df["model_a"], df["model_b"], df["winner"])
    for col in ("prompt_id", "prompt"):
        if col in df.columns and df[col].notna().any():
            return EncodedLog(battles, cluster_codes(df[col], len(df)), col)
    return EncodedLog(battles, None, None)


def control_names(args: argparse.Namespace) -> list[str]:
    """The --control features, in order, once each."""
    names = [n.strip() for value in args.control for n in value.split(",") if n.strip()]
    return list(dict.fromkeys(names))


def rate_controlled(args: argparse.Namespace, config: Any) -> tuple[list[dict], Any, dict]:
    """The plain board and the style-controlled one, both on the battles that carry every
    --control feature on both sides (the careful reader reads the feature columns with
    the battles)."""
    from autojudge.battles.arrow import EncodedLog
    from autojudge.battles.features import feature_columns
    from autojudge.battles.log import read_battle_log
    from autojudge.ratings import rate_encoded
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.style_control import controlled_board

    names = control_names(args)
    df = read_battle_log(args.file, judge=args.judge, preference=args.preference)
    columns = feature_columns(df, names, args.file)
    keep = columns.complete
    df = df[keep].reset_index(drop=True)
    battles = encode_battles(df["model_a"], df["model_b"], df["winner"])
    log = EncodedLog(battles, None, None)
    for col in ("prompt_id", "prompt"):
        if col in df.columns and df[col].notna().any():
            log = EncodedLog(battles, cluster_codes(df[col], len(df)), col)
            break
    rows = rate_encoded(battles, log.clusters, config)
    controlled = controlled_board(rows, battles.names, battles.ia, battles.ib, battles.score,
                                  columns.xa[keep], columns.xb[keep], names, log.clusters,
                                  config)
    controlled["left_out"] = columns.note(names)
    return rows, log, controlled


def rate_file(args: argparse.Namespace) -> tuple[list[dict], Any, dict[str, float]]:
    """Read, filter and rate the log named by parsed `args`.

    Returns:
        (board rows, the encoded log, seconds spent per step).
    """
    from autojudge.ratings import rate_encoded

    config = rating_config(args)
    t0 = time.perf_counter()
    if control_names(args):
        rows, log, args.controlled = rate_controlled(args, config)
        return rows, log, {"rate_s": time.perf_counter() - t0}
    log = read_log(args)
    t1 = time.perf_counter()
    rows = rate_encoded(log.battles, log.clusters, config)
    return rows, log, {"read_encode_s": t1 - t0, "rate_s": time.perf_counter() - t1}


def caption(args: argparse.Namespace, source: str | None) -> str:
    """What the CI is: rounds, what was resampled, seed."""
    if args.bootstrap == 0:
        return "Bradley-Terry; no CI (--bootstrap 0), so no rank"
    unit = {"prompt_id": "prompt-clustered (prompt_id)",
            "prompt": "prompt-clustered (prompt text)"}.get(
        source, "single-battle (no prompt_id or prompt column: battles resampled alone)")
    return f"Bradley-Terry; CI from {args.bootstrap} {unit} bootstrap rounds, seed {args.seed}"


def print_table(rows: list[dict], args: argparse.Namespace, source: str | None) -> None:
    """A rich table: rank, model, rating, CI, elo, battles, W/L/T, with the run table's
    markers and notes (separated, groups, unrated)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from autojudge.ratings import board_structure
    from autojudge.report.terminal import footnotes, rating_cells

    level = f"{100 * args.confidence:g}% CI"
    n = sum(r["battles"] for r in rows) // 2
    title = f"{Path(args.file).name}: {n} battle{'s' if n != 1 else ''}" + (
        f", judge {args.judge}" if args.judge else "")
    board = {**board_structure(rows), "models": rows}
    if not board["connected"]:
        title += (f"  NOT CONNECTED: {board['n_components']} groups never linked by battles; "
                  "ratings and ranks compare only within a group")
    table = Table(title=escape(title), caption=escape(caption(args, source) or ""))
    for name, justify in [("rank", "right"), ("model", "left"), ("rating", "right"),
                          (level, "right"), ("elo", "right"), ("battles", "right"),
                          ("W/L/T", "right")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        elo = "-" if r["elo"] is None else f"{r['elo']:.1f}"
        table.add_row(*rating_cells(r, not board["connected"]), elo, str(r["battles"]),
                      f"{r['wins']}/{r['losses']}/{r['ties']}")
    console = Console()
    console.print(table)
    for note in footnotes([board]):
        console.print(note, markup=False)  # "[gN]" is text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input)."""
    args: Any = build_parser().parse_args(argv)
    try:
        rows, log, timings = rate_file(args)
    except AutojudgeError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 2
    if args.json:
        from autojudge.ratings import board_structure

        doc = {"models": rows, **board_structure(rows), "cluster": log.cluster_source,
               "bootstrap_rounds": args.bootstrap, "seed": args.seed}
        if control_names(args):
            doc["controlled"] = args.controlled
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print_table(rows, args, log.cluster_source)
        if control_names(args):
            from autojudge.report.terminal import print_controlled

            print_controlled(args.controlled, f"{100 * args.confidence:g}% CI")
    if args.timings:
        sys.stderr.write("timings: " + ", ".join(f"{k} {v:.3f}" for k, v in timings.items())
                         + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
