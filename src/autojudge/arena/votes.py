"""The arena's votes: an append-only SQLite table in WAL mode beside the run.

One row per accepted vote, never updated or deleted (triggers refuse both, so a bug
cannot rewrite history): when, which voter session, the pair token, which model was
shown on which side, the prompt and seed, the choice and the winner in the Arena
convention (model_a = the left image). A K-wise vote (`--k K`) is a row of its own
table, `ranking_votes` (created beside `votes` in an older database): the models and
images in the order shown and their ranks (1 = best, null = unranked). `export` writes
them as the human judge's battle log (K-wise rows as `autojudge.battles.rankings` reads
them) (`autojudge.battles.log.write_battle_log`), which `python -m autojudge
human_votes.path=...` and `python -m autojudge.rate` read.

Durability: a vote is committed with `synchronous=FULL` (fsync) before the voter is
answered, so a vote that got a 2xx survives a crash of the server or of the machine.
An fsync takes milliseconds, so `VoteWriter` commits from a thread (the event loop keeps
serving) and groups the votes that arrive meanwhile into one transaction (one fsync for
all of them: group commit). The batch is one multi-row INSERT in autocommit mode (one
statement is one atomic, durable transaction): every SQLite call gives up the GIL and
must win it back from a busy event loop (up to the interpreter's switch interval each),
so one call per batch, not one per vote, keeps a commit's wait short under load. The
vote's handler looks for its result at its next turns of the event loop (`_LOOKS`)
rather than waiting two more turns for the future's callbacks.

Example:
    >>> store = VoteStore(tmp_path / "votes.sqlite")                 # doctest: +SKIP
    >>> store.append(Vote(...)); store.count()                       # doctest: +SKIP
    1
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from autojudge.arena.writer import VoteWriter  # noqa: F401  (its home before writer.py)
from autojudge.errors import AutojudgeError

CHOICES = {"left": "model_a", "right": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tstamp REAL NOT NULL,          -- unix time the vote was stored
    session TEXT NOT NULL,         -- voter session id (the arena cookie)
    token TEXT NOT NULL UNIQUE,    -- the pair token voted on (single use)
    issued REAL NOT NULL,          -- when the pair was issued to the session
    prompt_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER,
    tags TEXT NOT NULL,            -- JSON list
    model_left TEXT NOT NULL,      -- shown order: left image's model ...
    model_right TEXT NOT NULL,     -- ... and right image's model
    image_left TEXT NOT NULL,      -- sha256 of the images shown
    image_right TEXT NOT NULL,
    choice TEXT NOT NULL,          -- left | right | tie | bothbad
    winner TEXT NOT NULL           -- model_a | model_b | tie | tie (bothbad); model_a = left
);
CREATE TRIGGER IF NOT EXISTS votes_no_update BEFORE UPDATE ON votes
    BEGIN SELECT RAISE(ABORT, 'arena votes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS votes_no_delete BEFORE DELETE ON votes
    BEGIN SELECT RAISE(ABORT, 'arena votes are append-only'); END;
CREATE TABLE IF NOT EXISTS ranking_votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tstamp REAL NOT NULL,
    session TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,    -- the group token voted on (single use)
    issued REAL NOT NULL,
    prompt_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER,
    tags TEXT NOT NULL,            -- JSON list
    models TEXT NOT NULL,          -- JSON list, in the order shown (slot 0 first)
    images TEXT NOT NULL,          -- JSON list of the images' sha256, same order
    ranks TEXT NOT NULL,           -- JSON list, same order: 1 = best, null = unranked
    choice TEXT NOT NULL           -- best | order | tie
);
CREATE TRIGGER IF NOT EXISTS ranking_votes_no_update BEFORE UPDATE ON ranking_votes
    BEGIN SELECT RAISE(ABORT, 'arena votes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS ranking_votes_no_delete BEFORE DELETE ON ranking_votes
    BEGIN SELECT RAISE(ABORT, 'arena votes are append-only'); END;
"""


_COLUMNS = ("tstamp", "session", "token", "issued", "prompt_id", "prompt", "seed", "tags",
            "model_left", "model_right", "image_left", "image_right", "choice", "winner")
_INSERT = (f"INSERT INTO votes ({','.join(_COLUMNS)}) "
           f"VALUES ({','.join('?' * len(_COLUMNS))})")
_RANKING_COLUMNS = ("tstamp", "session", "token", "issued", "prompt_id", "prompt", "seed",
                    "tags", "models", "images", "ranks", "choice")
_INSERT_RANKING = (f"INSERT INTO ranking_votes ({','.join(_RANKING_COLUMNS)}) "
                   f"VALUES ({','.join('?' * len(_RANKING_COLUMNS))})")
_JSON_COLUMNS = ("tags", "models", "images", "ranks")
# rows per multi-row INSERT: 14 values a row stays far below SQLite's 32766 parameters
_ROWS_PER_STATEMENT = 256


@dataclass(frozen=True)
class Vote:
    """One accepted vote, as stored."""

    tstamp: float
    session: str
    token: str
    issued: float
    prompt_id: str
    prompt: str
    seed: int | None
    tags: tuple[str, ...]
    model_left: str
    model_right: str
    image_left: str
    image_right: str
    choice: str

    @property
    def winner(self) -> str:
        return CHOICES[self.choice]


@dataclass(frozen=True)
class RankingVote:
    """One accepted K-wise vote, as stored: `models`, `images` and `ranks` in the order
    shown; `choice` is how it was cast (best, order, tie)."""

    tstamp: float
    session: str
    token: str
    issued: float
    prompt_id: str
    prompt: str
    seed: int | None
    tags: tuple[str, ...]
    models: tuple[str, ...]
    images: tuple[str, ...]
    ranks: tuple[int | None, ...]
    choice: str


def _row(vote: Vote) -> dict[str, Any]:
    row = asdict(vote)
    row["tags"] = json.dumps(list(vote.tags))
    row["winner"] = vote.winner
    return row


def _insert(vote: Vote | RankingVote) -> tuple[str, list[Any]]:
    """The INSERT statement of a vote's table and its values."""
    if isinstance(vote, RankingVote):
        row = asdict(vote)
        for name in _JSON_COLUMNS:
            row[name] = json.dumps(list(row[name]))
        return _INSERT_RANKING, [row[c] for c in _RANKING_COLUMNS]
    row = _row(vote)
    return _INSERT, [row[c] for c in _COLUMNS]


def _statements(votes: Sequence[Vote | RankingVote]
                ) -> list[tuple[str, list[Any], list[int]]]:
    """Multi-row INSERTs for `votes`: (statement, values, the votes' positions), one per
    table and at most _ROWS_PER_STATEMENT rows each."""
    tables: dict[str, tuple[list[list[Any]], list[int]]] = {}
    for k, vote in enumerate(votes):
        statement, values = _insert(vote)
        rows, where = tables.setdefault(statement, ([], []))
        rows.append(values)
        where.append(k)
    out = []
    for statement, (rows, where) in tables.items():
        head, _, one = statement.partition(" VALUES ")
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start:start + _ROWS_PER_STATEMENT]
            out.append((f"{head} VALUES {','.join([one] * len(chunk))}",
                        [value for row in chunk for value in row],
                        where[start:start + _ROWS_PER_STATEMENT]))
    return out


def default_votes_path(runs: Sequence[str | Path]) -> Path:
    """`<first folder given>/arena/votes.sqlite` (a sweep folder keeps one for all runs)."""
    return Path(runs[0]).expanduser() / "arena" / "votes.sqlite"


def voter_id(session: str) -> str:
    """A stable pseudonym of a session for exports (the cookie itself stays private)."""
    return hashlib.sha256(session.encode()).hexdigest()[:16]


class VoteStore:
    """Appends votes to `path` (created with its folder) and reads them back."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if readonly:
                uri = f"file:{self.path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                           check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                           check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("SELECT COUNT(*) FROM votes").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise AutojudgeError(f"votes database {self.path} cannot be opened "
                                 f"({' '.join(str(exc).split())}); check the path, or pass "
                                 "--votes with another file") from None

    def append(self, vote: Vote | RankingVote) -> int:
        """Store one vote (its own committed transaction); returns its row id.

        Raises:
            sqlite3.IntegrityError: the token was already voted on.
        """
        result = self.append_many([vote])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def append_many(self, votes: Sequence[Vote | RankingVote]
                    ) -> list[int | BaseException]:
        """Store votes in one transaction (one fsync); per vote its row id, or the
        IntegrityError that refused it alone (the others are stored).

        Raises:
            sqlite3.Error: the transaction failed: none of them is stored.
        """
        if not votes:
            return []
        with self._lock:
            try:
                return self._append_together(votes)
            except sqlite3.IntegrityError:
                pass  # one of them is refused (a replayed token): store the others alone
            return self._append_each(votes)

    def _append_together(self, votes: Sequence[Vote | RankingVote]) -> list[int | BaseException]:
        """All of `votes` in one transaction of few statements, or none of them."""
        statements = _statements(votes)
        out: list[int | BaseException] = [0] * len(votes)
        # a lone statement commits itself (autocommit): one SQLite call for the batch
        explicit = len(statements) > 1
        if explicit:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement, values, where in statements:
                # one statement holds the write lock: its rows take consecutive ids
                last = int(self._db.execute(statement, values).lastrowid)
                for offset, k in enumerate(where):
                    out[k] = last - len(where) + 1 + offset
            if explicit:
                self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return out

    def _append_each(self, votes: Sequence[Vote | RankingVote]) -> list[int | BaseException]:
        """One statement per vote in one transaction: a refused vote refuses itself only."""
        out: list[int | BaseException] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for vote in votes:
                try:  # a constraint failure aborts the statement, not the transaction
                    cursor = self._db.execute(*_insert(vote))
                    out.append(int(cursor.lastrowid))
                except sqlite3.IntegrityError as exc:
                    out.append(exc)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return out

    def count(self) -> int:
        """Votes stored, pairwise and K-wise."""
        with self._lock:
            n = int(self._db.execute("SELECT COUNT(*) FROM votes").fetchone()[0])
        return n + len(self.ranking_rows())

    def ranking_rows(self) -> list[dict[str, Any]]:
        """Every K-wise vote in the order it was cast (none in a database from before
        K-wise votes, opened read-only so the table was not added)."""
        with self._lock:
            found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                     "AND name = 'ranking_votes'").fetchone()
            if found is None:
                return []
            cursor = self._db.execute("SELECT * FROM ranking_votes ORDER BY id")
            names = [c[0] for c in cursor.description]
            fetched = cursor.fetchall()
        rows = []
        for values in fetched:
            row = dict(zip(names, values))
            for name in _JSON_COLUMNS:
                row[name] = tuple(json.loads(row[name]))
            rows.append(row)
        return rows

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every vote in the order it was cast."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM votes ORDER BY id")
            names = [c[0] for c in cursor.description]
            fetched = cursor.fetchall()
        for values in fetched:
            row = dict(zip(names, values))
            row["tags"] = tuple(json.loads(row["tags"]))
            yield row

    def battle_rows(self, features: Callable[[set], dict] | None = None
                    ) -> list[dict[str, Any]]:
        """The votes as the human judge's battle log (Arena convention, model_a = left;
        a K-wise vote as a K-wise row: `models` and `ranks` in the order shown).
        `features`: shas -> {sha: {feature: value}}; each vote whose two images have
        features then carries them (`features_a`, `features_b`)."""
        votes = list(self.rows())
        table = features({r[k] for r in votes for k in ("image_left", "image_right")}) \
            if features else {}
        rows = []
        for r in votes:
            row = {"model_a": r["model_left"], "model_b": r["model_right"],
                   "winner": r["winner"], "judge": "human", "prompt_id": r["prompt_id"],
                   "seed": r["seed"], "tags": list(r["tags"]), "tstamp": r["tstamp"],
                   "prompt": r["prompt"], "choice": r["choice"],
                   "voter": voter_id(r["session"])}
            if r["image_left"] in table and r["image_right"] in table:
                row["features_a"] = table[r["image_left"]]
                row["features_b"] = table[r["image_right"]]
            rows.append(row)
        rankings = [{"models": list(r["models"]), "ranks": list(r["ranks"]),
                     "judge": "human", "prompt_id": r["prompt_id"], "seed": r["seed"],
                     "tags": list(r["tags"]), "tstamp": r["tstamp"], "prompt": r["prompt"],
                     "choice": r["choice"], "voter": voter_id(r["session"])}
                    for r in self.ranking_rows()]
        if rankings:  # in the order cast (a stable sort keeps each table's own order)
            rows = sorted([*rows, *rankings], key=lambda row: row["tstamp"])
        return rows

    def export(self, path: str | Path, features: Callable[[set], dict] | None = None
               ) -> int:
        """Write the battle log to `path` (.jsonl, .csv or .parquet); returns the count.
        `features`: as for `battle_rows`.

        Raises:
            AutojudgeError: no votes yet, or an unknown suffix.
        """
        from autojudge.battles.log import write_battle_log

        rows = self.battle_rows(features)
        if not rows:
            raise AutojudgeError(f"no votes in {self.path} yet; nothing to export")
        write_battle_log(rows, path)
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
