"""Salvage a damaged store index: every row SQLite can still read goes into a fresh one.

`python -m autojudge.store repair` calls this on an index that fails SQLite's integrity
check. A damaged page costs only the rows on it: tables are read by rowid ranges, and a
range that meets damage is read again one rowid at a time, so a run after the repair
finds every generation, score and verdict that was still readable cached (nothing paid
for twice). A generation row whose image is missing or does not hash to its name is
dropped, as repair drops it from a healthy index; its image is made again by the next run.
SQLite's own `.recover` lives in the sqlite3 shell, which a machine need not have.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from autojudge.errors import AutojudgeError
from autojudge.store.index import INDEX_NAME, SCHEMA_VERSION, _SCHEMA

_TABLES = ("meta", "fingerprints", "generations", "scores", "verdicts", "rankings",
           "embeddings", "questions", "derived")
_CHUNK = 500  # rows read per query; a query that meets a damaged page is redone row by row


@dataclass
class Salvage:
    """What `salvage_index` made of a damaged index, per table."""

    kept: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)  # rowids in unreadable pages
    dropped: dict[str, int] = field(default_factory=dict)  # read, but not worth keeping


def salvage_index(damaged: Path, root: Path, blob_states: dict[str, str]) -> Salvage:
    """Copy every readable row of the index at `damaged` into a fresh `root/index.sqlite`
    (written beside it, then renamed into place). Generation rows whose image is missing
    or damaged are dropped, as repair drops them from a healthy index."""
    result = Salvage()
    fresh_path = root / f"{INDEX_NAME}.salvage-tmp"
    fresh_path.unlink(missing_ok=True)
    fresh = sqlite3.connect(fresh_path, isolation_level=None)
    try:
        fresh.executescript(_SCHEMA)
        fresh.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        try:
            source = sqlite3.connect(f"{damaged.absolute().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            source = None
        if source is not None:
            try:
                source.execute("PRAGMA cell_size_check=ON")  # see damage, not garbage rows
                image_ok = _image_check(source, root, blob_states)
                fresh.execute("BEGIN")
                for table in _TABLES:
                    _copy_table(source, fresh, table, image_ok, result)
                fresh.execute("COMMIT")
            finally:
                source.close()
        fresh.close()
        os.replace(fresh_path, root / INDEX_NAME)
    except BaseException:
        fresh.close()
        fresh_path.unlink(missing_ok=True)  # never leave half an index behind
        raise
    return result


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    """The column names of `table` in `db` ([] if it is missing or unreadable)."""
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return []


def readable_rows(db: sqlite3.Connection, table: str,
                  names: list[str]) -> Iterator[tuple[list[tuple], int]]:
    """(rows that can be read, rowids that could not), one range of rowids at a time, so
    damage costs only the pages it hit: a range that meets damage is read again one rowid
    at a time."""
    bounds = _rowid_bounds(db, table) if names else None
    if bounds is None:
        return
    select = f"SELECT {', '.join(names)} FROM {table} WHERE rowid"
    for start in range(bounds[0], bounds[1] + 1, _CHUNK):
        stop = min(start + _CHUNK - 1, bounds[1])
        try:
            yield db.execute(f"{select} BETWEEN ? AND ? ORDER BY rowid",
                             (start, stop)).fetchall(), 0
            continue
        except sqlite3.DatabaseError:
            pass
        rows, unreadable = [], 0
        for rowid in range(start, stop + 1):
            try:
                rows.extend(db.execute(f"{select} = ?", (rowid,)).fetchall())
            except sqlite3.DatabaseError:
                unreadable += 1
        yield rows, unreadable


def _rowid_bounds(db: sqlite3.Connection, table: str) -> tuple[int, int] | None:
    """The lowest and highest rowid of `table` (None when it is empty). Where the first or
    last page is damaged, the bounds come from seeking to powers of two: rows past the
    last readable one are lost with their page."""
    def one(sql: str, *args: int) -> int | None:
        return db.execute(sql, args).fetchone()[0]

    try:
        low = one(f"SELECT min(rowid) FROM {table}")
    except sqlite3.DatabaseError:
        low = 1  # SQLite numbers rows from 1 unless told otherwise
    try:
        high = one(f"SELECT max(rowid) FROM {table}")
    except sqlite3.DatabaseError:
        high = None
        for power in range(63):
            try:
                found = one(f"SELECT rowid FROM {table} WHERE rowid >= ? ORDER BY rowid "
                            f"LIMIT 1", 1 << power)
            except sqlite3.DatabaseError:
                continue
            if found is not None:
                high = max(found, (1 << (power + 1)) - 1)
    if low is None or high is None:
        return None
    return low, high


def _image_check(db: sqlite3.Connection, root: Path,
                 blob_states: dict[str, str]) -> Callable[[str, str], bool]:
    """A test of a generation row's image: its blob is there and hashes to its name."""
    from autojudge.store.blobs import open_blobs

    try:
        row = db.execute("SELECT value FROM meta WHERE key='blobs'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    try:
        blobs = open_blobs(row[0] if row else None, root)
    except AutojudgeError:
        # Unchecked rows are still safe to keep: a run hashes every image before it
        # trusts a cached row, and makes a damaged one again.
        return lambda sha, ext: True
    seen: dict[tuple[str, str], bool] = {}

    def ok(sha: str, ext: str) -> bool:
        if (sha, ext) not in seen:
            where = blobs.where(sha, ext)
            if where in blob_states:
                seen[sha, ext] = blob_states[where] == "ok"
            else:  # blobs outside root/blobs were not walked by inspect: hash them here
                got = blobs.read(sha, ext)
                seen[sha, ext] = got is not None and hashlib.sha256(got[0]).hexdigest() == sha
        return seen[sha, ext]

    return ok


def _copy_table(source: sqlite3.Connection, fresh: sqlite3.Connection, table: str,
                image_ok: Callable[[str, str], bool], result: Salvage) -> None:
    names, wanted = columns(source, table), set(columns(fresh, table))
    keep = [i for i, name in enumerate(names) if name in wanted]
    sql = (f"INSERT OR IGNORE INTO {table} ({', '.join(names[i] for i in keep)}) "
           f"VALUES ({', '.join('?' * len(keep))})")
    kept = dropped = unreadable = 0
    for rows, missed in readable_rows(source, table, names):
        unreadable += missed
        for row in rows:
            values = dict(zip(names, row))
            if table == "generations" and values.get("failure_kind") is None and not (
                    isinstance(values.get("image_sha"), str) and image_ok(
                        values["image_sha"], str(values.get("image_ext")))):
                dropped += 1  # a row naming a lost image: the next run makes it again
                continue
            try:
                kept += fresh.execute(sql, [row[i] for i in keep]).rowcount
            except sqlite3.Error:  # damage that reads as values breaking the schema
                dropped += 1
    if table != "meta":
        result.kept[table], result.unreadable[table] = kept, unreadable
        result.dropped[table] = dropped


def print_salvage(result: Salvage) -> None:
    """What was kept and what was lost, per table, for the person running repair."""
    if not any(result.kept.values()):
        print("nothing could be read from it: a fresh index is started; cached "
              "generations and scores are recomputed by the next run (stored images are "
              "kept and reused)")
        return
    print("kept every readable row in a fresh index:")
    for table, kept in result.kept.items():
        print(f"  {table}: {kept} kept, {result.unreadable[table]} unreadable (lost), "
              f"{result.dropped[table]} dropped (image missing or damaged, or a broken row)")
    if any(result.unreadable.values()) or any(result.dropped.values()):
        print("the next run recomputes only what was lost or dropped (stored images are "
              "kept and reused)")
