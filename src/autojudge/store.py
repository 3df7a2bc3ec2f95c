"""Content-addressed image blobs plus an SQLite index of generations and judge scores.

Keys are hashes of (plugin fingerprint, input), never run names, so a re-run, a resumed
run or a sweep that shares work with an earlier run computes only what is new.

Crash safety: a blob is written to a temporary file and renamed into place before the row
that points at it is committed, so after a SIGKILL the index never names a missing or
half-written image. Rows are committed per batch; a killed run loses at most the batch in
flight. SQLite runs in WAL mode with a busy timeout, so two runs may share a store.

Example:
    >>> store = Store(tmp_path)                                      # doctest: +SKIP
    >>> sha, path = store.put_blob(png_bytes)                        # doctest: +SKIP
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.types import Failure

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fingerprints (hash TEXT PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, image_sha TEXT, image_ext TEXT,
    latency_s REAL NOT NULL, cost_usd REAL NOT NULL, failure_kind TEXT,
    failure_message TEXT, retryable INTEGER NOT NULL DEFAULT 0, meta TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, image_sha TEXT NOT NULL, value REAL,
    raw TEXT NOT NULL, failure_kind TEXT, failure_message TEXT,
    retryable INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, image_a TEXT NOT NULL,
    image_b TEXT NOT NULL, winner TEXT, score_a REAL, score_b REAL, rationale TEXT NOT NULL,
    raw TEXT NOT NULL, failure_kind TEXT, failure_message TEXT,
    retryable INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    backbone TEXT NOT NULL, image_sha TEXT NOT NULL, dim INTEGER NOT NULL,
    vector BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (backbone, image_sha));
"""
# A retryable failure row may be replaced by a later attempt; anything else is final, so
# two concurrent runs that computed the same key keep the first answer.
_UPSERT = (
    "INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT(key) DO UPDATE SET {sets} "
    "WHERE {table}.retryable = 1"
)

_IMAGE_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"RIFF", "webp"), (b"GIF8", "gif"))


def image_extension(data: bytes) -> str:
    """File extension for encoded image bytes, from their magic number."""
    for magic, ext in _IMAGE_MAGIC:
        if data.startswith(magic):
            return ext
    return "bin"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@dataclass(frozen=True)
class StoredRow:
    """A row read back from the index, as a plain mapping plus its typed failure."""

    values: Mapping[str, Any]
    failure: Failure | None


class Store:
    """The on-disk cache shared by every run that points at the same root."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        try:
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            self._db = self._open_index()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise AutojudgeError(
                f"cannot open the store at {self.root} ({exc}); point store.root at a "
                f"writable folder"
            ) from exc
        self._lock = threading.RLock()

    def _open_index(self) -> sqlite3.Connection:
        # Switching a fresh database to WAL and creating its tables takes locks that SQLite
        # answers with an immediate "database is locked" (no busy wait) when two processes
        # race; an exclusive file lock makes the first open of a store one-at-a-time.
        with open(self.root / "index.lock", "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)  # released when the file closes
            db = sqlite3.connect(self.root / "index.sqlite", timeout=60.0,
                                 isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout=60000")
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                self._check_version(db)
            except BaseException:
                db.close()
                raise
        return db

    def _check_version(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        found = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        if int(found) != SCHEMA_VERSION:
            raise AutojudgeError(
                f"store {self.root} has schema {found}, this autojudge needs {SCHEMA_VERSION}; "
                f"use another store.root"
            )

    def close(self) -> None:
        self._db.close()

    # -- blobs ---------------------------------------------------------------------------

    def blob_path(self, sha: str, ext: str) -> Path:
        return self.root / "blobs" / sha[:2] / f"{sha}.{ext}"

    def put_blob(self, data: bytes) -> tuple[str, str]:
        """Store encoded image bytes; returns (sha256, extension). Idempotent."""
        sha = hashlib.sha256(data).hexdigest()
        ext = image_extension(data)
        path = self.blob_path(sha, ext)
        if not path.exists():
            atomic_write_bytes(path, data)
        return sha, ext

    def read_blob(self, sha: str, ext: str) -> bytes | None:
        """The blob's bytes, or None if it is missing or does not match its hash."""
        try:
            data = self.blob_path(sha, ext).read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None

    # -- rows ----------------------------------------------------------------------------

    def remember_fingerprint(self, fingerprint_hash: str, payload: Mapping[str, Any]) -> None:
        """Record what a fingerprint hash stands for, so the store can be audited."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO fingerprints VALUES (?, ?)",
                             (fingerprint_hash, json.dumps(payload, sort_keys=True, default=str)))

    def get_many(self, table: str, keys: Sequence[str]) -> dict[str, StoredRow]:
        """Rows for `keys` that a run may trust (retryable failures are left out)."""
        found: dict[str, StoredRow] = {}
        with self._lock:
            for chunk in _chunks(list(keys), 500):
                marks = ",".join("?" * len(chunk))
                cursor = self._db.execute(
                    f"SELECT * FROM {_table(table)} WHERE key IN ({marks}) AND retryable = 0",
                    chunk)
                names = [col[0] for col in cursor.description]
                for values in cursor:
                    row = dict(zip(names, values))
                    found[row["key"]] = StoredRow(row, _failure_of(row))
        return found

    def put_many(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert rows in one transaction (all or none, so a crash leaves no partial batch)."""
        rows = [dict(row) for row in rows]
        if not rows:
            return
        cols = list(rows[0])
        sql = _UPSERT.format(table=_table(table), cols=",".join(cols),
                             marks=",".join("?" * len(cols)),
                             sets=",".join(f"{c}=excluded.{c}" for c in cols if c != "key"))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, [[row[c] for c in cols] for row in rows])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- embeddings (shared by every judge on one CLIP backbone) -------------------------

    def get_embeddings(self, backbone: str, image_shas: Sequence[str]) -> dict[str, Any]:
        """float32 vectors (numpy) stored for (backbone fingerprint hash, image sha)."""
        import numpy as np

        found: dict[str, Any] = {}
        with self._lock:
            for chunk in _chunks(list(image_shas), 500):
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT image_sha, dim, vector FROM embeddings WHERE backbone = ? AND "
                    f"image_sha IN ({marks})", [backbone, *chunk]).fetchall()
                for sha, dim, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == dim:
                        found[sha] = vec.copy()
        return found

    def put_embeddings(self, backbone: str, vectors: Mapping[str, Any]) -> None:
        """Store float32 vectors by image sha for one backbone (first write wins)."""
        import numpy as np

        rows = []
        for sha, vec in vectors.items():
            arr = np.ascontiguousarray(vec, dtype=np.float32).ravel()
            rows.append((backbone, sha, int(arr.size), arr.tobytes(), now()))
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?, ?)",
                                     rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def count(self, table: str) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {_table(table)}").fetchone()[0]


def failure_columns(failure: Failure | None) -> dict[str, Any]:
    """The three failure columns every table shares."""
    if failure is None:
        return {"failure_kind": None, "failure_message": None, "retryable": 0}
    return {"failure_kind": failure.kind, "failure_message": failure.message,
            "retryable": int(failure.retryable)}


def now() -> float:
    return round(time.time(), 3)


def _failure_of(row: Mapping[str, Any]) -> Failure | None:
    if row.get("failure_kind") is None:
        return None
    return Failure(row["failure_kind"], row["failure_message"] or "", bool(row["retryable"]))


def _table(name: str) -> str:
    if name not in ("generations", "scores", "verdicts"):
        raise ValueError(f"unknown store table {name!r}")
    return name


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
