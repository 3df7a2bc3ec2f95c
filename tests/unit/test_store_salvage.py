"""`python -m autojudge.store repair` on a partly damaged index keeps every row SQLite can
still read: the next run regenerates only what was lost (nothing paid for twice)."""
from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from test_store_integrity import CountingGenerator, store_cli

from autojudge.stages.generate import run_generation
from autojudge.store.index import Store
from autojudge.types import GenRequest, Prompt

PAGE = 4096  # SQLite's default page size, which the store keeps
N = 120  # enough generation rows for several leaf pages
PROMPTS = [Prompt(id=f"p{i}", text=f"prompt {i} " + "words " * 20, tags=("t",))
           for i in range(N)]
REQUESTS = [GenRequest(p, 0) for p in PROMPTS]
SCORE_RAW = "x" * 200  # marks the scores table's pages


def build(root: Path, scores: int = 0) -> list:
    with Store(root) as store:
        gens, counts = run_generation("m", CountingGenerator(), REQUESTS, store)
        store.put_many("scores", [
            {"key": f"k{i}", "fingerprint": "f", "image_sha": "s", "value": 1.0,
             "raw": SCORE_RAW, "failure_kind": None, "failure_message": None,
             "retryable": 0, "created": 1.0} for i in range(scores)])
    assert counts.computed == N
    return gens  # closing the store checkpoints everything into index.sqlite


def schema_pages(tmp: Path) -> int:
    """How many pages an empty store's index has (its tables and indexes)."""
    with Store(tmp / "empty"):
        pass
    return (tmp / "empty" / "index.sqlite").stat().st_size // PAGE


def pages(index: Path, kind: int, scores: bool) -> list[int]:
    """Page numbers (1-based) of b-tree pages of `kind` (0x0D table leaf, 0x0A index
    leaf) past the pages of the empty schema, holding score rows or not."""
    data = index.read_bytes()
    found = []
    first = schema_pages(index.parent.parent) + 1
    for number in range(first, len(data) // PAGE + 1):
        page = data[(number - 1) * PAGE:number * PAGE]
        if page[0] == kind and (SCORE_RAW[:50].encode() in page) == scores:
            found.append(number)
    return found


def overwrite(index: Path, numbers: list[int], seed: int = 22) -> None:
    rng = random.Random(seed)
    with open(index, "r+b") as handle:
        for number in numbers:
            handle.seek((number - 1) * PAGE)
            handle.write(rng.randbytes(PAGE))


def readable_keys(index: Path, table: str, rows: int) -> set[str]:
    """The oracle: the keys a lookup of each rowid, one at a time, still gets."""
    keys = set()
    with sqlite3.connect(index) as db:
        for rowid in range(1, rows + 1):
            try:
                keys.update(k for (k,) in db.execute(
                    f"SELECT key FROM {table} WHERE rowid = ?", (rowid,)))
            except sqlite3.DatabaseError:
                pass
    return keys


def keys_in(root: Path, table: str) -> set[str]:
    with sqlite3.connect(root / "index.sqlite") as db:
        return {k for (k,) in db.execute(f"SELECT key FROM {table}")}


def test_repair_keeps_every_readable_row_and_the_next_run_uses_them(tmp_path: Path) -> None:
    root = tmp_path / "store"
    gens = build(root, scores=300)
    index = root / "index.sqlite"
    generation_leaves, score_leaves = pages(index, 0x0D, False), pages(index, 0x0D, True)
    assert len(generation_leaves) >= 4 and len(score_leaves) >= 4
    overwrite(index, [generation_leaves[2], score_leaves[3]])
    readable = {t: readable_keys(index, t, rows) for t, rows in
                (("generations", N), ("scores", 300))}
    assert 0 < len(readable["generations"]) < N and 0 < len(readable["scores"]) < 300
    # one readable row whose image is damaged: kept rows must name good images
    damaged_gen = next(g for g in gens if g.image_sha is not None)
    Path(damaged_gen.image_path).write_bytes(b"\x89PNG cut")
    assert store_cli("check", root).returncode == 1

    proc = store_cli("repair", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lost = N - len(readable["generations"])
    assert (f"generations: {len(readable['generations']) - 1} kept, {lost} unreadable (lost), "
            f"1 dropped") in proc.stdout, proc.stdout
    assert f"scores: {len(readable['scores'])} kept, {300 - len(readable['scores'])} " \
        "unreadable" in proc.stdout, proc.stdout
    assert keys_in(root, "scores") == readable["scores"]
    assert len(keys_in(root, "generations")) == len(readable["generations"]) - 1
    moved = [p for p in root.glob("index.sqlite.corrupt-*")
             if not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1 and moved[0].stat().st_size > 0  # the damaged index is kept aside
    assert not list(root.glob("*.salvage-tmp"))
    assert store_cli("check", root).returncode == 0

    again = CountingGenerator()
    with Store(root) as store:
        _, counts = run_generation("m", again, REQUESTS, store)
    assert again.calls == lost + 1  # only the lost rows and the damaged image
    assert counts.cached == len(readable["generations"]) - 1


def test_damage_outside_the_rows_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    build(root)
    index = root / "index.sqlite"
    index_leaves = pages(index, 0x0A, False)  # the primary-key index, rebuilt by repair
    assert index_leaves
    overwrite(index, index_leaves[:1])
    assert "index: DAMAGED" in store_cli("check", root).stdout

    proc = store_cli("repair", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"generations: {N} kept, 0 unreadable (lost), 0 dropped" in proc.stdout, proc.stdout
    again = CountingGenerator()
    with Store(root) as store:
        _, counts = run_generation("m", again, REQUESTS, store)
    assert again.calls == 0 and counts.cached == N
