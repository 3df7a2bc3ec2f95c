"""Shared blob storage for executor=ray, without Ray: the store's guarantees with blobs
behind a path or an fsspec URL (memory://, file://), and a Ray worker's code run
in-process (it writes blobs to shared storage; the driver adopts them, never trusting a
missing or damaged one)."""
from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.executors.ray_worker import PluginSpec, PluginWorker, wire_item
from autojudge.sdk.registry import GENERATORS, JUDGES
from autojudge.stages.generate import StoredOutput, commit_outputs, plan_generation
from autojudge.stages.judge import BlobLoader
from autojudge.store.index import Store
from autojudge.types import Generation, GenRequest, JudgeItem, Prompt

PROMPTS = [Prompt(f"p{i}", f"prompt {i}", expected_text="OPEN") for i in range(3)]
REQUESTS = [GenRequest(p, 0) for p in PROMPTS]


def png(color: str = "white") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["path", "file-url", "memory-url"])
def blobs_location(request, tmp_path: Path) -> str:
    return {"path": str(tmp_path / "shared"), "file-url": f"file://{tmp_path / 'shared'}",
            "memory-url": f"memory://autojudge-test-{uuid.uuid4().hex}"}[request.param]


def test_store_keeps_its_guarantees_with_blobs_elsewhere(tmp_path, blobs_location) -> None:
    store = Store(tmp_path / "store", blobs=blobs_location)
    sha, ext = store.put_blob(png())
    assert store.put_blob(png()) == (sha, ext)  # idempotent
    assert store.read_blob(sha, ext) == png()
    assert store.verified_blob(sha, ext) is not None
    assert not list((tmp_path / "store" / "blobs").rglob("*.png"))  # not under the root
    where = store.blob_location(sha, ext)
    assert where.endswith(f"/{sha[:2]}/{sha}.png")
    # damaged bytes behind the name are never used (a fresh Store hashes them again)
    store.blobs.write(sha, ext, b"\x89PNG damaged")
    again = Store(tmp_path / "store")  # finds the blobs through its index
    assert again.blobs_location == store.blobs_location
    assert again.read_blob(sha, ext) is None and again.verified_blob(sha, ext) is None
    assert again.put_blob(png()) == (sha, ext)  # rewritten
    assert again.read_blob(sha, ext) == png()


def test_a_store_refuses_a_second_blobs_location(tmp_path) -> None:
    Store(tmp_path / "store", blobs=str(tmp_path / "a"))
    with pytest.raises(AutojudgeError, match="keeps its images at .*/a"):
        Store(tmp_path / "store", blobs=str(tmp_path / "b"))
    assert Store(tmp_path / "store").blobs_location == str(tmp_path / "a")


def test_blobs_url_that_cannot_open_is_one_line_and_not_recorded(tmp_path, monkeypatch) -> None:
    import fsspec.implementations.ftp as ftp

    def unreachable(self):  # as an FTP host that does not resolve fails, without DNS
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(ftp.FTPFileSystem, "_connect", unreachable)
    with pytest.raises(AutojudgeError, match=r"store.blobs=ftp://nowhere/x: cannot open it "
                                             r"\(OSError.*check the URL"):
        Store(tmp_path / "store", blobs="ftp://nowhere/x")
    # the index did not keep the bad location: the store still opens with its own blobs
    assert Store(tmp_path / "store").blobs_location == str(tmp_path / "store" / "blobs")
    # a location an index recorded earlier that cannot be opened here says where it came from
    import sqlite3

    with sqlite3.connect(tmp_path / "store" / "index.sqlite") as db:
        db.execute("INSERT INTO meta VALUES ('blobs', 'ftp://nowhere/x')")
    with pytest.raises(AutojudgeError, match=r"keeps its images at ftp://nowhere/x \(recorded "
                                             r"in its index\), which cannot be opened here"):
        Store(tmp_path / "store")


def test_worker_writes_shared_blobs_and_driver_adopts_them(tmp_path) -> None:
    shared = str(tmp_path / "shared")
    store = Store(tmp_path / "store", blobs=shared)
    spec = PluginSpec("model", "typeset", GENERATORS.get("typeset"),
                      {"kind": "typeset", "width": 128, "height": 128}, "shared", shared)
    outputs = PluginWorker().generate(spec, REQUESTS)
    assert all(isinstance(o, StoredOutput) and o.output.image is None for o in outputs)
    generator = GENERATORS.get("typeset")("typeset", None)
    plan = plan_generation("typeset", generator, REQUESTS, store)
    commit_outputs(plan, store, plan.missing, outputs)
    gens = plan.generations()
    assert all(g.ok and Path(g.image_path).is_file() for g in gens)
    # the next run finds them all in the store
    assert plan_generation("typeset", generator, REQUESTS, store).missing == []


def test_a_blob_the_worker_reported_but_is_not_there_is_a_retryable_failure(tmp_path):
    shared = str(tmp_path / "shared")
    store = Store(tmp_path / "store", blobs=shared)
    spec = PluginSpec("model", "blank", GENERATORS.get("blank"), {"kind": "blank"},
                      "shared", shared)
    outputs = PluginWorker().generate(spec, REQUESTS[:1])
    for path in Path(shared).rglob("*.png"):
        path.unlink()  # lost between the worker's write and the driver's commit
    plan = plan_generation("blank", GENERATORS.get("blank")("blank", None), REQUESTS[:1], store)
    commit_outputs(plan, store, plan.missing, outputs)
    failure = plan.generations()[0].failure
    assert failure is not None and failure.kind == "worker_blob_missing" and failure.retryable
    assert store.get_many("generations", plan.keys) == {}  # asked again next run


@pytest.mark.parametrize("transfer", ["bytes", "shared"])
def test_judge_worker_scores_what_the_local_judge_scores(tmp_path, transfer) -> None:
    shared = str(tmp_path / "shared")
    store = Store(tmp_path / "store", blobs=shared)
    cls = JUDGES.get("ocr")
    worker, spec = PluginWorker(), PluginSpec("judge", "ocr", cls, {"kind": "ocr"},
                                              transfer, shared)
    items = []
    for i, color in enumerate(("white", "black")):
        sha, ext = store.put_blob(png(color))
        gen = Generation("m", PROMPTS[i], 0, sha, store.blob_location(sha, ext), 0.0, 0.0)
        items.append(JudgeItem(PROMPTS[i], None, sha, loader=BlobLoader(store, gen)))
    remote, _ = worker.score(spec, [wire_item(it, transfer) for it in items])
    local = cls("ocr", cls.Config()).score([it.materialized() for it in items])
    assert remote == local
    if transfer == "shared":  # a damaged shared blob is one line, never scored
        store.blobs.write(items[0].image_sha, "png", b"\x89PNG damaged")
        answer = worker.score(spec, [wire_item(items[0], transfer)])
        assert answer[0] == "error" and "missing or damaged" in answer[1]


def test_a_worker_builds_the_plugin_each_batch_names() -> None:
    """A worker serves one plugin after another; one it cannot build is one line."""
    worker = PluginWorker()
    broken = PluginSpec("model", "tiny", GENERATORS.get("diffusers"),
                        {"kind": "diffusers", "model": "/no/such/pipeline"})
    kind, message = worker.ready(broken)
    assert kind == "error" and "/no/such/pipeline" in message and "\n" not in message
    assert worker.generate(broken, REQUESTS)[0] == "error"
    blank = PluginSpec("model", "blank", GENERATORS.get("blank"), {"kind": "blank"})
    assert worker.ready(blank) is None and worker.key == ("model", "blank")
    assert all(out.ok for out in worker.generate(blank, REQUESTS))
