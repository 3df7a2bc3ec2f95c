"""`autojudge validate judge=[...] [--n N]` (also `python -m autojudge.validate`): the
command line of judge validation on controlled pairs (autojudge.experiment.validation).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from autojudge.cli.base import command_parser
from autojudge.errors import AutojudgeError
from autojudge.experiment.schema import RatingsConfig
from autojudge.experiment.validation import FAMILIES, format_table, validate
from autojudge.runtime.atomic_files import atomic_write_text


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser(
        "validate",
        description="Run judges on controlled pairs with a known better side; report accuracy "
                    "with a Wilson interval. Other arguments are Hydra overrides "
                    "(judge=[ocr], judge.clip.pretrained=...).")
    parser.add_argument("--n", type=int, default=20, help="pairs per judge and family")
    parser.add_argument("--family", action="append", choices=FAMILIES,
                        help="only these families (default: the judge's own)")
    parser.add_argument("--images", help="folder of real images (+ captions.jsonl)")
    parser.add_argument("--store", help="store root to cache judgments (default: temporary)")
    parser.add_argument("--confidence", type=float, default=RatingsConfig.confidence,
                        help=f"Wilson interval level; default {RatingsConfig.confidence:g}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--out", help="also write the JSON result to this file")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they go to stderr)")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        parser.error(f"unknown option {bad[0]}")
    try:
        rows = validate(overrides, n=args.n, families=args.family, images=args.images,
                        store_root=args.store, confidence=args.confidence,
                        show_progress=not args.no_progress)
    except AutojudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # Hydra composition errors and the like, as one line
        print(f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    document = {"n": args.n, "results": rows}
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
