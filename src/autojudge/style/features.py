"""Style features of one image: what a judge may reward besides the prompt.

Each feature is a plain number computed from the pixels with numpy and Pillow, the same way
for every image, so that its difference between two images can enter a Bradley-Terry fit
as a covariate (autojudge.ratings.style_control):

    log_pixels     log(width x height)
    aspect         log(width / height) (0 = square; symmetric in portrait and landscape)
    brightness     mean luma (ITU-R BT.601) in [0, 1]
    contrast       RMS contrast: the standard deviation of luma in [0, 1]
    colourfulness  Hasler & Suesstrunk (2003): sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 +
                   mu_yb^2) on 0-255 opponent channels (0 for grey; ~100+ for vivid images)
    sharpness      variance of the 4-neighbour Laplacian of luma (0-255 scale), at most
                   512 px on the long side, so the number does not grow with resolution
    complexity     bytes per pixel of the image saved as JPEG (quality 75): busy, detailed
                   images compress worse
    text_area      the fraction of the image covered by OCR text boxes, when OCR ran (else
                   absent: it is not computed here)

Names are stable: they are the columns of a battle log's per-image features
(`features_a.<name>`, `features_b.<name>`) and the keys of `ratings.control`.

Example:
    >>> from PIL import Image
    >>> grey = image_features(Image.new("RGB", (64, 32), (128, 128, 128)))
    >>> round(grey["aspect"], 4), grey["contrast"], grey["colourfulness"], grey["sharpness"]
    (0.6931, 0.0, 0.0, 0.0)
"""
from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np


#: bump when a formula changes: cached features of the old formula are then not reused
FEATURES_VERSION = 1
_SHARPNESS_SIDE = 512


def _rgb(image: Any) -> Any:
    return image if image.mode == "RGB" else image.convert("RGB")


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk's M on an HxWx3 float array of 0-255 values."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    f64 = np.float64  # float32 pixels, float64 sums: exact 0 for a flat image
    return float(math.hypot(float(rg.std(dtype=f64)), float(yb.std(dtype=f64)))
                 + 0.3 * math.hypot(float(rg.mean(dtype=f64)), float(yb.mean(dtype=f64))))


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior pixels (0 when too small)."""
    if min(luma.shape) < 3:
        return 0.0
    lap = (luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1]
           - 4.0 * luma[1:-1, 1:-1])
    return float(lap.var(dtype=np.float64))


def jpeg_bytes_per_pixel(image: Any) -> float:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    return buffer.tell() / float(image.width * image.height)


def _sharpness(image: Any) -> float:
    """Laplacian variance of luma at a bounded size (Pillow's area filter to shrink)."""
    side = max(image.width, image.height)
    if side > _SHARPNESS_SIDE:
        scale = _SHARPNESS_SIDE / side
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), resample=4)  # BOX
    return laplacian_variance(_luma(np.asarray(image, dtype=np.float32)))


def image_features(image: Any) -> dict[str, float]:
    """Every pixel feature of one PIL image (see the module docstring)."""
    rgb_image = _rgb(image)
    rgb = np.asarray(rgb_image, dtype=np.float32)  # float32: half the memory traffic
    luma = _luma(rgb) / 255.0
    width, height = rgb_image.width, rgb_image.height
    return {
        "log_pixels": math.log(width * height),
        "aspect": math.log(width / height),
        "brightness": float(luma.mean(dtype=np.float64)),
        "contrast": float(luma.std(dtype=np.float64)),
        "colourfulness": colourfulness(rgb),
        "sharpness": _sharpness(rgb_image),
        "complexity": jpeg_bytes_per_pixel(rgb_image),
    }


def text_area(boxes: Sequence[Sequence[Sequence[float]]], width: int, height: int) -> float:
    """The fraction of a width x height image covered by OCR boxes (quadrilaterals, as
    rapidocr returns them), each box taken as its axis-aligned bounding rectangle and
    overlaps counted once (a coverage mask), so the value lies in [0, 1]."""
    if width <= 0 or height <= 0:
        return 0.0
    mask = np.zeros((height, width), dtype=bool)
    for box in boxes:
        xs = [float(point[0]) for point in box]
        ys = [float(point[1]) for point in box]
        x0, x1 = max(0, math.floor(min(xs))), min(width, math.ceil(max(xs)))
        y0, y1 = max(0, math.floor(min(ys))), min(height, math.ceil(max(ys)))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return float(mask.mean())
