"""Content-addressed image blobs plus an SQLite index of generations and judge scores.

Keys are hashes of (plugin fingerprint, input), never run names, so a re-run, a resumed
run or a sweep that shares work with an earlier run computes only what is new.

Crash safety: a blob is written to a temporary file and renamed into place before the row
that points at it is committed, so after a SIGKILL the index never names a missing or
half-written image. Rows are committed per batch; a killed run loses at most the batch in
flight. SQLite runs in WAL mode with a busy timeout, so two runs may share a store.

Trust: a blob's file name is its sha256, so a cached image is hashed once per Store (per
run) before it is trusted, and remembered by (size, mtime) after that. A damaged or missing
blob counts as not cached: its generation is made again and the file rewritten. A damaged
index, an unwritable folder or a root that is a file fails when the Store is opened, as
one AutojudgeError line that names the path and what to do (`python -m autojudge.store
check|repair`, see autojudge.store.check).

Shared storage: the blobs may live outside `root` (`Store(root, blobs="s3://bucket/p")`,
a path on a shared file system, or any fsspec URL; see autojudge.store.blobs) so that workers
on other machines read and write images, while the index stays with the one driver
that writes rows. The index records where its blobs are, so a later `Store(root)` finds
them without being told. A blob a worker wrote is adopted by the driver (`adopt_blob`)
only if it is there with the size the worker hashed, before the row naming it is
committed; it is hashed again when it changes, as any blob is.

Example:
    >>> store = Store(tmp_path)                                      # doctest: +SKIP
    >>> sha, path = store.put_blob(png_bytes)                        # doctest: +SKIP
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.atomic_files import image_extension
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
CREATE TABLE IF NOT EXISTS rankings (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, images TEXT NOT NULL, ranks TEXT,
    rationale TEXT NOT NULL, raw TEXT NOT NULL, failure_kind TEXT, failure_message TEXT,
    retryable INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    backbone TEXT NOT NULL, image_sha TEXT NOT NULL, dim INTEGER NOT NULL,
    vector BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (backbone, image_sha));
CREATE TABLE IF NOT EXISTS questions (
    key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS derived (
    key TEXT PRIMARY KEY, payload BLOB NOT NULL, created REAL NOT NULL);
"""
# A retryable failure row may be replaced by a later attempt; anything else is final, so
# two concurrent runs that computed the same key keep the first answer.
_UPSERT = (
    "INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT(key) DO UPDATE SET {sets} "
    "WHERE {table}.retryable = 1"
)

@dataclass(frozen=True)
class StoredRow:
    """A row read back from the index, as a plain mapping plus its typed failure."""

    values: Mapping[str, Any]
    failure: Failure | None


class DamagedBlobError(AutojudgeError):
    """A stored image is missing or does not hash to its name (its bytes are never used)."""


INDEX_NAME = "index.sqlite"
# What the index is made of on disk: the database, SQLite's WAL files, the open lock.
INDEX_FILES = (INDEX_NAME, f"{INDEX_NAME}-wal", f"{INDEX_NAME}-shm", "index.lock")
DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "disk image")


def store_command(root: Path, action: str = "repair") -> str:
    """The `python -m autojudge.store ACTION` line for `root`, ready to paste."""
    return f"`python -m autojudge.store {action} --root {shlex.quote(str(root))}`"


def writable(path: Path) -> bool:
    """Whether this process may write `path` (root included: access() answers as the
    kernel will, read-only mounts too), without creating anything there."""
    mode = os.W_OK | (os.X_OK if path.is_dir() else os.R_OK)
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def unwritable_error(root: Path, path: Path, what: str) -> AutojudgeError:
    return AutojudgeError(
        f"store {what} {path} is not writable by this user; make it writable "
        f"(chmod -R u+w {shlex.quote(str(root))}) or point store.root at another folder")


def index_error(root: Path, exc: BaseException) -> AutojudgeError:
    """One line for an SQLite failure: damaged index, permissions, or a busy store."""
    text = " ".join(str(exc).split())
    index = root / INDEX_NAME
    lowered = text.lower()
    if any(word in lowered for word in DAMAGE_WORDS):
        return AutojudgeError(
            f"store index {index} is damaged ({text}); run {store_command(root)}: it keeps "
            f"every row still readable in a fresh index and moves the damaged one aside "
            f"(only lost results are recomputed, images are kept)")
    if "readonly" in lowered or "unable to open" in lowered:
        return AutojudgeError(
            f"store index {index} cannot be opened for writing ({text}); make "
            f"{shlex.quote(str(root))} and its files writable or point store.root at "
            f"another folder")
    if "locked" in lowered:
        return AutojudgeError(
            f"store index {index} stayed locked by another process ({text}); wait for "
            f"the other run to finish or point store.root at another folder")
    return AutojudgeError(f"store index {index} failed ({text}); run "
                          f"{store_command(root, 'check')}")


def check_root(root: Path) -> None:
    """Raise one AutojudgeError line unless `root` can hold a store this process writes."""
    if root.exists() and not root.is_dir():
        raise AutojudgeError(f"store root {root} is a file, not a folder; move it away or "
                             f"point store.root (or AUTOJUDGE_STORE) at a folder")
    try:
        (root / "blobs").mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AutojudgeError(f"store root {root}: {root / 'blobs'} or a folder above it is "
                             f"a file, not a folder; move it away") from None
    except OSError as exc:
        raise AutojudgeError(f"cannot create the store at {root} ({exc.strerror}); create "
                             f"it writable or point store.root at a writable folder") from None
    for path, what in ((root, "root"), (root / "blobs", "blobs folder")):
        if not writable(path):
            raise unwritable_error(root, path, what)
    for name in INDEX_FILES:
        path = root / name
        if path.is_dir():
            raise AutojudgeError(f"store index file {path} is a folder; move it away")
        if path.exists() and not writable(path):
            raise unwritable_error(root, path, "index file")


class Store:
    """The on-disk cache shared by every run that points at the same root."""

    def __init__(self, root: str | Path, blobs: str | None = None):
        self.root = Path(root).expanduser()
        self._lock = threading.RLock()
        # blob location -> signature (size, mtime/ETag) of a blob this Store hashed and
        # found good (or wrote itself)
        self._verified: dict[str, Any] = {}
        check_root(self.root)
        try:
            self._db = self._open_index()
        except sqlite3.DatabaseError as exc:
            raise index_error(self.root, exc) from None
        except OSError as exc:
            raise AutojudgeError(f"cannot open the store at {self.root} ({exc}); point "
                                 f"store.root at a writable folder") from None
        self.blobs: Any = None
        self.use_blobs(blobs)

    def _open_index(self) -> sqlite3.Connection:
        # Switching a fresh database to WAL and creating its tables takes locks that SQLite
        # answers with an immediate "database is locked" (no busy wait) when two processes
        # race; an exclusive file lock makes the first open of a store one-at-a-time.
        with open(self.root / "index.lock", "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)  # released when the file closes
            db = sqlite3.connect(self.root / INDEX_NAME, timeout=60.0,
                                 isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout=60000")
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                self._check_version(db)
                # Inside the open lock too: a check racing another process's switch to
                # WAL can meet SQLite's immediate "database is locked". A damaged page
                # must fail here, before any generation work is done.
                found = db.execute("PRAGMA quick_check(1)").fetchone()[0]
                if found != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {found}")
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

    @contextmanager
    def _index_op(self) -> Iterator[None]:
        """Hold the connection lock; an SQLite failure becomes one AutojudgeError line."""
        with self._lock:
            try:
                yield
            except sqlite3.DatabaseError as exc:
                # IntegrityError/ProgrammingError are bugs here, not a damaged store.
                if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise
                raise index_error(self.root, exc) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()  # also when a stage fails: no connection is left open

    # -- blobs ---------------------------------------------------------------------------

    def use_blobs(self, location: str | None) -> None:
        """Keep images at `location` (a path or fsspec URL; None: wherever this store's
        index says, by default `<root>/blobs`). The choice is recorded in the index, so
        every later `Store(root)` (compare, arena, a resumed run) finds the images."""
        from autojudge.store.blobs import normalized_location, open_blobs

        with self._index_op():
            row = self._db.execute("SELECT value FROM meta WHERE key='blobs'").fetchone()
        recorded = row[0] if row else None
        wanted = normalized_location(location) if location else None
        if wanted and recorded and wanted != recorded:
            raise AutojudgeError(
                f"store {self.root} keeps its images at {recorded} (recorded in its index), "
                f"not {wanted}; drop store.blobs, set store.blobs={recorded}, or use "
                f"another store.root")
        try:
            blobs = open_blobs(wanted or recorded, self.root)  # one that cannot open is not recorded
        except AutojudgeError as exc:
            if wanted:
                raise
            raise AutojudgeError(f"store {self.root} keeps its images at {recorded} (recorded "
                                 f"in its index), which cannot be opened here: {exc}; or use "
                                 f"another store.root") from None
        if wanted and not recorded:
            with self._index_op():
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('blobs', ?)", (wanted,))
        self.blobs = blobs

    @property
    def blobs_location(self) -> str:
        """Where this store's images are (a folder or a URL), for workers to open."""
        return self.blobs.location

    def blob_path(self, sha: str, ext: str) -> Path:
        """The file of a blob in a local (or mounted) blobs folder; a URL store has no
        file paths: use `blob_location`."""
        if not self.blobs.local:
            raise ValueError(f"store {self.root} keeps images at {self.blobs.location}: "
                             f"use blob_location()")
        return self.blobs.path(sha, ext)

    def blob_location(self, sha: str, ext: str) -> str:
        """Where a blob is: a file path, or a URL when the blobs are behind fsspec."""
        return self.blobs.where(sha, ext)

    def put_blob(self, data: bytes) -> tuple[str, str]:
        """Store encoded image bytes; returns (sha256, extension). Idempotent.

        A file already at the blob's path is kept only if it hashes to its name; a
        truncated or altered one is replaced (atomically)."""
        sha = hashlib.sha256(data).hexdigest()
        ext = image_extension(data)
        if self.verified_blob(sha, ext) is None:
            where = self.blob_location(sha, ext)
            try:
                self._verified[where] = self.blobs.write(sha, ext, data)
            except OSError as exc:
                raise AutojudgeError(
                    f"cannot write image {where} ({getattr(exc, 'strerror', None) or exc}); "
                    f"make {shlex.quote(self.blobs.location)} writable (chmod -R u+w) or "
                    f"point store.root (store.blobs) at another folder") from None
        return sha, ext

    def adopt_blob(self, sha: str, ext: str, size: int) -> str | None:
        """A blob a worker wrote straight to shared storage: its location if it is there
        with the size the worker hashed (then trusted like a blob this Store wrote), else
        None (the caller records a retryable failure, never a row naming a missing
        image)."""
        signature = self.blobs.signature(sha, ext)
        if signature is None or signature[0] != size:
            return None
        where = self.blob_location(sha, ext)
        self._verified[where] = signature
        return where

    def read_blob(self, sha: str, ext: str) -> bytes | None:
        """The blob's bytes, or None if it is missing or does not match its hash."""
        return self._read_verified(sha, ext)

    def verified_blob(self, sha: str, ext: str) -> Path | str | None:
        """The blob's path (a URL string for fsspec blobs) if its bytes hash to `sha`,
        else None (missing or damaged).

        Each blob is hashed once per Store; later calls cost one stat() unless the file's
        size or mtime (an object's ETag) changed since (then it is hashed again)."""
        signature = self.blobs.signature(sha, ext)
        if signature is None:
            return None
        found = self.blobs.path(sha, ext) if self.blobs.local else self.blob_location(sha, ext)
        if self._verified.get(self.blob_location(sha, ext)) == signature:
            return found
        return found if self._read_verified(sha, ext) is not None else None

    def _read_verified(self, sha: str, ext: str) -> bytes | None:
        where = self.blob_location(sha, ext)
        got = self.blobs.read(sha, ext)
        if got is None:
            return None
        data, signature = got
        if hashlib.sha256(data).hexdigest() != sha:
            self._verified.pop(where, None)
            return None
        self._verified[where] = signature
        return data

    # -- rows ----------------------------------------------------------------------------

    def remember_fingerprint(self, fingerprint_hash: str, payload: Mapping[str, Any]) -> None:
        """Record what a fingerprint hash stands for, so the store can be audited."""
        with self._index_op():
            self._db.execute("INSERT OR IGNORE INTO fingerprints VALUES (?, ?)",
                             (fingerprint_hash, json.dumps(payload, sort_keys=True, default=str)))

    def get_many(self, table: str, keys: Sequence[str]) -> dict[str, StoredRow]:
        """Rows for `keys` that a run may trust (retryable failures are left out)."""
        found: dict[str, StoredRow] = {}
        with self._index_op():
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
        self._write(lambda db: db.executemany(sql, [[row[c] for c in cols] for row in rows]))

    def forget(self, table: str, keys: Sequence[str]) -> None:
        """Delete the rows for `keys` (e.g. generations whose image was found damaged)."""
        table = _table(table)

        def delete(db: sqlite3.Connection) -> None:
            for chunk in _chunks(list(keys), 500):
                db.execute(f"DELETE FROM {table} WHERE key IN ({','.join('?' * len(chunk))})",
                           chunk)

        if keys:
            self._write(delete)

    def _write(self, work: Any) -> None:
        """Run `work(connection)` in one transaction: all of it or none."""
        with self._index_op():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                work(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    # -- embeddings (shared by every judge on one CLIP backbone) -------------------------

    def get_embeddings(self, backbone: str, image_shas: Sequence[str]) -> dict[str, Any]:
        """float32 vectors (numpy) stored for (backbone fingerprint hash, image sha)."""
        import numpy as np

        found: dict[str, Any] = {}
        with self._index_op():
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
        if rows:
            self._write(lambda db: db.executemany(
                "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows))

    # -- derived payloads: LLM questions; charts, thumbnails and ratings (derived) -----
    def get_payloads(self, table: str, keys: Sequence[str]) -> dict[str, Any]:
        """key -> payload stored in `table` ("questions" or "derived")."""
        found: dict[str, Any] = {}
        with self._index_op():
            for chunk in _chunks(list(keys), 500):
                found.update(self._db.execute(
                    f"SELECT key, payload FROM {_table(table, _PAYLOAD_TABLES)} WHERE key IN "
                    f"({','.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def put_payloads(self, table: str, payloads: Mapping[str, Any]) -> None:
        """Store payloads by key (first write wins, as for embeddings)."""
        rows = [(key, value, now()) for key, value in payloads.items()]
        if rows:
            self._write(lambda db: db.executemany(
                f"INSERT OR IGNORE INTO {_table(table, _PAYLOAD_TABLES)} VALUES (?, ?, ?)", rows))

    def get_questions(self, key: str) -> str | None:
        """The JSON payload stored under `key` (autojudge.judges.question_llm), or None."""
        return self.get_payloads("questions", [key]).get(key)

    def put_questions(self, key: str, payload: str) -> None:
        self.put_payloads("questions", {key: payload})

    def count(self, table: str) -> int:
        with self._index_op():
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


_PAYLOAD_TABLES = ("questions", "derived")


def _table(name: str, known: tuple = ("generations", "scores", "verdicts", "rankings")) -> str:
    if name not in known:
        raise ValueError(f"unknown store table {name!r}")
    return name


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
