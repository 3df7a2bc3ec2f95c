"""`python -m autojudge.store check|repair [--root PATH]`: find and mend a damaged store.

`check` reads everything and changes nothing: it hashes every blob file against its name,
finds index rows that point at a missing or damaged image, leftover temporary files from a
killed write, folders or files this user cannot write, and runs SQLite's
`PRAGMA integrity_check` on the index. Exit 0: clean; 1: damage found; 2: bad usage or no
readable store at the root.

`repair` mends what `check` finds: it deletes damaged blobs and the generation rows that
point at missing or damaged ones (the next run generates those images again), deletes
leftover temporary files, and moves a damaged index aside (`index.sqlite.corrupt-<time>`)
after copying every row SQLite can still read from it into a fresh one
(autojudge.store.salvage; it prints, per table, how many rows were kept, unreadable and
dropped): only what was lost is recomputed, and the images already stored are kept and
reused. Permissions it cannot change; it says which paths to fix. Exit 0 when the store
is clean afterwards, else 1.

Run either only while no autojudge run uses the store: a run in progress writes
temporary files and rows that would look like damage, and repair may delete them.
"""
from __future__ import annotations

import fcntl
import hashlib
import re
import shlex
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from autojudge.errors import AutojudgeError
from autojudge.store.index import (DAMAGE_WORDS, INDEX_FILES, INDEX_NAME, Store, store_command,
                             writable)
from autojudge.store.salvage import print_salvage, salvage_index

_BLOB_NAME = re.compile(r"^([0-9a-f]{64})\.([A-Za-z0-9]+)$")
_SHOWN = 20  # problems listed one per line; the rest are counted
_PROGRESS_EVERY = 5000


def default_root() -> Path:
    """`store.root` exactly as `python -m autojudge` resolves it: the shipped
    conf/config.yaml (AUTOJUDGE_STORE, else ~/.cache/autojudge)."""
    from omegaconf import OmegaConf

    from autojudge.experiment.schema import CONF_DIR

    node = OmegaConf.load(Path(CONF_DIR) / "config.yaml")
    return Path(str(OmegaConf.select(node, "store.root"))).expanduser()


@dataclass
class Findings:
    """What `inspect` saw; every list but `unknown` is damage that repair acts on."""

    root: Path
    blobs_ok: int = 0
    damaged_blobs: list[Path] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)
    unknown: list[Path] = field(default_factory=list)
    bad_rows: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    index_damage: str | None = None
    index_unreadable: str | None = None  # e.g. permissions: not damage repair may touch
    index_rows: dict[str, int] = field(default_factory=dict)
    unwritable: list[Path] = field(default_factory=list)
    blob_states: dict[str, str] = field(default_factory=dict)  # blob path -> ok | damaged

    @property
    def problems(self) -> list[str]:
        """One readable line per piece of damage."""
        lines = [f"not writable by this user: {p}" for p in self.unwritable]
        if self.index_damage:
            lines.append(f"index damaged: {self.root / INDEX_NAME} ({self.index_damage})")
        if self.index_unreadable:
            lines.append(f"index could not be read: {self.root / INDEX_NAME} "
                         f"({self.index_unreadable})")
        lines += [f"damaged blob (does not hash to its name): {p}" for p in self.damaged_blobs]
        lines += [f"leftover temporary file: {p}" for p in self.temp_files]
        lines += [f"generation row {key[:12]}... points at {why}" for key, why in self.bad_rows]
        return lines


def root_problem(root: Path) -> str | None:
    """Why `root` cannot be checked at all, or None."""
    if not root.exists():
        return (f"no store at {root}; give the store's folder with --root PATH (default: "
                f"store.root, i.e. AUTOJUDGE_STORE or ~/.cache/autojudge)")
    if not root.is_dir():
        return f"store root {root} is a file, not a folder; move it away or give another --root"
    if not (root / INDEX_NAME).exists() and not (root / "blobs").is_dir():
        return f"{root} holds no autojudge store (no {INDEX_NAME}, no blobs/); check --root"
    return None


def inspect(root: Path, say=print) -> Findings:
    """Look at every part of the store at `root`; changes nothing."""
    found = Findings(root)
    found.unwritable = [p for p in (root, root / "blobs", *(root / n for n in INDEX_FILES))
                        if p.exists() and not writable(p)]
    say(f"checking blobs under {root / 'blobs'} ...")
    good = found.blob_states
    for n, path in enumerate(_walk(root / "blobs"), start=1):
        if n % _PROGRESS_EVERY == 0:
            say(f"  {n} files looked at ...")  # hashing a big store takes a while
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            found.temp_files.append(path)
            continue
        match = _BLOB_NAME.match(path.name)
        if not match or path.parent.name != match.group(1)[:2]:
            found.unknown.append(path)
            continue
        if _hash_file(path) == match.group(1):
            found.blobs_ok += 1
            good[str(path)] = "ok"
        else:
            found.damaged_blobs.append(path)
            good[str(path)] = "damaged"
    say(f"checking index {root / INDEX_NAME} ...")
    _inspect_index(found, good)
    return found


def _walk(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            yield path


def _hash_file(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None  # unreadable counts as damaged: its pixels cannot be trusted
    return digest.hexdigest()


def _inspect_index(found: Findings, blobs: dict[str, str]) -> None:
    """Integrity of the index, then every generation row's image."""
    index = found.root / INDEX_NAME
    if not index.exists():
        return  # a store without an index yet: the next run starts one
    try:
        # Read-only where this user may not write, so check still reads what it can.
        db = (sqlite3.connect(index, timeout=10.0) if writable(found.root) else
              sqlite3.connect(f"{index.absolute().as_uri()}?mode=ro", uri=True, timeout=10.0))
    except sqlite3.Error as exc:
        _index_failed(found, exc)
        return
    try:
        result = [row[0] for row in db.execute("PRAGMA integrity_check(20)")]
        if result != ["ok"]:
            found.index_damage = " ".join(" ".join(result).split())[:300]
            return
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        for table in ("generations", "scores", "verdicts"):
            if table in tables:
                found.index_rows[table] = db.execute(
                    f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if "generations" not in tables:
            return
        rows = db.execute("SELECT key, image_sha, image_ext FROM generations "
                          "WHERE failure_kind IS NULL AND image_sha IS NOT NULL")
        for key, sha, ext in rows:
            path = found.root / "blobs" / sha[:2] / f"{sha}.{ext}"
            state = blobs.get(str(path), "missing")
            if state != "ok":
                found.bad_rows.append((key, f"a {state} image {path}"))
    except sqlite3.Error as exc:
        _index_failed(found, exc)
    finally:
        db.close()


def _index_failed(found: Findings, exc: sqlite3.Error) -> None:
    """Damage only when SQLite says so; a permission or lock problem must not make repair
    move a good index aside."""
    text = " ".join(str(exc).split())
    if type(exc) is sqlite3.DatabaseError or any(w in text.lower() for w in DAMAGE_WORDS):
        found.index_damage = text
    else:
        found.index_unreadable = text


def report(found: Findings, say=print) -> int:
    """Print a summary of `found`; returns the exit status (0 clean, 1 damage)."""
    rows = ", ".join(f"{n} {t}" for t, n in found.index_rows.items()) or "no rows"
    index = ("DAMAGED" if found.index_damage else "NOT READ" if found.index_unreadable
             else f"ok ({rows})")
    say(f"store {found.root}")
    say(f"  index: {index}")
    say(f"  blobs: {found.blobs_ok} ok, {len(found.damaged_blobs)} damaged, "
        f"{len(found.temp_files)} leftover temporary files")
    say(f"  rows pointing at missing or damaged images: {len(found.bad_rows)}")
    if found.unknown:
        say(f"  ignored {len(found.unknown)} files that are not blobs (e.g. {found.unknown[0]})")
    problems = found.problems
    for line in problems[:_SHOWN]:
        say(f"  - {line}")
    if len(problems) > _SHOWN:
        say(f"  ... and {len(problems) - _SHOWN} more")
    if not problems:
        say("clean")
        return 0
    say(f"{len(problems)} problem(s); fix with {store_command(found.root)} "
        f"(while no autojudge run uses this store)")
    return 1


def check(root: Path) -> int:
    """`check`: inspect and report; exit status 0 clean, 1 damage."""
    return report(inspect(root))


def repair(root: Path) -> int:
    """`repair`: mend what inspect finds, then check again; exit 0 when clean."""
    found = inspect(root)
    if found.unwritable:
        for path in found.unwritable:
            print(f"cannot repair: {path} is not writable by this user")
        print(f"nothing was changed; make the store writable (chmod -R u+w "
              f"{shlex.quote(str(root))}) and run repair again")
        return 1
    with open(root / "index.lock", "a+b") as lock_file:
        # Keeps a run from opening the store half-way through; runs already open are not
        # seen (see the module docstring).
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        _mend(found)
    try:
        Store(root).close()  # opens (or starts) the index, as the next run will
    except AutojudgeError as exc:
        print(f"the store still does not open: {exc}")
        return 1
    print("checking again ...")
    return report(inspect(root, say=lambda line: None))


def _mend(found: Findings) -> None:
    root = found.root
    if found.index_damage:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = root / f"{INDEX_NAME}.corrupt-{stamp}"
        for name in (INDEX_NAME, f"{INDEX_NAME}-wal", f"{INDEX_NAME}-shm"):
            source = root / name
            if source.exists():
                # SQLite finds a database's WAL by name, so the three move together
                target = root / name.replace(INDEX_NAME, moved.name)
                source.rename(target)
                print(f"moved the damaged index file {source} to {target}")
        if moved.exists():
            try:
                print_salvage(salvage_index(moved, root, found.blob_states))
            except (sqlite3.Error, OSError) as exc:
                print(f"could not copy rows out of it ({' '.join(str(exc).split())}): a "
                      f"fresh index is started; cached generations and scores are "
                      f"recomputed by the next run")
        else:
            print("no index file was left to read: a fresh index is started; cached "
                  "generations and scores are recomputed by the next run")
    elif found.bad_rows:
        _forget_rows(root, [key for key, _ in found.bad_rows])
        print(f"deleted {len(found.bad_rows)} generation rows that pointed at missing or "
              f"damaged images (the next run generates them again)")
    for path in found.damaged_blobs:
        path.unlink(missing_ok=True)
    if found.damaged_blobs:
        print(f"deleted {len(found.damaged_blobs)} damaged blobs")
    for path in found.temp_files:
        path.unlink(missing_ok=True)
    if found.temp_files:
        print(f"deleted {len(found.temp_files)} leftover temporary files")


def _forget_rows(root: Path, keys: list[str]) -> None:
    db = sqlite3.connect(root / INDEX_NAME, timeout=60.0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            db.execute(f"DELETE FROM generations WHERE key IN ({','.join('?' * len(chunk))})",
                       chunk)
        db.execute("COMMIT")
    finally:
        db.close()
