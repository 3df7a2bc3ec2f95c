"""`python -m autojudge.compare` with a damaged image in the store: an image its model can
make again for nothing (a folder model, a baseline) is made again and judged as in the
run; one it cannot is said on the console, counted as a failed image, and its battles are
skipped (never lost), with the fix. The blobs are really damaged on disk."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli
from PIL import Image, ImageDraw
from report_helpers import TYPESET_SMALL

pytestmark = pytest.mark.slow
SUITE = ["suite.tags=[text_rendering]", "suite.limit=2", "ratings.bootstrap_rounds=20",
         "progress=false", "logger=none", "report.html=false"]


def _prompt_ids() -> list[str]:
    from autojudge.experiment import build
    from autojudge.experiment.schema import compose

    suite = build.load_suite_from_config(compose(SUITE).suite)
    return [prompt.id for prompt, _ in suite.requests()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """One real run: a folder model (PNGs made here) against typeset, judged by OCR."""
    base = tmp_path_factory.mktemp("damaged")
    folder = base / "made_elsewhere"
    folder.mkdir()
    for i, prompt_id in enumerate(_prompt_ids()):
        image = Image.new("RGB", (256, 256), "white")
        ImageDraw.Draw(image).text((20, 120), f"sign {i}", fill="black")
        image.save(folder / f"{prompt_id}.png")
    proc = run_cli(["autojudge", "model=[folder,typeset]", f"model.folder.path={folder}",
                    *TYPESET_SMALL, "judge=[ocr]", *SUITE, f"store.root={base / 'store'}",
                    f"hydra.run.dir={base / 'run'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (base / "run" / "generations.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    return {"base": base, "folder": folder, "rows": rows}


def _copy(finished: dict, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the store and its folder model, so each test damages its own."""
    store, folder = tmp_path / "store", tmp_path / "made_elsewhere"
    shutil.copytree(finished["base"] / "store", store)
    shutil.copytree(finished["folder"], folder)
    return store, folder


def _blob(store: Path, row: dict) -> Path:
    sha = row["image_sha256"]
    return store / "blobs" / sha[:2] / f"{sha}{Path(row['image_path']).suffix}"


def _compare(finished: dict, store: Path, out: Path):
    proc = run_cli(["autojudge.compare", str(finished["base"] / "run"), "--store", str(store),
                    "--out", str(out), "--quiet", "--no-report"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads((out / "leaderboard.json").read_text())


def _board(document: dict) -> dict:
    return next(b for b in document["boards"] if b["judge"] == "ocr" and b["tag"] is None)


def test_damaged_images_a_model_can_remake_are_made_again(finished, tmp_path) -> None:
    store, _ = _copy(finished, tmp_path)
    clean_proc, clean = _compare(finished, store, tmp_path / "clean")
    blobs = [_blob(store, r) for r in finished["rows"] if r["prompt_id"] ==
             finished["rows"][0]["prompt_id"]]  # the folder's and typeset's image of one prompt
    good = [b.read_bytes() for b in blobs]
    blobs[0].write_bytes(good[0][:40])  # truncated
    blobs[1].write_bytes(b"\x00" * len(good[1]))  # overwritten
    proc, document = _compare(finished, store, tmp_path / "out")
    assert [b.read_bytes() for b in blobs] == good  # the store holds the run's bytes again
    assert "made again by their model" in proc.stdout and "warning" not in proc.stderr
    images = document["run"]["images"]
    assert len(images["remade"]) == 2 and images["damaged"] == []
    assert document["run"]["cache"]["generation"] == {"cached": 2, "computed": 2, "failed": 0}
    assert "images: 2 generated, 2 from cache, 0 failed" in proc.stdout
    assert _board(document)["n_battles"] == _board(clean)["n_battles"] == 2
    assert document["run"]["cache"]["judges"]["ocr"]["computed"] == 0  # same bytes: cached


def test_a_damaged_image_that_cannot_be_remade_is_said_and_counted(finished, tmp_path) -> None:
    store, folder = _copy(finished, tmp_path)
    row = next(r for r in finished["rows"] if r["model"] == "folder")
    blob = _blob(store, row)
    blob.write_bytes(blob.read_bytes()[:100])
    (folder / f"{row['prompt_id']}.png").unlink()  # the folder model cannot read it again
    # the run's config names the original folder: point the run copy at the damaged one
    run = tmp_path / "run"
    shutil.copytree(finished["base"] / "run", run, symlinks=True)
    config = json.loads((run / "config.json").read_text())
    config["model"]["folder"]["path"] = str(folder)
    (run / "config.json").write_text(json.dumps(config))
    proc = run_cli(["autojudge.compare", str(run), "--store", str(store), "--out",
                    str(tmp_path / "out"), "--quiet", "--no-report"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads((tmp_path / "out" / "leaderboard.json").read_text())

    assert "warning: 1 stored image(s) damaged" in proc.stderr, proc.stderr
    assert "1 battle(s) skipped" in proc.stderr and str(blob) in proc.stderr
    assert f"python -m autojudge.store repair --root {store}" in proc.stderr
    assert str(run) in proc.stderr  # the run to make it again
    assert "images: 0 generated, 3 from cache, 1 failed" in proc.stdout, proc.stdout
    assert _board(document)["n_battles"] == 1  # the other prompt's battle
    stats = {m["model"]: m for m in document["models"]}
    assert stats["folder"]["failed"] == 1 and stats["folder"]["failures"] == {
        "damaged_image": 1}
    assert stats["typeset"]["failed"] == 0
    skipped = [json.loads(x) for x in (tmp_path / "out" / "skipped.jsonl").read_text()
               .splitlines()]
    assert [s["failure_kind"] for s in skipped] == ["damaged_image"]
    assert document["run"]["images"]["battles_skipped"] == 1
    assert hashlib.sha256(blob.read_bytes()).hexdigest() != row["image_sha256"]  # untouched

    # the pooled folder pooled again once the file is back: the image is made again, used
    shutil.copy(finished["folder"] / f"{row['prompt_id']}.png", folder)
    proc = run_cli(["autojudge.compare", str(tmp_path / "out"), "--out", str(tmp_path / "again"),
                    "--quiet", "--no-report"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((tmp_path / "again" / "leaderboard.json").read_text())
    assert len(again["run"]["images"]["remade"]) == 1 and _board(again)["n_battles"] == 2
    assert blob.read_bytes() == (folder / f"{row['prompt_id']}.png").read_bytes()
