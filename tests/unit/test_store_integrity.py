"""A damaged store is never trusted: bad blobs are made again, a bad index or folder is one
line that says what to do, and `python -m autojudge.store check|repair` finds and mends it."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, assert_one_line_error, run_cli

from autojudge.errors import AutojudgeError
from autojudge.stages.generate import run_generation
from autojudge.stages.judge import image_loader, run_judge
from autojudge.store.index import DamagedBlobError, Store
from autojudge.types import GenOutput, GenRequest, Prompt, Verdict

PIPELINE = ["suite.tags=[text_rendering]", "suite.limit=2", "ratings.bootstrap_rounds=20",
            "logger=none", "progress=false", "model=[typeset,blank]", "judge=[ocr]"]
PROMPTS = [Prompt(id=f"p{i}", text=f"prompt {i}", tags=("t",)) for i in range(3)]
REQUESTS = [GenRequest(p, 0) for p in PROMPTS]


def png(seed: str) -> bytes:
    """A small real PNG (the judge stage decodes it) whose pixels depend on `seed`."""
    from PIL import Image

    shade = hashlib.sha256(seed.encode()).digest()[:3]
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(shade)).save(buffer, format="PNG")
    return buffer.getvalue()


class CountingGenerator:
    """Counts requests it is asked for; `drift` makes every call's bytes new (as a remote
    model may), so a stale row cannot hide behind identical bytes."""

    cacheable = True
    batch_size = 2

    def __init__(self, drift: bool = False):
        self.calls = 0
        self.drift = drift

    def fingerprint(self) -> dict:
        return {"kind": "counting", "version": 1}

    def check(self) -> None:
        pass

    def generate(self, requests):
        self.calls += len(requests)
        salt = str(self.calls) if self.drift else ""
        return [GenOutput(png(f"{r.prompt.id}/{r.seed}/{salt}"), 0.01) for r in requests]


class PixelJudge:
    """A pairwise judge that looks at both images' pixels, as real judges do."""

    name = "pixels"
    batch_size = 8

    def fingerprint(self):
        return {"kind": "pixels", "version": 1}

    def check(self) -> None:
        pass

    def applies(self, prompt) -> bool:
        return True

    def compare(self, pairs):
        return [Verdict("tie", 0.0, 0.0, f"sizes {(p.a.image.size, p.b.image.size)}")
                for p in pairs]


def generate(root: Path, generator: CountingGenerator, label: str = "m"):
    store = Store(root)
    try:
        return run_generation(label, generator, REQUESTS, store)
    finally:
        store.close()


def store_cli(action: str, root: Path) -> subprocess.CompletedProcess:
    return run_cli(["autojudge.store", action, "--root", str(root)], timeout=120)


def generation_rows(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / "index.sqlite") as db:
        return sorted(db.execute("SELECT key, image_sha FROM generations").fetchall())


def one_line(exc: AutojudgeError) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# -- blobs: a damaged or missing image is made again ------------------------------------


def test_truncated_blob_is_regenerated_and_rewritten(tmp_path: Path) -> None:
    root = tmp_path / "store"
    gens, counts = generate(root, CountingGenerator())
    assert counts.computed == 3
    victim = Path(gens[1].image_path)
    good = victim.read_bytes()
    victim.write_bytes(good[:10])
    again = CountingGenerator()
    gens2, counts2 = generate(root, again)
    assert again.calls == 1 and counts2.cached == 2 and counts2.computed == 1
    assert victim.read_bytes() == good
    assert [g.image_sha for g in gens2] == [g.image_sha for g in gens]
    third = CountingGenerator()
    generate(root, third)
    assert third.calls == 0  # the rewritten blob is trusted again


def test_missing_blob_is_regenerated(tmp_path: Path) -> None:
    root = tmp_path / "store"
    gens, _ = generate(root, CountingGenerator())
    Path(gens[0].image_path).unlink()
    again = CountingGenerator()
    _, counts = generate(root, again)
    assert again.calls == 1 and counts.computed == 1
    assert Path(gens[0].image_path).read_bytes() == png("p0/0/")


def test_damaged_row_is_replaced_when_new_bytes_differ(tmp_path: Path) -> None:
    root = tmp_path / "store"
    gens, _ = generate(root, CountingGenerator(drift=True))
    Path(gens[2].image_path).write_bytes(b"\x89PNG garbage")
    gens2, _ = generate(root, CountingGenerator(drift=True))
    assert gens2[2].image_sha != gens[2].image_sha
    assert (gens2[2].image_sha in {sha for _, sha in generation_rows(root)}
            and gens[2].image_sha not in {sha for _, sha in generation_rows(root)})
    later = CountingGenerator(drift=True)
    generate(root, later)
    assert later.calls == 0  # the new row and blob are trusted: no regeneration loop


def test_blob_is_hashed_once_per_store_then_rechecked_when_it_changes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = png("x")
    sha, ext = store.put_blob(data)
    path = store.blob_path(sha, ext)
    fresh = Store(tmp_path)
    assert fresh.verified_blob(sha, ext) == path
    reads = []
    original = fresh._read_verified
    fresh._read_verified = lambda p, s: reads.append(p) or original(p, s)
    assert fresh.verified_blob(sha, ext) == path and reads == []  # remembered: no re-hash
    path.write_bytes(data[:-4])
    assert fresh.verified_blob(sha, ext) is None and len(reads) == 1
    assert fresh.read_blob(sha, ext) is None


def test_judge_gets_a_typed_failure_not_a_traceback_for_a_damaged_image(tmp_path) -> None:
    store = Store(tmp_path / "store")
    gens_a, _ = run_generation("a", CountingGenerator(), REQUESTS, store)
    gens_b, _ = run_generation("b", CountingGenerator(drift=True), REQUESTS, store)
    Path(gens_a[0].image_path).write_bytes(b"\x89PNG cut")
    damaged_store = Store(tmp_path / "store")  # a new run: nothing remembered yet
    from autojudge.stages.runner import JudgeRunner

    outcome = run_judge(JudgeRunner("pixels", PixelJudge(), damaged_store), ["a", "b"],
                        gens_a + gens_b, [(p, 0) for p in PROMPTS], damaged_store)
    assert len(outcome.battles) == 2
    assert [row["prompt_id"] for row in outcome.skipped] == ["p0"]
    assert outcome.skipped[0]["failure_kind"] == "damaged_image"
    assert gens_a[0].image_path in outcome.skipped[0]["failure_message"]
    assert "python -m autojudge.store repair" in outcome.skipped[0]["failure_message"]
    with pytest.raises(DamagedBlobError) as info:
        image_loader(damaged_store, gens_a[0])()
    assert isinstance(info.value, AutojudgeError) and "repair" in one_line(info.value)


# -- the index and the folders: one line, when the store is opened -----------------------


def test_garbage_index_is_one_line_error_when_opened(tmp_path: Path) -> None:
    root = tmp_path / "store"
    generate(root, CountingGenerator())
    (root / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AutojudgeError) as info:
        Store(root)
    line = one_line(info.value)
    assert str(root / "index.sqlite") in line and "damaged" in line
    assert f"python -m autojudge.store repair --root {root}" in line


def test_garbage_inside_index_pages_fails_at_open_not_later(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.put_many("scores", [
        {"key": f"k{i}", "fingerprint": "f", "image_sha": "s", "value": 1.0, "raw": "x" * 200,
         "failure_kind": None, "failure_message": None, "retryable": 0, "created": 1.0}
        for i in range(200)])
    store.close()  # checkpoints the WAL into index.sqlite
    index = root / "index.sqlite"
    assert index.stat().st_size > 3 * 4096
    with open(index, "r+b") as handle:  # keep the header, break the table pages
        handle.seek(2 * 4096)
        handle.write(b"\xff" * 4096)
    with pytest.raises(AutojudgeError) as info:
        Store(root)
    assert "damaged" in one_line(info.value) and str(index) in str(info.value)


def test_store_root_that_is_a_file_is_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.write_text("not a folder")
    with pytest.raises(AutojudgeError) as info:
        Store(root)
    line = one_line(info.value)
    assert str(root) in line and "is a file" in line and "move it away" in line


@pytest.mark.parametrize("part", ["blobs", ".", "index.sqlite"])
def test_unwritable_part_is_one_line_error(tmp_path: Path, monkeypatch, part: str) -> None:
    # os.access is what the store asks (it answers as the kernel will, root included), so
    # this runs for every user; the test below checks real permissions where they bite.
    root = tmp_path / "store"
    Store(root).close()
    target = os.path.normpath(root / part)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if os.path.normpath(path) == target and mode & os.W_OK
        else real_access(path, mode, **kw)))
    with pytest.raises(AutojudgeError) as info:
        Store(root)
    line = one_line(info.value)
    assert target in line and "not writable" in line and "chmod" in line


def unprivileged(folder: Path) -> list[str] | None:
    """A command prefix under which writing into the read-only `folder` really fails, or
    None. Root ignores permission bits; root without its capabilities (setpriv) does not."""
    prefixes = [[]]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefixes.append([shutil.which("setpriv"), "--bounding-set=-all", "--inh-caps=-all"])
    for i, prefix in enumerate(prefixes):
        target = folder / f"probe-{i}"  # a new name: an existing file would be the owner's
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(target)!r}, 'w')"],
                               capture_output=True)
        target.unlink(missing_ok=True)
        if probe.returncode != 0:
            return prefix
    return None


@pytest.mark.parametrize("part", ["blobs", "."])
def test_read_only_store_stops_the_run_with_one_line(tmp_path: Path, part: str) -> None:
    root = tmp_path / "store"
    Store(root).close()
    os.chmod(root / part, 0o555)
    try:
        prefix = unprivileged(root / part)
        if prefix is None:
            pytest.skip("permissions are not enforced for this user (root without setpriv)")
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "autojudge", f"store.root={root}",
             f"hydra.run.dir={tmp_path / 'run'}", *PIPELINE],
            cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(root / part, 0o755)
    assert_one_line_error(proc, "not writable", os.path.normpath(root / part))
    assert not (tmp_path / "run" / "leaderboard.json").exists()


# -- python -m autojudge.store check | repair ------------------------------------------


def test_check_on_a_clean_store_exits_0(tmp_path: Path) -> None:
    root = tmp_path / "store"
    generate(root, CountingGenerator())
    proc = store_cli("check", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "clean" in proc.stdout and "3 ok, 0 damaged" in proc.stdout


def test_check_finds_and_repair_mends_blob_damage(tmp_path: Path) -> None:
    root = tmp_path / "store"
    gens, _ = generate(root, CountingGenerator())
    truncated, missing = Path(gens[0].image_path), Path(gens[1].image_path)
    truncated.write_bytes(truncated.read_bytes()[:7])
    missing.unlink()
    leftover = truncated.parent / f".{truncated.name}.abc123.tmp"
    leftover.write_bytes(b"half")
    proc = store_cli("check", root)
    assert proc.returncode == 1, proc.stdout
    for needle in (str(truncated), str(leftover), "a missing image", "repair --root"):
        assert needle in proc.stdout, (needle, proc.stdout)
    proc = store_cli("repair", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deleted 2 generation rows" in proc.stdout and "clean" in proc.stdout
    assert not truncated.exists() and not leftover.exists()
    assert {sha for _, sha in generation_rows(root)} == {gens[2].image_sha}
    assert store_cli("check", root).returncode == 0
    again = CountingGenerator()
    generate(root, again)
    assert again.calls == 2 and truncated.read_bytes() == png("p0/0/")


def test_check_and_repair_of_a_garbage_index(tmp_path: Path) -> None:
    root = tmp_path / "store"
    gens, _ = generate(root, CountingGenerator())
    (root / "index.sqlite").write_bytes(b"\x00garbage" * 300)
    proc = store_cli("check", root)
    assert proc.returncode == 1 and "index: DAMAGED" in proc.stdout, proc.stdout
    proc = store_cli("repair", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    moved = list(root.glob("index.sqlite.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"\x00garbage" * 300
    assert "recomputed" in proc.stdout and str(moved[0]) in proc.stdout
    assert store_cli("check", root).returncode == 0
    assert all(Path(g.image_path).exists() for g in gens)  # images are kept
    again = CountingGenerator()
    _, counts = generate(root, again)
    assert again.calls == 3 and counts.failed == 0


def test_cli_bad_usage_and_missing_store_exit_2(tmp_path: Path) -> None:
    assert run_cli(["autojudge.store", "mend"]).returncode == 2
    proc = store_cli("check", tmp_path / "nowhere")
    assert_one_line_error(proc, "no store at", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    (tmp_path / "afile").write_text("x")
    proc = store_cli("repair", tmp_path / "afile")
    assert proc.returncode == 2 and "is a file" in proc.stderr


def test_cli_default_root_is_the_apps_store_root(tmp_path: Path) -> None:
    root = tmp_path / "envstore"
    generate(root, CountingGenerator())
    proc = run_cli(["autojudge.store", "check"], env={"AUTOJUDGE_STORE": str(root)})
    assert proc.returncode == 0 and f"store {root}" in proc.stdout, proc.stdout + proc.stderr


# -- the real pipeline ----------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("finished")
    proc = run_cli(["autojudge", f"store.root={base / 'store'}",
                    f"hydra.run.dir={base / 'run'}", *PIPELINE])
    assert proc.returncode == 0, proc.stderr
    return base


def pipeline(root: Path, run_dir: Path) -> subprocess.CompletedProcess:
    return run_cli(["autojudge", f"store.root={root}", f"hydra.run.dir={run_dir}", *PIPELINE])


@pytest.mark.slow  # whole-pipeline runs
def test_pipeline_regenerates_a_truncated_image(tmp_path: Path, finished_store: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(finished_store / "store", root)
    blob = sorted((root / "blobs").rglob("*.png"))[0]
    good = blob.read_bytes()
    blob.write_bytes(good[: len(good) // 2])
    proc = pipeline(root, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert blob.read_bytes() == good
    cache = json.loads((tmp_path / "run" / "leaderboard.json").read_text())["run"]["cache"]
    assert cache["generation"]["computed"] >= 1 and cache["generation"]["failed"] == 0


@pytest.mark.slow  # whole-pipeline runs
def test_pipeline_garbage_index_then_repair_then_run(tmp_path: Path, finished_store) -> None:
    root = tmp_path / "store"
    shutil.copytree(finished_store / "store", root)
    (root / "index.sqlite").write_bytes(os.urandom(8192))
    for name in ("index.sqlite-wal", "index.sqlite-shm"):
        (root / name).unlink(missing_ok=True)
    proc = pipeline(root, tmp_path / "run1")
    assert_one_line_error(proc, str(root / "index.sqlite"), "damaged",
                          "python -m autojudge.store repair")
    assert store_cli("check", root).returncode == 1
    assert store_cli("repair", root).returncode == 0
    proc = pipeline(root, tmp_path / "run2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run2" / "leaderboard.json").exists()
    assert store_cli("check", root).returncode == 0


def test_pipeline_store_root_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.write_text("oops")
    proc = pipeline(root, tmp_path / "run")
    assert_one_line_error(proc, str(root), "is a file")
