"""Preservation judge: the judge contract plus what it measures."""
from __future__ import annotations

import numpy as np
import pytest
from judge_contract import PointwiseJudgeContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.judges.preservation import PreservationJudge
from autojudge.sdk.registry import JUDGES
from autojudge.types import JudgeItem, Prompt

EDITING = None  # set by the module fixture


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("preservation")
    init = Image.new("RGB", (32, 32), (10, 120, 200))
    init.save(root / "init.png")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask.save(root / "mask.png")
    return root


def inpaint_prompt(files, pid="p"):
    return Prompt(id=pid, text="a red square", task="inpaint", init_image=str(files / "init.png"),
                  mask=str(files / "mask.png"))


def edited(inside=(255, 0, 0), outside=(10, 120, 200), size=32):
    image = Image.new("RGB", (size, size), outside)
    s = size // 32
    image.paste(inside, (8 * s, 8 * s, 24 * s, 24 * s))
    return image


class TestPreservationContract(PointwiseJudgeContract):
    plugin_cls = PreservationJudge
    plugin_name = "preservation"
    import_module = "autojudge.judges.preservation"
    fingerprint_changes = [{"metric": "psnr"}, {"mask_dilate_px": 0}, {"mask_threshold": 64}]
    fingerprint_invariant = [{"batch_size": 1}]

    @pytest.fixture
    def judge_items(self, files):
        p = inpaint_prompt(files)
        return [JudgeItem(p, edited(), "a"), JudgeItem(p, edited(outside=(0, 0, 0)), "b"),
                JudgeItem(p, edited(size=64), "c")]

    def other_prompts(self):
        return [Prompt(id="t", text="a cat")]


def test_registered():
    assert JUDGES.get("preservation") is PreservationJudge


def test_scores_what_stays_outside_the_mask(files):
    judge = PreservationJudge("preservation")
    p = inpaint_prompt(files)
    perfect, ruined, resized = judge.score([
        JudgeItem(p, edited(), "a"), JudgeItem(p, edited(outside=(255, 255, 255)), "b"),
        JudgeItem(p, edited(size=64), "c")])
    assert perfect.value == pytest.approx(1.0)  # the masked region may change freely
    assert resized.value > 0.97
    expected = 1 - np.mean([245, 135, 55]) / 255
    assert ruined.value == pytest.approx(expected, abs=1e-6)
    assert perfect.raw["region"] == "outside_mask" and perfect.raw["kept_pixels"] > 0
    psnr = PreservationJudge("p", PreservationJudge.Config(metric="psnr"))
    assert psnr.score([JudgeItem(p, edited(), "a")])[0].value == 1.0


def test_img2img_uses_the_whole_image(files):
    p = Prompt(id="s", text="style", task="img2img", init_image=str(files / "init.png"))
    score = PreservationJudge("p").score([JudgeItem(p, edited(), "a")])[0]
    assert score.raw["region"] == "whole_image" and 0.5 < score.value < 1.0


def test_bad_config_is_one_line():
    with pytest.raises(AutojudgeError, match="metric"):
        PreservationJudge("p", PreservationJudge.Config(metric="ssim"))
