"""K-wise rows in a battle log: one row ranks K >= 2 images of one prompt and seed.

    {"models": ["a", "b", "c", "d"], "ranks": [1, 3, 2, 4], "judge": "vlm",
     "prompt_id": "p1", "seed": 0}

`ranks[i]` is the rank of `models[i]`: an integer >= 1 (1 = best; equal = tie; need not
be dense) or null (unranked: below every ranked model, unordered among themselves), so
best-of-four is `[1, null, null, null]`. A judge asked twice in two slot orders logs both
calls' ranks, `[[...], [...]]` (each in `models` order): a pair the two calls order
differently is a tie, the K-wise counterpart of swap-debiasing. CSV holds both as JSON
array text; Parquet as list columns. Pairwise rows (`model_a, model_b, winner`) and K-wise
rows mix in one log.

Reading a log breaks each ranking into the pairs it orders (autojudge.ratings.rankings:
full rank breaking, docs/statistics.md "K-wise rankings"), each with the ranking's
context columns and a `ranking` column naming the source row, so every reader (rate,
gate, validate, the run's human votes) sees pairs. The pairs of one ranking are
dependent: a ranking without a prompt_id gets `ranking@<line>` as its prompt_id, so the
prompt-clustered bootstrap resamples it whole, never pair by pair. A row's `features`
(`{model: {name: value}}`, written by a run with `ratings.control`) become each pair's
`features_a` / `features_b`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from autojudge.errors import AutojudgeError

if TYPE_CHECKING:  # pandas costs seconds to import: only log readers load it
    import pandas as pd

KWISE = ("models", "ranks")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_list(value: Any, what: str, path: Path, where: str) -> list:
    """A JSON list (CSV text), a list or an array as a plain list, NaN as None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise AutojudgeError(f"battle log {path}, {where}: {what} {value[:60]!r} is not "
                                 "a JSON list; write e.g. [\"a\", \"b\"] and [1, 2]") from None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise AutojudgeError(f"battle log {path}, {where}: {what} must be a list, got "
                             f"{type(value).__name__}")
    return [None if isinstance(v, float) and math.isnan(v) else
            int(v) if isinstance(v, float) and v.is_integer() and what == "ranks" else v
            for v in value]


def expand_rankings(df: pd.DataFrame, path: Path, where: Callable[[int], str]
                    ) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """K-wise rows replaced by their broken pairs (in place of the row, in file order);
    returns the frame and a `where` that names each new row's source line."""
    from autojudge.ratings.rankings import validate_rankings

    if "ranks" not in df.columns and "models" not in df.columns:
        return df, where
    if "ranks" not in df.columns or "models" not in df.columns:
        raise AutojudgeError(f"battle log {path}: a K-wise row needs both models and ranks "
                             "(one rank per model, 1 = best, null = unranked)")
    kwise = ~(df["ranks"].map(_missing) & df["models"].map(_missing)).to_numpy()
    rows = np.flatnonzero(kwise)
    src, model_a, model_b, winner = [], [], [], []
    for k in rows:
        m = _as_list(df["models"].iat[k], "models", path, where(k))
        r = _as_list(df["ranks"].iat[k], "ranks", path, where(k))
        calls = [_as_list(c, "ranks", path, where(k)) for c in r] \
            if r and all(isinstance(c, (list, tuple, np.ndarray)) for c in r) else [r]
        try:
            for call in calls:
                validate_rankings([m], [call])
            pairs = ranking_pairs(m, calls)
        except AutojudgeError as exc:
            why = str(exc).split(": ", 1)[-1]
            raise AutojudgeError(f"battle log {path}, {where(k)}: bad ranking: {why}") from None
        for a, b, w in pairs:
            src.append(k)
            model_a.append(a)
            model_b.append(b)
            winner.append(w)
    broken = _Broken(np.array(src, dtype=np.int64), model_a, model_b, winner) \
        if len(rows) else None
    return _merge(df, kwise, broken, where)


class _Broken:
    """The pairs of a log's K-wise rows: the source row of each, and its outcome."""

    def __init__(self, src: np.ndarray, model_a: list, model_b: list, winner: list):
        self.src, self.model_a, self.model_b, self.winner = src, model_a, model_b, winner


def _merge(df: pd.DataFrame, kwise: np.ndarray, broken: Any,
           where: Callable[[int], str]) -> tuple[pd.DataFrame, Callable[[int], str]]:
    base = df.drop(columns=list(KWISE))
    source = np.flatnonzero(~kwise)
    if broken is None:
        return base.drop(columns=["features"], errors="ignore").reset_index(drop=True), where
    src = broken.src
    pairs = base.iloc[src].copy()
    for col in ("score_a", "score_b", "rationale"):  # they describe the ranking, not a pair
        if col in pairs.columns:
            pairs[col] = None
    pairs["model_a"], pairs["model_b"] = broken.model_a, broken.model_b
    pairs["winner"] = broken.winner
    if "features" in pairs.columns:  # a K-wise row's per-model features -> each side's
        by_model = [f if isinstance(f, dict) else {} for f in pairs["features"]]
        pairs["features_a"] = [f.get(m) for f, m in zip(by_model, broken.model_a)]
        pairs["features_b"] = [f.get(m) for f, m in zip(by_model, broken.model_b)]
        pairs = pairs.drop(columns=["features"])
    pairs["ranking"] = [where(int(k)) for k in src]
    no_prompt = (pairs["prompt_id"].map(_missing).to_numpy() if "prompt_id" in pairs.columns
                 else np.ones(len(pairs), dtype=bool))
    pairs["prompt_id"] = np.where(no_prompt, [f"ranking@{where(int(k))}" for k in src],
                                  pairs["prompt_id"] if "prompt_id" in pairs.columns
                                  else None)
    order = np.argsort(np.concatenate([source, src]), kind="stable")
    plain = base.drop(columns=["features"], errors="ignore").iloc[source]
    import pandas as pd

    merged = pd.concat([plain, pairs], ignore_index=True).iloc[order]
    origin = np.concatenate([source, src])[order]
    return merged.reset_index(drop=True), lambda k: where(int(origin[k]))


def expand_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's battle-log rows (as read from JSONL) with each K-wise row replaced by the
    pairs it orders (Arena-convention dicts carrying the row's context): for readers that
    take the run's own log as written (report, arena), which is valid by construction."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if "models" not in row or "ranks" not in row:
            out.append(row)
            continue
        context = {k: v for k, v in row.items() if k not in KWISE and k != "features"}
        features = row.get("features") if isinstance(row.get("features"), dict) else {}
        for a, b, winner in ranking_pairs(row["models"], row["ranks"]):
            sides = {"features_a": features[a], "features_b": features[b]} \
                if a in features and b in features else {}
            out.append({**context, "model_a": a, "model_b": b, "winner": winner, **sides})
    return out


def ranking_pairs(models: list[str], ranks: list[Any]) -> list[tuple[str, str, str]]:
    """(model_a, model_b, winner) of one K-wise row: `ranks` one call's ranks, or a list
    of two calls' ranks (a pair the calls order differently is a tie)."""
    from autojudge.ratings.rankings import break_rankings, consensus_pairs

    if ranks and all(isinstance(r, (list, tuple)) for r in ranks):
        if len(ranks) == 1:
            broken = break_rankings([models], [list(ranks[0])])
        elif len(ranks) == 2:
            broken = consensus_pairs([models], [list(ranks[0])], [list(ranks[1])])
        else:
            raise AutojudgeError(f"a K-wise row has {len(ranks)} calls' ranks; give one "
                                 "ranks list, or two (two calls in different orders)")
    else:
        broken = break_rankings([models], [list(ranks)])
    return [(str(a), str(b), str(w))
            for a, b, w in zip(broken.model_a, broken.model_b, broken.winner)]
