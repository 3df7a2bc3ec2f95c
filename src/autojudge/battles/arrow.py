"""Fast path for rating a battle log: Arrow dictionary encoding instead of Python lists.

A million-row log has a few dozen model names, four winner labels and a few thousand
prompt ids; Arrow reads the file and dictionary-encodes each column in C, so validation
and encoding touch the unique values only. Anything unusual (a missing column, an empty
name, an unknown winner, a self-battle, a file Arrow cannot parse) returns None, and the
caller falls back to `autojudge.battles.log.read_battle_log`, whose errors name the file,
the row and the fix: one reader owns the messages, this one owns the speed.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "b.csv").write_text("model_a,model_b,winner,prompt_id\\nx,y,model_a,p1\\n")
    >>> log = read_encoded(d / "b.csv")
    >>> log.battles.names, log.battles.score.tolist(), log.cluster_source
    (('x', 'y'), [1.0], 'prompt_id')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autojudge.battles.names import CONTROL
from autojudge.ratings.bradley_terry import WINNER_SCORES, Battles

_TEXT_COLUMNS = ("model_a", "model_b", "winner", "preference", "judge", "prompt_id",
                 "prompt")


@dataclass(frozen=True)
class EncodedLog:
    """Encoded battles, their cluster codes and which column the clusters came from."""

    battles: Battles
    clusters: np.ndarray | None
    cluster_source: str | None  # "prompt_id" | "prompt" | None (each battle alone)


def read_encoded(path: str | Path, judge: str | None = None,
                 preference: str = "imgsys") -> EncodedLog | None:
    """The log as encoded battles, or None when the careful reader must handle it."""
    try:
        table = _read_table(Path(path))
        if table is None or table.num_rows == 0:
            return None
        if judge is not None:
            table = _filter_judge(table, judge)
            if table is None:
                return None
        return _encode(table, preference)
    except Exception:  # noqa: BLE001 - any surprise goes to the reader with the messages
        return None


def _read_table(path: Path) -> Any:
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        wanted = [c for c in names if c in _TEXT_COLUMNS]
        # Dictionary pages come back as dictionary arrays: no million Python strings, and
        # ParquetFile (unlike read_table) does not import pyarrow.dataset and pandas.
        return pq.ParquetFile(path, read_dictionary=wanted).read(columns=wanted)
    if suffix == ".csv":
        from pyarrow import csv

        header = path.open(encoding="utf-8").readline().strip().split(",")
        wanted = [c for c in header if c in _TEXT_COLUMNS]
        # Every column as text: a model named "NA" stays a name, as in the careful reader.
        return csv.read_csv(path, convert_options=csv.ConvertOptions(
            include_columns=wanted, column_types={c: pa.string() for c in wanted},
            strings_can_be_null=False, quoted_strings_can_be_null=False))
    if suffix in (".jsonl", ".ndjson", ".json"):
        from pyarrow import json as pajson

        table = pajson.read_json(path)
        return table.select([c for c in table.column_names if c in _TEXT_COLUMNS])
    return None


def _filter_judge(table: Any, judge: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "judge" not in table.column_names:
        return None
    judge_col = table["judge"]
    if pa.types.is_dictionary(judge_col.type):
        judge_col = judge_col.cast(pa.string())
    kept = table.filter(pc.equal(judge_col.cast(pa.string()), judge))
    return kept if kept.num_rows else None


def _dictionary(column: Any) -> tuple[np.ndarray, list[Any]]:
    """(codes with -1 for nulls, unique values as text) of an Arrow column."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        if pa.types.is_dictionary(column.type):
            column = column.unify_dictionaries()
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    encoded = column if pa.types.is_dictionary(column.type) else \
        column.cast(pa.string()).dictionary_encode()
    values = encoded.dictionary.cast(pa.string()).to_pylist()
    return _index_codes(encoded.indices), values


def _index_codes(indices: Any) -> np.ndarray:
    """Dictionary indices as int64, -1 at nulls, read straight from the Arrow buffers:
    `to_numpy()` and pyarrow.compute import pandas (~0.15 s of a 1-2 s command)."""
    n, offset = len(indices), indices.offset
    validity, data = indices.buffers()[:2]
    dtype = np.dtype(f"int{indices.type.bit_width}")
    codes = np.frombuffer(data, dtype=dtype, count=offset + n)[offset:].astype(np.int64)
    if indices.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        codes[~bits[offset:offset + n].astype(bool)] = -1
    return codes


def _encode(table: Any, preference: str) -> EncodedLog | None:
    cols = table.column_names
    if "model_a" not in cols or "model_b" not in cols:
        return None
    if not (_is_text(table["model_a"].type) and _is_text(table["model_b"].type)):
        return None  # numbers, lists or objects as names: the careful reader refuses them
    a_codes, a_names = _dictionary(table["model_a"])
    b_codes, b_names = _dictionary(table["model_b"])
    if (a_codes < 0).any() or (b_codes < 0).any() or \
            any(not str(v).strip() or CONTROL.search(v) for v in a_names + b_names):
        return None
    names = sorted(set(a_names) | set(b_names))
    pos = {n: k for k, n in enumerate(names)}
    ia = np.array([pos[n] for n in a_names], dtype=np.int64)[a_codes]
    ib = np.array([pos[n] for n in b_names], dtype=np.int64)[b_codes]
    if (ia == ib).any():
        return None
    score = _scores(table, preference)
    if score is None:
        return None
    clusters, source = _clusters(table)
    return EncodedLog(Battles(tuple(names), ia, ib, score), clusters, source)


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _scores(table: Any, preference: str) -> np.ndarray | None:
    if "winner" in table.column_names:
        codes, labels = _dictionary(table["winner"])
    elif "preference" in table.column_names:
        from autojudge.battles.log import preference_to_winner  # (imports pandas)

        codes, values = _dictionary(table["preference"])
        labels = preference_to_winner(values, preference)
    else:
        return None
    lut = np.array([WINNER_SCORES.get(v, np.nan) if isinstance(v, str) else np.nan
                    for v in labels], dtype=np.float64)
    if (codes < 0).any() or np.isnan(lut).any():
        return None
    return lut[codes]


def _clusters(table: Any) -> tuple[np.ndarray | None, str | None]:
    """Cluster codes from prompt_id, else the prompt text; a missing id is a cluster of
    its own (as `ratings.bootstrap.cluster_codes` does)."""
    for col in ("prompt_id", "prompt"):
        if col not in table.column_names:
            continue
        codes, values = _dictionary(table[col])
        empty = [k for k, v in enumerate(values) if v is None or not str(v).strip()]
        missing = (codes < 0) | np.isin(codes, empty)
        if missing.all():
            continue
        if missing.any():
            codes = codes.copy()
            codes[missing] = len(values) + np.arange(int(missing.sum()))
            codes = np.unique(codes, return_inverse=True)[1]
        return codes, col
    return None, None
