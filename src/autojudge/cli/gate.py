"""`autojudge gate RUN_DIR --baseline A --candidate B` (also `python -m autojudge.gate`):
the command line of the release gate. What it decides and how is in autojudge.experiment.gate.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from autojudge.cli.base import command_parser
from autojudge.errors import AutojudgeError
from autojudge.experiment.gate import (CORRECTIONS, DEFAULT_MARGIN, MIN_ROUNDS, GateSettings,
                                       run_gate)
from autojudge.experiment.schema import GateConfig, RatingsConfig


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "gate", description="Non-inferiority release gate on a finished run: PASS (exit 0) "
                            "when the candidate is shown not worse than the baseline by more "
                            "than --margin Elo, REGRESSION (exit 1) when shown worse by more, "
                            "INCONCLUSIVE (exit 1 unless --allow-inconclusive) otherwise.")
    p.add_argument("run_dir", help="folder of a finished run (with battles.jsonl)")
    p.add_argument("--baseline", required=True, metavar="A",
                   help="the model the release is compared against (as named in the run)")
    p.add_argument("--candidate", required=True, metavar="B",
                   help="the model that must not be worse than the baseline")
    p.add_argument("--judge", action="append", default=[], metavar="J",
                   help="gate on judge J (repeatable); default every judge in the run")
    p.add_argument("--tag", action="append", default=[], metavar="T",
                   help="also gate on the battles of prompts tagged T (repeatable)")
    p.add_argument("--confidence", type=float, default=GateConfig.confidence,
                   help="level of the two-sided CI; each claim is a one-sided test at "
                        f"(1 - confidence) / 2; default {GateConfig.confidence:g}")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, metavar="ELO",
                   help="tolerated regression in Elo points; default "
                        f"{DEFAULT_MARGIN:g} (the candidate may win as little as 46.4%% of "
                        "its battles against the baseline)")
    p.add_argument("--bootstrap", type=int, default=RatingsConfig.bootstrap_rounds,
                   metavar="N", help=f"bootstrap rounds, at least {MIN_ROUNDS}; default "
                                     f"{RatingsConfig.bootstrap_rounds}")
    p.add_argument("--correction", choices=CORRECTIONS, default=GateConfig.correction.value,
                   help="family-wise error control of REGRESSION claims over the checks; "
                        "default holm")
    p.add_argument("--seed", type=int, default=0,
                   help="bootstrap seed (the same seed gives the same verdict); default 0")
    p.add_argument("--min-prompts", type=int, default=GateConfig.min_prompts, metavar="N",
                   help="fewer shared prompts than this is inconclusive; default 10")
    p.add_argument("--control", action="append", default=[], metavar="F[,F...]",
                   help="gate on style-controlled ratings: hold these per-image features "
                        "fixed (columns features_a.F / features_b.F of the run's log, "
                        "written by a run with ratings.control=[...]); repeatable or "
                        "comma-separated")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 when the data cannot decide")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = GateSettings(args.baseline, args.candidate, tuple(args.judge), tuple(args.tag),
                            args.confidence, args.margin, args.bootstrap, args.seed,
                            args.min_prompts, args.allow_inconclusive,
                            correction=args.correction,
                            control=tuple(dict.fromkeys(
                                n.strip() for v in args.control for n in v.split(",")
                                if n.strip())))
    try:
        return run_gate(args.run_dir, settings).exit_code
    except AutojudgeError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
