"""Contract + specifics of the folder generator (images made elsewhere)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from generator_contract import GeneratorContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.generators.folder import FolderGenerator
from autojudge.sdk.registry import GENERATORS
from autojudge.types import GenRequest, Prompt

P1 = Prompt(id="sign-1", text='A sign that reads "OPEN"', expected_text="OPEN")
P2 = Prompt(id="cat", text="A cat")
P3 = Prompt(id="multi", text="A dog")
GONE = Prompt(id="not-there", text="nothing")


def save(path: Path, color: str, fmt: str | None = None, size=(16, 12)) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path.read_bytes()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """One model's folder with every naming scheme, a corrupt file and a JPEG."""
    root = tmp_path / "my_model"
    save(root / "sign-1.png", "red")
    save(root / "cat.jpg", "blue", "JPEG")
    save(root / "multi_0.png", "green")
    save(root / "multi" / "1.png", "yellow")
    save(root / "multi" / "0.webp", "purple", "WEBP")  # sub-folder wins over multi_0.png
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (root / "notes.txt").write_text("not an image")
    return root


class TestFolderContract(GeneratorContract):
    plugin_cls = FolderGenerator
    plugin_name = "my_flux_run"
    import_module = "autojudge.generators.folder"
    fingerprint_changes = [{"path": "/somewhere/else"}, {"extensions": ["png"]}]

    @pytest.fixture
    def plugin_params(self, model_dir: Path):
        return {"path": str(model_dir)}

    def sample_requests(self):
        return [GenRequest(P1, 0), GenRequest(P2, 3), GenRequest(P3, 0), GenRequest(P3, 1),
                GenRequest(GONE, 0), GenRequest(Prompt(id="broken", text="x"), 0)]


# ---------------------------------------------------------------------- specifics


def gen(path, **kw) -> FolderGenerator:
    return FolderGenerator("my_model", FolderGenerator.Config(path=str(path), **kw))


def test_registered():
    assert GENERATORS.get("folder") is FolderGenerator


def test_returns_original_bytes_not_reencoded(model_dir):
    out = gen(model_dir).generate([GenRequest(P2, 0)])[0]
    assert out.ok and out.image == (model_dir / "cat.jpg").read_bytes()
    assert out.meta["format"] == "JPEG" and out.meta["path"].endswith("cat.jpg")
    assert out.cost_usd == 0.0 and out.latency_s >= 0


def test_not_cacheable():
    assert FolderGenerator("m", FolderGenerator.Config()).cacheable is False


def test_multi_seed_lookup_order(model_dir):
    g = gen(model_dir)
    o0, o1, o2 = g.generate([GenRequest(P3, 0), GenRequest(P3, 1), GenRequest(P3, 2)])
    assert o0.meta["path"].endswith("multi/0.webp")  # 1. <id>/<seed>.<ext>
    assert o1.meta["path"].endswith("multi/1.png")
    assert o2.failure is not None and o2.failure.kind == "missing_file"
    (model_dir / "multi" / "0.webp").unlink()
    assert g.generate([GenRequest(P3, 0)])[0].meta["path"].endswith("multi_0.png")  # 2.
    # 3. <id>.<ext> serves every seed, after seed-specific files
    save(model_dir / "multi.png", "black")
    o0, o2 = g.generate([GenRequest(P3, 0), GenRequest(P3, 2)])
    assert o0.meta["path"].endswith("multi_0.png") and o2.meta["path"].endswith("multi.png")
    # extensions are tried in config order within each step
    save(model_dir / "cat.png", "white")
    assert gen(model_dir).generate([GenRequest(P2, 0)])[0].meta["path"].endswith("cat.png")
    g_jpg_first = gen(model_dir, extensions=["jpg", "png"])
    assert g_jpg_first.generate([GenRequest(P2, 0)])[0].meta["path"].endswith("cat.jpg")


def test_a_runs_own_layout_is_read_per_seed(tmp_path):
    """runs/<run>/images/<model>/<prompt>_s<seed>.png, links into the store, reads back."""
    store = tmp_path / "store"
    run = tmp_path / "images" / "typeset"
    run.mkdir(parents=True)
    for seed, color in ((0, "red"), (1, "blue")):
        blob = save(store / f"{color}.png", color)
        os.symlink(store / f"{color}.png", run / f"multi_s{seed}.png")
        out = gen(run).generate([GenRequest(P3, seed)])[0]
        assert out.ok and out.image == blob and out.meta["path"].endswith(f"multi_s{seed}.png")
    # a prompt id with characters a file name cannot hold, named as the run named it
    odd = Prompt(id="a b:c", text="x")
    save(run / "a_b_c_s0.png", "green")
    assert gen(run).generate([GenRequest(odd, 0)])[0].ok
    # <id>_<seed> is tried before <id>_s<seed>, and <id>.<ext> only after both
    save(run / "multi_1.png", "white")
    save(run / "multi.png", "black")
    paths = [o.meta["path"] for o in gen(run).generate([GenRequest(P3, 0), GenRequest(P3, 1)])]
    assert paths[0].endswith("multi_s0.png") and paths[1].endswith("multi_1.png")
    match = gen(run).matching_requests([GenRequest(P3, 0), GenRequest(odd, 0)])
    assert match.matched == 2 and "multi_s1.png" in match.stray_files


def test_missing_file_names_the_run_layout(model_dir):
    message = gen(model_dir).generate([GenRequest(GONE, 4)])[0].failure.message
    assert "not-there_s4." in message


def test_upper_case_extension_found(tmp_path):
    save(tmp_path / "p.PNG", "red", "PNG")
    out = gen(tmp_path).generate([GenRequest(Prompt(id="p", text="x"), 0)])[0]
    assert out.ok and out.meta["path"].endswith("p.PNG")


def test_missing_file_is_a_failure_record(model_dir):
    out = gen(model_dir).generate([GenRequest(GONE, 4)])[0]
    assert out.image is None and not out.ok
    assert out.failure.kind == "missing_file" and not out.failure.retryable
    msg = out.failure.message
    assert "not-there/4." in msg and "not-there_4." in msg and "not-there." in msg
    assert str(model_dir) in msg and "\n" not in msg


def test_corrupt_image_is_a_failure_record(model_dir):
    # a valid header with garbage after it, and a truncated PNG
    data = (model_dir / "sign-1.png").read_bytes()
    (model_dir / "trunc.png").write_bytes(data[: len(data) // 2])
    outs = gen(model_dir).generate([GenRequest(Prompt(id="broken", text="x"), 0),
                                    GenRequest(Prompt(id="trunc", text="x"), 0),
                                    GenRequest(P1, 0)])
    assert [o.failure.kind if o.failure else None for o in outs] == [
        "corrupt_image", "corrupt_image", None]
    assert "broken.png" in outs[0].failure.message and outs[0].image is None


def test_extension_that_lies_still_decodes(tmp_path):
    """A JPEG saved as .png is still a readable image: returned as-is, format from content."""
    save(tmp_path / "p.png", "red", "JPEG")
    out = gen(tmp_path).generate([GenRequest(Prompt(id="p", text="x"), 0)])[0]
    assert out.ok and out.meta["format"] == "JPEG"


def test_prompt_id_cannot_escape_the_folder(tmp_path):
    save(tmp_path / "secret.png", "red")
    inner = tmp_path / "model"
    save(inner / "ok.png", "blue")
    out = gen(inner).generate([GenRequest(Prompt(id="../secret", text="x"), 0)])[0]
    assert out.failure is not None and out.failure.kind == "missing_file"


def test_relative_path_resolves_against_cwd(model_dir, monkeypatch):
    monkeypatch.chdir(model_dir.parent)
    g = gen("my_model")
    g.check()
    out = g.generate([GenRequest(P1, 0)])[0]
    assert out.ok and out.image == (model_dir / "sign-1.png").read_bytes()
    assert g.fingerprint()["params"]["path"] == str(model_dir)


def test_files_can_change_between_calls(model_dir):
    g = gen(model_dir)
    before = g.generate([GenRequest(P1, 0)])[0].image
    save(model_dir / "sign-1.png", "white")
    after = g.generate([GenRequest(P1, 0)])[0].image
    assert hashlib.sha256(before).digest() != hashlib.sha256(after).digest()


# ---------------------------------------------------------------------- check()


def test_check_passes_with_images_only_in_subfolders(tmp_path):
    save(tmp_path / "p1" / "0.png", "red")
    gen(tmp_path).check()


@pytest.mark.parametrize("case", ["empty_path", "missing", "not_a_dir", "empty_dir",
                                  "only_other_files", "no_extensions"])
def test_check_raises_one_clear_line(tmp_path, case):
    kw = {}
    if case == "empty_path":
        path = ""
    elif case == "missing":
        path = tmp_path / "nope"
    elif case == "not_a_dir":
        path = tmp_path / "file.png"
        save(path, "red")
    elif case == "empty_dir":
        path = tmp_path / "empty"
        path.mkdir()
    elif case == "only_other_files":
        path = tmp_path
        (tmp_path / "readme.txt").write_text("x")
        save(tmp_path / "pic.gif", "red", "GIF")
    else:
        path = tmp_path
        save(tmp_path / "a.png", "red")
        kw = {"extensions": []}
    g = gen(path, **kw)
    with pytest.raises(AutojudgeError) as info:
        g.check()
    msg = str(info.value)
    assert "\n" not in msg
    assert "my_model" in msg  # which model
    if case != "empty_path":
        assert str(Path(path)) in msg or case == "no_extensions"  # which path
    assert "model.my_model." in msg or "put images" in msg  # what to do


# ---------------------------------------------------------------------- one bad file


def tiny_png_claiming(width: int, height: int) -> bytes:
    """A PNG header (IHDR + IEND, no pixel data) that claims width x height pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def make_bad(root: Path, case: str) -> None:
    """Put one bad file for prompt id 'bad' (seed 0) into `root`."""
    target = root / "bad.png"
    if case == "symlink_loop":
        os.symlink(root / "bad_other.png", target)
        os.symlink(target, root / "bad_other.png")
    elif case == "dangling_symlink":
        os.symlink(root / "gone" / "x.png", target)
    elif case == "zero_bytes":
        target.write_bytes(b"")
    elif case == "truncated":
        data = save(root / "scratch.png", "red", size=(64, 64))
        target.write_bytes(data[: len(data) // 2])
    elif case == "directory":
        target.mkdir()
        save(target / "inside.png", "red")  # even a folder full of images is not one
    elif case == "fifo":
        os.mkfifo(target)  # reading it would block forever
    elif case == "bomb":
        target.write_bytes(tiny_png_claiming(100_000, 100_000))
    elif case == "garbage":
        target.write_bytes(b"GIF89a" + bytes(range(256)) * 4)


BAD_CASES = {  # case -> (failure kind, words its message must contain)
    "symlink_loop": ("unreadable_file", ["bad.png", "symbolic links"]),
    "dangling_symlink": ("unreadable_file", ["bad.png", "symlink to a missing file"]),
    "zero_bytes": ("corrupt_image", ["bad.png", "empty file (0 bytes)"]),
    "truncated": ("corrupt_image", ["bad.png", "not a readable image"]),
    "directory": ("unreadable_file", ["bad.png", "is a directory"]),
    "fifo": ("unreadable_file", ["bad.png", "not a regular file"]),
    "bomb": ("image_too_large", ["bad.png", "decompression bomb"]),
    "garbage": ("corrupt_image", ["bad.png", "not"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_one_bad_file_fails_alone(tmp_path, case):
    root = tmp_path / "model"
    good = {f"ok{i}": save(root / f"ok{i}.png", ("red", "blue", "green")[i]) for i in range(3)}
    make_bad(root, case)
    g = gen(root)
    g.check()  # one bad file does not refuse the model either
    ids = ["ok0", "bad", "ok1", "ok2"]
    outs = g.generate([GenRequest(Prompt(id=pid, text="x"), 0) for pid in ids])
    kind, words = BAD_CASES[case]
    bad = outs[1]
    assert bad.image is None and bad.failure is not None and bad.failure.kind == kind
    for word in words:
        assert word in bad.failure.message, bad.failure.message
    assert "my_model" in bad.failure.message and "\n" not in bad.failure.message
    for pid, out in zip(ids, outs):
        if pid != "bad":
            assert out.ok and out.image == good[pid], pid


def test_image_over_max_pixels_fails_alone_before_decoding(tmp_path):
    save(tmp_path / "small.png", "red", size=(10, 10))
    save(tmp_path / "big.png", "blue", size=(20, 10))
    (tmp_path / "claims.png").write_bytes(tiny_png_claiming(10_000, 5_000))  # 50 MP
    (tmp_path / "default.png").write_bytes(tiny_png_claiming(9_000, 8_000))  # 72 MP
    g = gen(tmp_path)
    g.max_pixels = 100
    small, big, claims = g.generate([GenRequest(Prompt(id=i, text="x"), 0)
                                     for i in ("small", "big", "claims")])
    assert small.ok
    assert big.failure.kind == "image_too_large" and big.image is None
    assert big.failure.message.endswith("big.png is 20x10 pixels, over the limit of 100 "
                                        "(max_pixels); downscale it")
    # under Pillow's own bomb limit but over ours: refused from the header alone
    assert claims.failure.kind == "image_too_large" and "10000x5000" in claims.failure.message
    # the default limit (64 MP) is below Pillow's own (~89 MP, where it only warns)
    big, default = gen(tmp_path).generate([GenRequest(Prompt(id=i, text="x"), 0)
                                           for i in ("big", "default")])
    assert big.ok
    assert default.failure.kind == "image_too_large" and "9000x8000" in default.failure.message


def test_symlink_to_an_image_elsewhere_is_followed(tmp_path):
    """Users link images in from other folders; only a prompt id may not escape."""
    data = save(tmp_path / "elsewhere" / "pic.png", "red")
    root = tmp_path / "model"
    root.mkdir()
    os.symlink(tmp_path / "elsewhere" / "pic.png", root / "p.png")
    out = gen(root).generate([GenRequest(Prompt(id="p", text="x"), 0)])[0]
    assert out.ok and out.image == data


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a non-root POSIX user for permissions to bite")
def test_permission_denied_fails_alone(tmp_path):
    save(tmp_path / "ok.png", "red")
    save(tmp_path / "locked.png", "blue")
    save(tmp_path / "shut" / "0.png", "green")
    (tmp_path / "locked.png").chmod(0)
    (tmp_path / "shut").chmod(0)
    try:
        g = gen(tmp_path)
        g.check()
        ok, locked, shut = g.generate([GenRequest(Prompt(id=i, text="x"), 0)
                                       for i in ("ok", "locked", "shut")])
    finally:
        (tmp_path / "locked.png").chmod(0o644)
        (tmp_path / "shut").chmod(0o755)
    assert ok.ok
    assert locked.failure.kind == "unreadable_file" and "locked.png" in locked.failure.message
    assert shut.failure.kind == "unreadable_file" and "Permission denied" in shut.failure.message


def test_stage_keeps_every_good_image_of_a_batch_with_a_bad_file(tmp_path):
    """The reported case: one looping symlink among 63 images, one batch of 64."""
    from autojudge.stages.generate import run_generation
    from autojudge.store.index import Store

    root = tmp_path / "model"
    for i in range(63):
        save(root / f"p{i:02d}.png", "red", size=(4, 4))
    make_bad(root, "symlink_loop")
    requests = [GenRequest(Prompt(id=f"p{i:02d}", text="x"), 0) for i in range(63)]
    requests.insert(17, GenRequest(Prompt(id="bad", text="x"), 0))
    g = gen(root)
    assert g.batch_size == len(requests)
    generations, counts = run_generation("my_model", g, requests, Store(tmp_path / "store"))
    failed = [(x.prompt.id, x.failure.kind) for x in generations if not x.ok]
    assert failed == [("bad", "unreadable_file")]
    assert counts.failed == 1 and sum(x.ok for x in generations) == 63


# ---------------------------------------------------------------------- pre-flight


def test_matching_requests_names_the_mismatch(tmp_path):
    for i in range(1, 4):
        save(tmp_path / f"img_{i:03d}.png", "red")
    requests = [GenRequest(Prompt(id=f"prompt-{i}", text="x"), s)
                for i in range(1, 5) for s in (0, 1)]
    match = gen(tmp_path).matching_requests(requests, examples=2)
    assert (match.requests, match.matched, match.prompts, match.prompts_matched) == (8, 0, 4, 0)
    assert match.files == 3 and match.root == str(tmp_path)
    assert match.unmatched_ids == ("prompt-1", "prompt-2")
    assert match.stray_files == ("img_001.png", "img_002.png")
    line = match.summary("flux")
    assert line.startswith(f"model.flux: 0 of 4 prompts have an image in {tmp_path}")
    assert "'img_001.png'" in line and "<prompt_id>.png" in line and "\n" not in line


def test_matching_requests_counts_partial_matches_without_opening_files(tmp_path):
    save(tmp_path / "a.png", "red")  # serves every seed of a
    save(tmp_path / "b_0.png", "red")  # only seed 0 of b
    save(tmp_path / "c" / "1.png", "red")  # only seed 1 of c
    (tmp_path / "d.png").write_bytes(b"")  # corrupt, but present: generate() reports it
    save(tmp_path / "extra.png", "red")
    make_bad(tmp_path, "symlink_loop")  # 'bad' is not a regular file: not matched
    requests = [GenRequest(Prompt(id=pid, text="x"), s)
                for pid in ("a", "b", "c", "d", "bad", "none") for s in (0, 1)]
    match = gen(tmp_path).matching_requests(requests)
    assert match.matched == 6  # a0 a1 b0 c1 d0 d1
    assert (match.prompts, match.prompts_matched) == (6, 4)
    assert match.unmatched_ids == ("b", "c", "bad")
    assert match.stray_files == ("extra.png",)
    assert "6 of 12 prompt/seed requests have no file" in match.summary("m")
    full = gen(tmp_path).matching_requests(requests[:2])
    assert full.matched == 2 and full.unmatched_ids == ()
    assert full.summary("m") == (f"model.m: 1 of 1 prompts have an image in {tmp_path} "
                                 f"(files no prompt uses: 'b_0.png', 'c/1.png', 'd.png')")


def test_matching_requests_refuses_an_unusable_folder(tmp_path):
    with pytest.raises(AutojudgeError, match="does not exist"):
        gen(tmp_path / "nope").matching_requests([GenRequest(P1, 0)])


def test_permission_errors_fail_alone_even_as_root(tmp_path, monkeypatch):
    """The same paths as above, with the OS errors injected (root ignores permissions)."""
    import errno

    save(tmp_path / "ok.png", "red")
    save(tmp_path / "locked.png", "blue")
    save(tmp_path / "shut" / "0.png", "green")
    real_stat, real_read = os.stat, Path.read_bytes

    def stat(path, *args, **kwargs):
        if str(path).endswith("shut/0.png"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    def read_bytes(self):
        if self.name == "locked.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    ok, locked, shut = gen(tmp_path).generate([GenRequest(Prompt(id=i, text="x"), 0)
                                               for i in ("ok", "locked", "shut")])
    assert ok.ok
    assert locked.failure.kind == "unreadable_file" and locked.failure.retryable
    assert "cannot read" in locked.failure.message and "locked.png" in locked.failure.message
    assert shut.failure.kind == "unreadable_file"
    assert "shut/0.png: Permission denied" in shut.failure.message


def test_an_unforeseen_error_fails_one_request(tmp_path, monkeypatch):
    save(tmp_path / "a.png", "red")
    save(tmp_path / "b.png", "blue")
    g = gen(tmp_path)
    real = g._find

    def find(request):
        if request.prompt.id == "b":
            raise RuntimeError("something odd\nover two lines")
        return real(request)

    monkeypatch.setattr(g, "_find", find)
    a, b = g.generate([GenRequest(Prompt(id=i, text="x"), 0) for i in "ab"])
    assert a.ok and b.failure.kind == "unreadable_file"
    assert b.failure.message == ("model 'my_model': prompt 'b' seed 0: RuntimeError: "
                                 "something odd over two lines")


# ---------------------------------------------------------------------- a run, re-judged


def test_a_finished_run_is_re_judged_from_its_images_folder(compose, tmp_path):
    """model.folder.path=runs/<run>/images/<model> finds every image the run made, with
    the same bytes, so the judge's scores come from the store (cached by content)."""
    import json

    from autojudge.experiment import pipeline

    base = [f"store.root={tmp_path / 'store'}", "suite.tags=[text_rendering]",
            "suite.limit=2", "ratings.bootstrap_rounds=20", "logger=none", "progress=false"]
    pipeline.run(compose([*base, "model=[typeset,blank]"]), tmp_path / "run1")
    again = pipeline.run(compose([*base, "model=[folder,blank]",
                                  f"model.folder.path={tmp_path / 'run1' / 'images' / 'typeset'}"]),
                         tmp_path / "run2")

    def shas(run: str, model: str) -> dict:
        rows = [json.loads(line) for line in
                (tmp_path / run / "generations.jsonl").read_text().splitlines()]
        return {(r["prompt_id"], r["seed"]): r["image_sha256"] for r in rows
                if r["model"] == model}

    made = shas("run1", "typeset")
    assert len(made) == 2 and shas("run2", "folder") == made
    assert again["run"]["cache"]["judges"]["ocr"] == {**again["run"]["cache"]["judges"]["ocr"],
                                                       "computed": 0, "cached": 4}
