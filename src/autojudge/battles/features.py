"""Per-image style features carried by a battle log: the columns `features_a.NAME` and
`features_b.NAME` (one number per battle side), or in JSONL the nested objects
`"features_a": {"NAME": value}`. A run with `ratings.control` writes them; an arena
export writes them; `rate --control` and `gate --control` read them here.

A side without a value (null, or the key absent: text_area where OCR did not read the
image) makes that battle incomplete: it is left out of the controlled fit, and said so. A
value that is not a number is bad input: one error line naming the row and column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autojudge.errors import AutojudgeError

SIDES = ("features_a", "features_b")


@dataclass(frozen=True)
class FeatureColumns:
    """Features of both sides for every battle row (NaN where missing).

    Attributes:
        xa, xb: (n, len(names)) float arrays.
        complete: (n,) rows with every feature on both sides.
    """

    xa: np.ndarray
    xb: np.ndarray
    complete: np.ndarray

    def note(self, names: Sequence[str]) -> str | None:
        """The line saying how many battles were left out, or None when none was."""
        n, kept = len(self.complete), int(self.complete.sum())
        if kept == n:
            return None
        return (f"{n - kept} of {n} battles lack {', '.join(names)} on a side and are left "
                f"out of both boards (the plain board is rated on the same {kept})")


def _flatten(df: Any) -> None:
    import pandas as pd

    for side in SIDES:
        if side in df.columns:  # nested objects -> flat columns
            nested = pd.json_normalize([v if isinstance(v, dict) else {} for v in df[side]])
            for col in nested.columns:
                df[f"{side}.{col}"] = nested[col].to_numpy()


def feature_columns(df: Any, names: Sequence[str], path: str) -> FeatureColumns:
    """Read the `names` features of both sides from a battle-log DataFrame (modified in
    place: nested objects become flat columns).

    Raises:
        AutojudgeError: a feature column absent on every row, a value that is not a
            number, or no battle with every feature on both sides.
    """
    import pandas as pd

    _flatten(df)
    wanted = [f"{side}.{n}" for n in names for side in SIDES]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise AutojudgeError(f"--control needs per-image feature columns that {path} lacks: "
                             f"{', '.join(missing)} (one number per battle side; a run writes "
                             "them with ratings.control=[...]; see docs/statistics.md)")
    out = []
    for side in SIDES:
        cols = [f"{side}.{n}" for n in names]
        raw = df[cols]
        values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        bad = np.argwhere(np.isnan(values) & raw.notna().to_numpy() | np.isinf(values))
        if len(bad):
            row, col = bad[0]
            raise AutojudgeError(f"{path}: row {row + 1}, column {cols[col]}: not a number "
                                 f"({raw[cols[col]].iloc[row]!r}); features are numbers, or "
                                 "null where an image has none")
        out.append(values)
    complete = np.isfinite(out[0]).all(axis=1) & np.isfinite(out[1]).all(axis=1)
    if len(df) and not complete.any():
        raise AutojudgeError(f"no battle in {path} has {', '.join(names)} on both sides; "
                             "--control needs at least some")
    return FeatureColumns(out[0], out[1], complete)
