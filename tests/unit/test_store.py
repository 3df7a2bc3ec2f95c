"""The store: content-addressed blobs, trusted rows only, safe under concurrent writers."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from autojudge.store.index import Store, failure_columns
from autojudge.types import Failure

PNG = b"\x89PNG\r\n\x1a\n" + b"fake image payload"


def _score_row(key: str, value: float | None, failure: Failure | None = None) -> dict:
    return {"key": key, "fingerprint": "fp", "image_sha": "sha", "value": value, "raw": "{}",
            **failure_columns(failure), "created": 1.0}


def test_blob_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sha, ext = store.put_blob(PNG)
    assert ext == "png"
    assert store.put_blob(PNG) == (sha, ext)
    assert store.read_blob(sha, ext) == PNG
    assert len(list((tmp_path / "blobs").rglob("*.png"))) == 1


def test_corrupt_or_missing_blob_reads_as_none(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sha, ext = store.put_blob(PNG)
    store.blob_path(sha, ext).write_bytes(PNG[:5])
    assert store.read_blob(sha, ext) is None
    store.blob_path(sha, ext).unlink()
    assert store.read_blob(sha, ext) is None


def test_put_blob_rewrites_a_file_that_does_not_hash_to_its_name(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sha, ext = store.put_blob(PNG)
    path = store.blob_path(sha, ext)
    for writer in (store, Store(tmp_path)):  # remembered as good, and a fresh run
        path.write_bytes(PNG[:5])
        assert writer.put_blob(PNG) == (sha, ext)
        assert path.read_bytes() == PNG
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_rows_round_trip_and_first_final_answer_wins(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put_many("scores", [_score_row("k1", 0.5)])
    store.put_many("scores", [_score_row("k1", 0.9)])
    found = store.get_many("scores", ["k1", "absent"])
    assert list(found) == ["k1"]
    assert found["k1"].values["value"] == 0.5
    assert found["k1"].failure is None


def test_retryable_failures_are_not_trusted_and_get_replaced(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put_many("scores", [_score_row("k", None, Failure("timeout", "slow", retryable=True))])
    assert store.get_many("scores", ["k"]) == {}
    store.put_many("scores", [_score_row("k", 0.7)])
    assert store.get_many("scores", ["k"])["k"].values["value"] == 0.7
    assert store.count("scores") == 1


def test_final_failures_are_kept_typed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put_many("scores", [_score_row("k", None, Failure("unparseable", "no answer"))])
    row = store.get_many("scores", ["k"])["k"]
    assert row.failure == Failure("unparseable", "no answer", False)


def _writer(root: str, offset: int) -> None:
    store = Store(root)
    for batch in range(20):
        keys = [f"k{(offset + batch * 5 + i) % 150}" for i in range(5)]
        store.put_many("scores", [_score_row(k, float(i)) for i, k in enumerate(keys)])
        store.put_blob(PNG + str(batch).encode())


def test_two_processes_share_a_store_without_corruption(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), off)) for off in (0, 50)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = Store(tmp_path)
    assert store.count("scores") == 150
    assert len(list((tmp_path / "blobs").rglob("*.png"))) == 20


def _open_when_told(root: str, go) -> None:
    go.wait(30)
    Store(root).put_many("scores", [_score_row(f"open-{mp.current_process().pid}", 1.0)])


def test_many_runs_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # The first open of a store creates the database and switches it to WAL; racing opens
    # used to fail with "database is locked" without waiting.
    ctx = mp.get_context("spawn")
    for attempt in range(3):
        root = tmp_path / f"store{attempt}"
        go = ctx.Event()
        procs = [ctx.Process(target=_open_when_told, args=(str(root), go)) for _ in range(6)]
        for proc in procs:
            proc.start()
        go.set()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0] * 6
        assert Store(root).count("scores") == 6
