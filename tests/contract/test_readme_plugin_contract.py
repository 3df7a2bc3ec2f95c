"""The README's plugin, as its author would test it outside this repository: the contract
mixin imported from the package (`autojudge.testing`), not from these tests."""
from __future__ import annotations

import hashlib
import re
import sys
import types

from PIL import Image

from autojudge.testing import PointwiseJudgeContract
from autojudge.types import JudgeItem, Prompt
from helpers import REPO


def _readme_plugin() -> type:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    body = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
                if b.startswith("# my_judges/brightness.py"))
    module = types.ModuleType("my_judges_brightness")
    sys.modules[module.__name__] = module  # dataclasses resolve annotations through it
    exec(compile(body, "README.md:my_judges/brightness.py", "exec"), module.__dict__)
    return module.BrightnessJudge


def _item(prompt: Prompt, level: int) -> JudgeItem:
    image = Image.new("RGB", (8, 8), (level, level, level))
    return JudgeItem(prompt, image, hashlib.sha256(image.tobytes()).hexdigest())


class TestReadmePluginContract(PointwiseJudgeContract):
    plugin_cls = _readme_plugin()
    fingerprint_changes = [{"gamma": 2.0}]
    fingerprint_invariant = [{"batch_size": 1}]

    def sample_items(self) -> list[JudgeItem]:
        prompt = Prompt(id="p", text="a bright room")
        return [_item(prompt, 40), _item(prompt, 200), _item(prompt, 120)]
