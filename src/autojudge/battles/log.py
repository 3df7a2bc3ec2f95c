"""Read, validate and write battle logs (JSONL, CSV, Parquet) in the Arena convention.

One row per battle: `model_a, model_b, winner` (winner one of "model_a", "model_b",
"tie", "tie (bothbad)") plus optional `judge, prompt_id, seed, tags, score_a, score_b,
rationale, tstamp`. Every problem becomes one AutojudgeError line saying what is wrong,
where (file and row or line) and what to do.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_battle_log([{"model_a": "x", "model_b": "y", "winner": "tie"}], d / "b.jsonl")
    >>> read_battle_log(d / "b.jsonl")[["model_a", "winner"]].values.tolist()
    [['x', 'tie']]
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from autojudge.battles.rankings import KWISE, expand_rankings
from autojudge.errors import AutojudgeError
from autojudge.types import WINNERS

REQUIRED = ("model_a", "model_b", "winner")
OPTIONAL = ("judge", "prompt_id", "seed", "tags", "score_a", "score_b", "rationale", "tstamp")
_NUMERIC = ("seed", "score_a", "score_b", "tstamp")
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
            ".parquet": "parquet", ".pq": "parquet"}


def _one_line(text: Any) -> str:
    """Exception text squeezed onto one line (entry points print exactly one line)."""
    return " ".join(str(text).split())


def _format(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AutojudgeError(
            f"battle log {path}: unknown format {path.suffix!r}; use a .jsonl, .csv or "
            ".parquet file")
    return fmt


def read_battle_log(path: str | Path, judge: str | None = None, *,
                    columns: Sequence[str] | None = None,
                    preference: str = "imgsys") -> pd.DataFrame:
    """Read and validate a battle log; the format follows the file suffix.

    Args:
        path: a .jsonl/.json/.ndjson, .csv or .parquet/.pq file.
        judge: keep only rows whose `judge` column equals this.
        columns: optional columns to keep besides the required ones (None keeps all);
            lets Parquet skip columns the caller does not need.
        preference: how numbers in an imgsys `preference` column read ("imgsys": 0 =
            model_a won, 1 = model_b won, else tie; "a_score": model_a's score).

    Returns:
        DataFrame with a fresh RangeIndex; model names as str; `tags`, when present,
        holds lists of str in every format.

    Raises:
        AutojudgeError: missing/unreadable/malformed file, missing columns, empty
            values, unknown winners, self-battles, empty log, or no rows for `judge`.
    """
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise AutojudgeError(f"battle log {path} not found; check the path")
    if path.stat().st_size == 0:
        raise AutojudgeError(f"battle log {path} is empty; it needs one row per battle "
                             "with model_a, model_b and winner")
    wanted = None if columns is None else set(REQUIRED) | set(columns) | (
        {"judge"} if judge is not None else set()) | {"preference", "models", "ranks"}
    if fmt == "jsonl":
        df, where = _read_jsonl(path)
    elif fmt == "csv":
        df, where = _read_csv(path)
    else:
        df, where = _read_parquet(path, wanted)
    if wanted is not None:
        df = df[[c for c in df.columns if c in wanted]]
    # The imgsys export has `preference` instead of `winner`.
    try:
        df = normalise_vote_columns(df, preference)
    except AutojudgeError as exc:
        raise AutojudgeError(f"battle log {path}: {exc}") from None
    df, where = expand_rankings(df, path, where)  # K-wise rows -> the pairs they order
    _validate(df, path, where)
    if judge is not None:
        df = _filter_judge(df, path, judge)
    if "tags" in df.columns:
        df["tags"] = [_norm_tags(v) for v in df["tags"].tolist()]
    return df.reset_index(drop=True)


PREFERENCE_CONVENTIONS = ("imgsys", "a_score")
_TEXT = {
    "model_a": "model_a", "a": "model_a", "left": "model_a", "first": "model_a",
    "1st": "model_a", "image_a": "model_a",
    "model_b": "model_b", "b": "model_b", "right": "model_b", "second": "model_b",
    "2nd": "model_b", "image_b": "model_b",
    "tie": "tie", "draw": "tie", "equal": "tie", "both": "tie", "same": "tie",
    "tie (bothbad)": "tie (bothbad)", "bothbad": "tie (bothbad)",
    "both bad": "tie (bothbad)", "both_bad": "tie (bothbad)", "neither": "tie (bothbad)",
}


def _number_label(value: float, convention: str) -> str:
    """A numeric preference as a winner label under `convention`."""
    if convention == "imgsys":  # imgsys: 0 -> model_a, 1 -> model_b, else tie
        return {0.0: "model_a", 1.0: "model_b"}.get(value, "tie")
    label = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}.get(value)
    if label is None:
        raise ValueError(value)
    return label


def preference_to_winner(values: Sequence[Any], convention: str = "imgsys") -> list[str]:
    """Map imgsys/other preference values to Arena winner labels (the conventions are
    described, with their source, in `autojudge.battles.human_votes`).

    Args:
        values: preference values (numbers or text).
        convention: "imgsys" (0 = model_a won, 1 = model_b won, else tie) or "a_score"
            (the number is model_a's score: 1 won, 0 lost, 0.5 tie).

    Raises:
        AutojudgeError: naming the first value that is none of the known forms.
    """
    if convention not in PREFERENCE_CONVENTIONS:
        raise AutojudgeError(f"preference convention {convention!r} is unknown; use one of "
                             f"{', '.join(PREFERENCE_CONVENTIONS)}")
    out = []
    for k, v in enumerate(list(values)):
        label = None
        text = v.strip().lower() if isinstance(v, str) else None
        if text is not None:
            label = _TEXT.get(text)
        if label is None and (text is None or text):
            try:
                number = float(v)
                label = None if math.isnan(number) else _number_label(number, convention)
            except (TypeError, ValueError):
                label = None
        if label is None:
            raise AutojudgeError(
                f"preference value {v!r} (row {k + 1}) is not a known vote; use model_a/"
                "model_b/tie (or A/B, left/right), or numbers as imgsys writes them (0 = "
                "model_a won, 1 = model_b won, other = tie)")
        out.append(label)
    return out


def normalise_vote_columns(df: Any, convention: str = "imgsys") -> Any:
    """A `preference` column (imgsys export) becomes `winner` when there is none."""
    if "winner" not in df.columns and "preference" in df.columns:
        df = df.copy()
        df["winner"] = preference_to_winner(df["preference"].tolist(), convention)
    return df


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, Any]:
    """Parse JSON lines one by one so a bad line is reported by its number."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AutojudgeError(f"battle log {path} cannot be read as UTF-8 text "
                             f"({_one_line(exc)}); check the file") from None
    records, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AutojudgeError(
                f"battle log {path}, line {number}: not valid JSON ({exc.msg} at column "
                f"{exc.colno}); fix or remove that line") from None
        if not isinstance(rec, dict):
            raise AutojudgeError(
                f"battle log {path}, line {number}: expected a JSON object per line, got "
                f"{type(rec).__name__}; write one {{\"model_a\": ..., \"model_b\": ..., "
                "\"winner\": ...}} object per line")
        records.append(rec)
        lines.append(number)
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return df, lambda k: f"line {lines[k]}"


def _read_csv(path: Path) -> tuple[pd.DataFrame, Any]:
    """CSV as text (so a model named "NA" stays a name), numeric columns parsed after."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise AutojudgeError(
            f"battle log {path} is empty; write a header (model_a,model_b,winner) and one "
            "row per battle") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise AutojudgeError(f"battle log {path} is not readable CSV ({_one_line(exc)}); "
                             "fix the file") from None
    for col in _NUMERIC:
        if col in df.columns:
            df[col] = _to_number(df[col], col, path)
    for col in ("judge", "prompt_id"):
        # An empty cell is a missing id (so each such battle is its own bootstrap
        # cluster), not one shared cluster named "".
        if col in df.columns:
            df[col] = df[col].astype(object).where(df[col] != "", None)
    return df, lambda k: f"row {k + 1} (after the header)"


def _to_number(col: pd.Series, name: str, path: Path) -> pd.Series:
    """Empty cells -> NaN; any other non-number is an error naming its row."""
    text = col.astype(str).str.strip()
    out = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = out.isna() & (text != "")
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raise AutojudgeError(
            f"battle log {path}, row {k + 1} (after the header): column {name!r} holds "
            f"{text.iloc[k]!r}, not a number; fix the value or leave the cell empty")
    return out


def _read_parquet(path: Path, wanted: set[str] | None) -> tuple[pd.DataFrame, Any]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        cols = None if wanted is None else [c for c in names if c in wanted]
        df = pd.read_parquet(path, columns=cols)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise AutojudgeError(f"battle log {path} is not a readable Parquet file "
                             f"({_one_line(exc)}); rewrite it") from None
    return df, lambda k: f"row {k + 1}"


def _validate(df: pd.DataFrame, path: Path, where: Any) -> None:
    """Required columns, non-empty names, known winners, no self-battles, not empty."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing and len(df.columns) == 0:
        raise AutojudgeError(f"battle log {path} has no battles; it needs one row per "
                             "battle with model_a, model_b and winner")
    if missing:
        found = ", ".join(map(str, df.columns[:12])) or "none"
        raise AutojudgeError(
            f"battle log {path}: missing column(s) {', '.join(missing)} (found: {found}); "
            "every row needs model_a, model_b and winner")
    if len(df) == 0:
        raise AutojudgeError(f"battle log {path} has no battles; it needs one row per "
                             "battle with model_a, model_b and winner")
    for col in REQUIRED:
        values = df[col]
        empty = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            k = int(np.flatnonzero(empty)[0])
            raise AutojudgeError(f"battle log {path}, {where(k)}: empty {col}; every "
                                 "battle needs model_a, model_b and winner")
        if col != "winner":
            _check_names(values, col, path, where)
            df[col] = values.astype(str)
    _check_winners(df, path, where)
    same = (df["model_a"] == df["model_b"]).to_numpy()
    if same.any():
        k = int(np.flatnonzero(same)[0])
        raise AutojudgeError(
            f"battle log {path}, {where(k)}: model_a and model_b are both "
            f"{df['model_a'].iloc[k]!r}; a model cannot battle itself, drop that row")


def _check_names(values: pd.Series, col: str, path: Path, where: Any) -> None:
    """Model names are text without control characters (`autojudge.battles.names`): a list, an
    object or a number would be rated under its printed form, a newline splits tables."""
    from autojudge.battles.names import CONTROL, name_problem

    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        bad = [v for v in pd.unique(values) if CONTROL.search(v)]
        if not bad:
            return
        k = int(np.flatnonzero((values == bad[0]).to_numpy())[0])
    else:
        k = next(k for k, v in enumerate(values.tolist()) if not isinstance(v, str))
    raise AutojudgeError(f"battle log {path}, {where(k)}: {col} "
                         f"{name_problem(values.iloc[k])}; write every model name as plain "
                         "text")


def _check_winners(df: pd.DataFrame, path: Path, where: Any) -> None:
    bad = ~df["winner"].isin(WINNERS).to_numpy()
    if not bad.any():
        return
    seen: dict[str, str] = {}
    for k in np.flatnonzero(bad):
        value = str(df["winner"].iloc[k])
        if value not in seen:
            seen[value] = where(int(k))
        if len(seen) == 5:
            break
    listed = ", ".join(f"{v!r} ({w})" for v, w in seen.items())
    raise AutojudgeError(
        f"battle log {path}: unknown winner value(s) {listed} in {int(bad.sum())} row(s); "
        f"winner must be one of {', '.join(repr(w) for w in WINNERS)}")


def _filter_judge(df: pd.DataFrame, path: Path, judge: str) -> pd.DataFrame:
    if "judge" not in df.columns:
        raise AutojudgeError(f"battle log {path} has no judge column, so it cannot be "
                             f"filtered by judge {judge!r}; drop the judge filter")
    keep = (df["judge"].astype(str) == judge).to_numpy()
    if not keep.any():
        present = ", ".join(sorted(map(str, df["judge"].dropna().unique()))[:12])
        raise AutojudgeError(f"battle log {path} has no battles judged by {judge!r}; "
                             f"judges present: {present or 'none'}")
    return df[keep]


def _norm_tags(value: Any) -> list[str]:
    """Lists stay lists; CSV text is a JSON array or tags separated by ';' or ','."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return [str(v) for v in parsed]
        except json.JSONDecodeError:
            pass
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def _to_frame(data: pd.DataFrame | Iterable[Any]) -> pd.DataFrame:
    """DataFrame, dict rows, or objects with `to_row()` (types.Battle) -> DataFrame."""
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    rows = [r.to_row() if hasattr(r, "to_row") else dict(r) for r in data]
    return pd.DataFrame.from_records(rows)


def _json_value(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays unwrapped, NaN -> null."""
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_battle_log(data: pd.DataFrame | Iterable[Any], path: str | Path) -> None:
    """Write a battle log atomically (temp file in the same folder, then os.replace).

    Args:
        data: a DataFrame, dict rows, or `autojudge.types.Battle` objects.
        path: target; its suffix picks JSONL, CSV (tags and K-wise rows' models and
            ranks as JSON array text) or Parquet.

    Raises:
        AutojudgeError: unknown suffix or missing required columns.
    """
    path = Path(path)
    fmt = _format(path)
    df = _to_frame(data)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing and len(df) and not set(KWISE) <= set(df.columns):  # K-wise rows only
        raise AutojudgeError(f"cannot write battle log {path}: rows lack "
                             f"{', '.join(missing)}; every battle needs model_a, model_b "
                             "and winner")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _write(df, Path(tmp), fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _flat_features(df: pd.DataFrame) -> pd.DataFrame:
    """Nested per-image features -> flat `features_a.NAME` columns (CSV and Parquet have
    no per-row objects with open keys; `rate --control` reads both spellings)."""
    out = df
    for side in ("features_a", "features_b"):
        if side in df.columns:
            nested = pd.json_normalize([v if isinstance(v, dict) else {} for v in df[side]])
            nested.columns = [f"{side}.{c}" for c in nested.columns]
            out = pd.concat([out.drop(columns=[side]).reset_index(drop=True), nested], axis=1)
    return out


def _write(df: pd.DataFrame, tmp: Path, fmt: str) -> None:
    if fmt != "jsonl":
        df = _flat_features(df)
    if fmt == "parquet":
        df.to_parquet(tmp, index=False)
    elif fmt == "csv":
        out = df.copy()
        if "tags" in out.columns:
            out["tags"] = [json.dumps(_norm_tags(v)) for v in out["tags"].tolist()]
        for name in KWISE:  # JSON array text, as the reader parses it (battles.rankings)
            if name in out.columns:
                out[name] = [json.dumps(_json_value(v))
                             if isinstance(v, (list, tuple, np.ndarray)) else v
                             for v in out[name].tolist()]
        out.to_csv(tmp, index=False)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            cols = list(df.columns)
            for row in df.itertuples(index=False, name=None):
                rec = {c: _json_value(v) for c, v in zip(cols, row)}
                # a mixed log: each row keeps only its own kind's columns
                kind = KWISE if rec.get("ranks") is not None else ()
                absent = REQUIRED if kind else KWISE
                rec = {c: v for c, v in rec.items() if not (c in absent and v is None)}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
