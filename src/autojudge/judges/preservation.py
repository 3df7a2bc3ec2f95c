"""Preservation judge: did an edit leave alone what it was told to leave alone?

For an editing prompt (one with an `init_image`), compares the generated image with the
init image over the region the edit must preserve: everything outside the mask for
inpainting (mask white = repaint, black = keep), the whole image for img2img / style
transfer (there it measures how much of the original survived; higher = closer).

Score (higher is better, in [0, 1]):

    metric "mae"  (default)  1 - mean |output - init| / 255 over the kept pixels and the
                             three RGB channels (1.0 = untouched, 0.0 = every kept pixel
                             inverted)
    metric "psnr"            min(PSNR, psnr_cap_db) / psnr_cap_db, PSNR over the kept
                             pixels in dB (identical images score 1.0)

Both are in `raw`, with the number of kept pixels. The output is resized to the init
image's size (bilinear) when they differ; the mask is grown by `mask_dilate_px` first, so
the seam an inpainting pipeline blends at the mask edge does not count against it. Pure
Pillow + numpy: no weights, deterministic, fast.

Example:
    >>> judge = PreservationJudge("preservation")
    >>> judge.applies(Prompt(id="p", text="a cat"))
    False
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autojudge.errors import AutojudgeError
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PointwiseJudge
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["PreservationJudge", "preservation_scores"]

METRICS = ("mae", "psnr")


def preservation_scores(output: Any, init: Any, mask: Any | None, *, threshold: int = 128,
                        dilate_px: int = 0) -> dict[str, float]:
    """{"mae", "psnr_db", "kept_pixels"} of `output` vs `init` outside `mask` (PIL images)."""
    from PIL import Image, ImageFilter

    init_rgb = init.convert("RGB")
    out_rgb = output.convert("RGB")
    if out_rgb.size != init_rgb.size:
        out_rgb = out_rgb.resize(init_rgb.size, Image.BILINEAR)
    a = np.asarray(out_rgb, dtype=np.float64)
    b = np.asarray(init_rgb, dtype=np.float64)
    if mask is None:
        keep = np.ones(a.shape[:2], dtype=bool)
    else:
        m = mask.convert("L")
        if m.size != init_rgb.size:
            m = m.resize(init_rgb.size, Image.NEAREST)
        if dilate_px > 0:
            m = m.filter(ImageFilter.MaxFilter(2 * dilate_px + 1))
        keep = np.asarray(m) < threshold
    kept = int(keep.sum())
    if kept == 0:
        return {"mae": float("nan"), "psnr_db": float("nan"), "kept_pixels": 0}
    diff = a[keep] - b[keep]
    mae = float(np.abs(diff).mean())
    mse = float((diff ** 2).mean())
    psnr = float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
    return {"mae": mae, "psnr_db": psnr, "kept_pixels": kept}


class PreservationJudge(PointwiseJudge):
    """Pointwise: how unchanged the region outside the mask stays (see module docstring)."""

    kind = "preservation"
    needs = "editing prompts with an init_image (e.g. suite=editing)"
    score_range = (0.0, 1.0)
    card = JUDGES_DIR / "preservation.md"
    non_semantic = ("batch_size",)

    @dataclass
    class Config:
        """Params of the `preservation` judge.

        Attributes:
            metric: "mae" (1 - normalised mean absolute difference) or "psnr"
                (PSNR / psnr_cap_db, capped at 1).
            psnr_cap_db: PSNR that counts as perfect for metric "psnr".
            mask_threshold: mask pixels (0-255, grayscale) at or above this are "repaint".
            mask_dilate_px: grow the repaint region by this many pixels before measuring.
            batch_size: images per call (pure numpy; any value works).
        """

        metric: str = "mae"
        psnr_cap_db: float = 40.0
        mask_threshold: int = 128
        mask_dilate_px: int = 4
        batch_size: int = 16

    def __init__(self, name: str, config: "PreservationJudge.Config | None" = None):
        super().__init__(name, config)
        c = self.config
        if c.metric not in METRICS:
            raise AutojudgeError(f"judge '{name}': metric={c.metric!r} is not one of "
                                 f"{list(METRICS)}")
        if c.psnr_cap_db <= 0:
            raise AutojudgeError(f"judge '{name}': psnr_cap_db must be > 0")
        if not 1 <= c.mask_threshold <= 255:
            raise AutojudgeError(f"judge '{name}': mask_threshold must be in 1..255")
        if c.mask_dilate_px < 0:
            raise AutojudgeError(f"judge '{name}': mask_dilate_px must be >= 0")

    def applies(self, prompt: Prompt) -> bool:
        return bool(getattr(prompt, "init_image", None))

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        return [self._one(item) for item in items]

    def _one(self, item: JudgeItem) -> Score:
        from PIL import Image

        prompt = item.prompt
        if not prompt.init_image:
            return Score(None, failure=Failure("not_applicable",
                                               f"prompt '{prompt.id}' has no init_image"))
        try:
            with Image.open(prompt.init_image) as im:
                init = im.convert("RGB")
            mask = None
            if prompt.mask:
                with Image.open(prompt.mask) as im:
                    mask = im.convert("L")
        except OSError as exc:
            return Score(None, failure=Failure("missing_file", f"prompt '{prompt.id}': cannot "
                                               f"read its init image or mask ({exc})"))
        c = self.config
        stats = preservation_scores(item.image, init, mask, threshold=c.mask_threshold,
                                    dilate_px=c.mask_dilate_px)
        if stats["kept_pixels"] == 0:
            return Score(None, raw=stats, failure=Failure(
                "empty_region", f"prompt '{prompt.id}': the mask covers the whole image, "
                "nothing to preserve"))
        if c.metric == "mae":
            value = 1.0 - stats["mae"] / 255.0
        else:
            value = min(stats["psnr_db"], c.psnr_cap_db) / c.psnr_cap_db
        raw = {"mae": round(stats["mae"], 4), "kept_pixels": stats["kept_pixels"],
               "psnr_db": None if math.isinf(stats["psnr_db"]) else round(stats["psnr_db"], 3),
               "region": "outside_mask" if mask is not None else "whole_image"}
        return Score(float(min(max(value, 0.0), 1.0)), raw=raw)
