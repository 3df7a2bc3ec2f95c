"""OCR judge: how exactly does the image render the text the prompt asks for?

Reads the image with RapidOCR (PP-OCR models shipped inside the `rapidocr` wheel, run by
onnxruntime on the CPU, fully offline), joins the detected lines in reading order,
normalises both strings and scores `1 - CER` (character error rate, clamped to [0, 1]).
It applies only to prompts with a non-blank `expected_text`.

Heavy imports (rapidocr, onnxruntime) happen on first use, so importing this module stays
cheap; no torch anywhere.

Example:
    >>> normalize_text("  Open, 24  HOURS! ")
    'open 24 hours'
    >>> text_accuracy("OPEN 24 hours", "Open 24 Hours")
    1.0
    >>> text_accuracy("", "OPEN")
    0.0
"""
from __future__ import annotations

import logging
import os
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autojudge.errors import AutojudgeError
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PointwiseJudge
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["OCRJudge", "normalize_text", "char_error_rate", "text_accuracy",
           "reading_order", "quiet_rapidocr_logging", "no_onnxruntime_telemetry", "to_rgb"]

_RAPIDOCR_LOGGER = "RapidOCR"


def normalize_text(s: str | None) -> str:
    """Unicode NFKC, casefold, punctuation and symbols removed, whitespace collapsed.

    Punctuation (Unicode category P*) and symbols (S*: "%", "$", "+", emoji...) are
    replaced by a space rather than deleted, so "FRESH-BREAD" and "fresh bread" agree.
    """
    if not s:
        return ""
    s = unicodedata.normalize("NFKC", s).casefold()
    chars = [" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in s]
    return " ".join("".join(chars).split())


def char_error_rate(hypothesis: str, reference: str) -> float:
    """Character error rate: Levenshtein distance / reference length (rapidfuzz).

    The same value as torchmetrics' CharErrorRate for one pair (tests check it), without
    importing torch. Empty reference: 0.0 if the hypothesis is empty too, else 1.0.
    """
    if not reference:
        return 0.0 if not hypothesis else 1.0
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(hypothesis, reference) / len(reference)


def text_accuracy(ocr_text: str | None, expected: str | None) -> float:
    """1 - CER of the normalised strings, clamped to [0, 1] (1.0 = exact match)."""
    cer = char_error_rate(normalize_text(ocr_text), normalize_text(expected))
    return 1.0 - min(max(cer, 0.0), 1.0)


def reading_order(boxes: Sequence[Any]) -> list[int]:
    """Indices of text boxes in reading order: lines top to bottom, left to right in a line.

    Each box is 4 (x, y) corner points as RapidOCR returns them. Boxes whose vertical
    centres lie within half a (median) box height of a line's first box join that line,
    so words on one line at slightly different heights still read left to right.
    """
    if len(boxes) == 0:
        return []
    pts = [np.asarray(b, dtype=float).reshape(-1, 2) for b in boxes]
    cy = [float(p[:, 1].mean()) for p in pts]
    x0 = [float(p[:, 0].min()) for p in pts]
    heights = [float(p[:, 1].max() - p[:, 1].min()) for p in pts]
    tol = max(1.0, float(np.median(heights)) / 2)
    lines: list[list[int]] = []
    line_y: list[float] = []
    for i in sorted(range(len(pts)), key=lambda i: (cy[i], x0[i])):
        if lines and abs(cy[i] - line_y[-1]) <= tol:
            lines[-1].append(i)
        else:
            lines.append([i])
            line_y.append(cy[i])
    return [i for line in lines for i in sorted(line, key=lambda i: x0[i])]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def to_rgb(image: Any) -> Any:
    """RGB copy of a PIL image; transparency is composited over white (a plain
    convert("RGB") would turn transparent pixels black and hide dark text)."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB")
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


class _DropEmptyDetection(logging.Filter):
    """Drops RapidOCR's per-image "The text detection result is empty" warning (and its
    siblings for the classifier and recogniser): no text is a valid result, scored 0."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("The text ") and message.endswith("is empty"))


def no_onnxruntime_telemetry() -> None:
    """onnxruntime (1.2x official wheels, Linux and macOS) writes a telemetry device id
    and an event database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime when it
    is imported, so a run would write under the home folder. ORT_DISABLE_TELEMETRY=1 set
    before that import turns its telemetry off entirely, files included;
    `onnxruntime.disable_telemetry_events()` comes too late (the files exist by then).
    A value the user set wins."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def quiet_rapidocr_logging() -> None:
    """RapidOCR logs INFO lines per model load and a WARNING per image with no text."""
    log = logging.getLogger(_RAPIDOCR_LOGGER)
    log.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropEmptyDetection) for f in log.filters):
        log.addFilter(_DropEmptyDetection())


class OCRJudge(PointwiseJudge):
    """Pointwise judge: 1 - character error rate between OCR'd and expected text.

    Score in [0, 1]; 1.0 means every character of `expected_text` was read (after
    normalisation: case, punctuation, symbols and whitespace don't count). An image where
    OCR finds no text scores 0.0 (a valid score, not a failure); an exception from the OCR
    engine on one image gives that image Score(None, failure=Failure("judge_error", ...)).

    raw = {"ocr_text", "normalized_ocr", "normalized_expected", "cer", "boxes",
           "confidences", "text_area"} so every score can be audited (no timings: equal
    inputs give equal Scores); `text_area` is the fraction of the image the kept boxes
    cover (autojudge.style.features.text_area), a style feature `ratings.control` can
    hold fixed.
    """

    kind = "ocr"
    #: what `applies` needs, for the pre-flight message when no prompt qualifies
    needs = "prompts with expected_text (the text an image should render)"
    score_range = (0.0, 1.0)
    validation_families = ("text",)
    card = JUDGES_DIR / "ocr.md"
    non_semantic = ("batch_size",)

    @dataclass
    class Config:
        """Params of the `ocr` judge.

        Attributes:
            min_confidence: ignore OCR boxes whose recognition confidence is below this
                (RapidOCR itself already drops boxes below 0.5).
            batch_size: images per `score` call (does not change scores).
        """

        min_confidence: float = 0.0
        batch_size: int = 8

    def __init__(self, name: str = "ocr", config: "OCRJudge.Config | None" = None, *,
                 engine: Any = None):
        """`engine`: an existing RapidOCR instance to share (tests, several judges);
        by default one is created on first use."""
        super().__init__(name, config)
        if not 0.0 <= self.config.min_confidence <= 1.0:
            raise AutojudgeError(
                f"judge '{name}': min_confidence={self.config.min_confidence} must be "
                f"between 0 and 1"
            )
        self._engine: Any = engine

    def check(self) -> None:
        # find_spec, not import: importing rapidocr loads OpenCV (a second), and a warm
        # re-run that finds every score in the store never needs it.
        from importlib.util import find_spec

        for module, package in (("rapidocr", "rapidocr"), ("onnxruntime", "onnxruntime"),
                                ("rapidfuzz", "rapidfuzz")):
            if find_spec(module) is None:
                raise AutojudgeError(
                    f"judge '{self.name}' needs {package}, which is not installed; "
                    f"pip install rapidocr onnxruntime rapidfuzz"
                )

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.expected_text and prompt.expected_text.strip())

    @property
    def engine(self) -> Any:
        """The RapidOCR engine, created on first use and kept for this judge's lifetime."""
        if self._engine is None:
            no_onnxruntime_telemetry()  # before rapidocr imports onnxruntime
            quiet_rapidocr_logging()
            try:
                from rapidocr import RapidOCR
            except ImportError as exc:
                raise AutojudgeError(
                    f"judge '{self.name}' needs RapidOCR and onnxruntime ({exc}); "
                    f"pip install rapidocr onnxruntime"
                ) from exc
            try:
                self._engine = RapidOCR(params={"Global.log_level": "warning"})
            except Exception as exc:  # models missing or onnxruntime broken: every image fails
                raise AutojudgeError(
                    f"judge '{self.name}': could not start RapidOCR ({type(exc).__name__}: "
                    f"{_one_line(exc)}); reinstall it: pip install -U rapidocr onnxruntime"
                ) from exc
            quiet_rapidocr_logging()  # RapidOCR() resets the level from its config
        return self._engine

    def read(self, image: Any) -> tuple[str, int, list[float]]:
        """OCR one PIL image: (text in reading order, number of boxes kept, confidences)."""
        text, n_boxes, confidences, _ = self.read_boxes(image)
        return text, n_boxes, confidences

    def read_boxes(self, image: Any) -> tuple[str, int, list[float], float]:
        """`read` plus the fraction of the image the kept boxes cover."""
        from autojudge.style.features import text_area

        result = self.engine(np.asarray(to_rgb(image)))
        txts = getattr(result, "txts", None)
        boxes = getattr(result, "boxes", None)
        if not txts:
            return "", 0, [], 0.0
        scores = list(getattr(result, "scores", None) or [1.0] * len(txts))
        keep = [i for i, s in enumerate(scores) if s >= self.config.min_confidence
                and str(txts[i]).strip()]
        if boxes is not None and len(boxes) == len(txts):
            keep = [keep[j] for j in reading_order([boxes[i] for i in keep])]
        text = " ".join(str(txts[i]).strip() for i in keep)
        area = 0.0
        if boxes is not None and len(boxes) == len(txts):
            area = text_area([boxes[i] for i in keep], *image.size)
        return text, len(keep), [round(float(scores[i]), 4) for i in keep], round(area, 6)

    def score_one(self, item: JudgeItem) -> Score:
        if not self.applies(item.prompt):
            return Score(None, failure=Failure(
                "not_applicable", f"judge '{self.name}': prompt '{item.prompt.id}' has no "
                f"expected_text to read"))
        expected = item.prompt.expected_text or ""
        try:
            ocr_text, n_boxes, confidences, area = self.read_boxes(item.image)
        except AutojudgeError:  # the environment, not this image: stop the run
            raise
        except Exception as exc:  # one bad image never kills the run
            return Score(None, failure=Failure(
                "judge_error", f"OCR failed on image {item.image_sha[:12]}: "
                f"{type(exc).__name__}: {_one_line(exc)}"))
        norm_ocr, norm_expected = normalize_text(ocr_text), normalize_text(expected)
        cer = char_error_rate(norm_ocr, norm_expected)
        value = 1.0 - min(max(cer, 0.0), 1.0)
        raw = {"ocr_text": ocr_text, "normalized_ocr": norm_ocr,
               "normalized_expected": norm_expected, "cer": round(cer, 6),
               "boxes": n_boxes, "confidences": confidences, "text_area": area}
        return Score(value, raw=raw)

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        return [self.score_one(item) for item in items]
