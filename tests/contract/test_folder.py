"""Contract + specifics of the folder generator (images made elsewhere)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.generators.folder import FolderGenerator
from autojudge.registry import GENERATORS
from autojudge.types import GenRequest, Prompt
from generator_contract import GeneratorContract

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
