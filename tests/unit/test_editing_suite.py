"""Editing entries in suites: init images and masks, validation, and cache keys that follow
the pixels, not the paths."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.suites.load import load_suite
from autojudge.types import GenRequest, Prompt

REPO = Path(__file__).resolve().parents[2]


def suite(folder: Path, entry: str) -> Path:
    path = folder / "s.yaml"
    path.write_text("prompts:\n  - id: e\n    text: edit it\n    category: edit\n" + entry)
    return path


@pytest.fixture
def images(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (16, 16), "red").save(tmp_path / "img" / "init.png")
    Image.new("L", (16, 16), 255).save(tmp_path / "img" / "mask.png")
    return tmp_path


def test_shipped_editing_suite_loads():
    s = load_suite(REPO / "prompt_suites" / "editing.yaml")
    tasks = {p.task for p in s.prompts}
    assert tasks == {"inpaint", "img2img"} and len(s.prompts) >= 10
    assert all(Path(p.init_image).is_file() for p in s.prompts)
    assert any(p.style_prompt for p in s.prompts)
    sizes = sum(f.stat().st_size for f in (REPO / "prompt_suites" / "editing").glob("*.png"))
    assert sizes < 200_000


def test_paths_resolve_relative_to_the_suite_and_task_is_inferred(images):
    p = load_suite(suite(images, "    init_image: img/init.png\n    mask: img/mask.png\n"
                         "    strength: 0.6\n")).prompts[0]
    assert p.task == "inpaint" and p.strength == 0.6
    assert p.init_image == str((images / "img" / "init.png").resolve())
    i2i = load_suite(suite(images, "    init_image: img/init.png\n    style_prompt: ink\n")).prompts[0]
    assert i2i.task == "img2img" and i2i.generation_text() == "edit it, ink"


@pytest.mark.parametrize("entry,needle", [
    ("    init_image: img/missing.png\n", "field 'init_image': image file not found"),
    ("    task: inpaint\n    init_image: img/init.png\n", "field 'mask'"),
    ("    task: img2img\n", "needs an init_image"),
    ("    task: outpaint\n    init_image: img/init.png\n", "unknown task"),
    ("    init_image: img/init.png\n    strength: 1.5\n", "field 'strength'"),
    ("    mask: img/mask.png\n    init_image: img/init.png\n    task: img2img\n", "field 'mask'"),
    ("    init_image: s.yaml\n", "not a readable image"),
])
def test_bad_editing_entries_are_one_line_errors(images, entry, needle):
    with pytest.raises(AutojudgeError) as info:
        load_suite(suite(images, entry))
    message = str(info.value)
    assert needle in message and "\n" not in message and "entry 1" in message


def test_content_hashes_follow_pixels_not_paths(images, tmp_path):
    a = load_suite(suite(images, "    init_image: img/init.png\n")).prompts[0]
    moved = tmp_path / "moved"
    shutil.copytree(images / "img", moved)
    b = Prompt(id="e", text="edit it", task="img2img", init_image=str(moved / "init.png"))
    assert GenRequest(a, 0).key_payload() == GenRequest(b, 0).key_payload()
    Image.new("RGB", (16, 16), "blue").save(moved / "init.png")
    c = Prompt(id="e", text="edit it", task="img2img", init_image=str(moved / "init.png"))
    assert GenRequest(c, 0).key_payload() != GenRequest(a, 0).key_payload()
    plain = Prompt(id="t", text="a cat")
    assert set(plain.content()) == {"id", "text", "expected_text"}  # txt2img keys unchanged
