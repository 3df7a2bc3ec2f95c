"""An offline W&B run stays small: the files W&B stages for `wandb sync` (a private copy
of every image once per table, of every run output once more) end up as links to the
same bytes, and the run still holds every record with every staged file intact."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

import report_helpers
from wandb_records import records, run_file

from autojudge.report.wandb_log import log_to_wandb

pytestmark = pytest.mark.slow


def _noise_png(*_: object) -> bytes:
    """An image PNG cannot shrink (like the default run's `noise` model): ~110 KB."""
    image = Image.frombytes("RGB", (192, 192), os.urandom(192 * 192 * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def disk_usage(folder: Path) -> int:
    """Bytes on disk under `folder` as `du` counts them: allocated blocks, each file
    once however many hard links it has, a symbolic link as itself."""
    seen, total = set(), 0
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _staged_entries(run: Path) -> dict[str, object]:
    """path in the artifact -> manifest entry, over every artifact of the run."""
    offline = next((run / "wandb").glob("offline-run-*"))
    return {f"{r.artifact.name}/{c.path}": c for r in records(run_file(offline))
            if r.WhichOneof("record_type") == "artifact"
            for c in r.artifact.manifest.contents}


def _assert_sync_finds_what_was_logged(run: Path, entries: dict) -> None:
    """Every staged file is in the run folder, holds the bytes its manifest entry
    hashed (what `wandb sync` uploads) and is not left read-only."""
    for key, entry in entries.items():
        local = Path(entry.local_path)
        assert run in local.parents, key
        data = local.read_bytes()  # through any link
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()
        assert digest == entry.digest and len(data) == entry.size, key
        assert local.is_symlink() or local.stat().st_mode & stat.S_IWUSR, key


def _log(run: Path, store_root: Path) -> dict:
    document = json.loads((run / "leaderboard.json").read_text())
    document["run"]["store"] = str(store_root)
    log_to_wandb({"kind": "wandb", "mode": "offline", "max_images": 200, "image_px": 256},
                 run, {"name": "handmade", "store": {"root": str(store_root)}}, document)
    return _staged_entries(run)


@pytest.fixture
def noise_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(report_helpers, "_png", _noise_png)
    store = tmp_path / "store"
    return {"run": report_helpers.make_run(tmp_path / "run", store), "store": store}


def test_wandb_folder_is_small_and_every_staged_file_is_what_was_logged(
        noise_run: dict) -> None:
    run, store = noise_run["run"], noise_run["store"]
    entries = _log(run, store)
    images = {k: e for k, e in entries.items() if "/media/images/" in k}
    # both image tables are there, each with its images (the same 30 in both)
    assert {k.split("/", 1)[0].split("-", 2)[-1] for k in images} == {"battles",
                                                                     "prompt_grid"}
    image_bytes = sum(e.size for e in images.values())
    assert len(images) == 60 and image_bytes > 6_000_000
    _assert_sync_finds_what_was_logged(run, entries)
    for key, entry in images.items():  # each image is a blob of the store, shared
        assert (store / "blobs") in Path(entry.local_path).resolve().parents, key
    # W&B costs its records and links, not a copy of each image per table (6 MB here)
    assert disk_usage(run / "wandb") < 1_000_000
    staged = Path(next(e for k, e in entries.items() if k.endswith("/leaderboard.json"))
                  .local_path)
    assert staged.stat().st_ino == (run / "leaderboard.json").stat().st_ino  # one file


def test_without_a_store_the_staged_images_stay_copies_once_each(noise_run: dict,
                                                                 tmp_path: Path) -> None:
    run = noise_run["run"]
    entries = _log(run, tmp_path / "no-store-here")
    assert not (tmp_path / "no-store-here").exists()  # none is created for W&B
    _assert_sync_finds_what_was_logged(run, entries)
    images = [Path(e.local_path) for k, e in entries.items() if "/media/images/" in k]
    assert len(images) == 60 and not any(p.is_symlink() for p in images)
    # each image is staged once however many tables show it: 30 images, ~3.3 MB
    assert len({p.stat().st_ino for p in images}) == 30
    assert disk_usage(run / "wandb") < 4_500_000
