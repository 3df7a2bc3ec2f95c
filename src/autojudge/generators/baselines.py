"""Reference generators that need no model: blank canvas, seeded noise, typeset text.

They anchor a leaderboard: a real model should beat `blank` and `noise` on every judge,
and `typeset` is the ceiling for legible text (the OCR judge should read it exactly).
All three are deterministic: the same request gives byte-identical PNG bytes (PNG written
without timestamps or other metadata), so they are cacheable and cost nothing.

Example:
    >>> from autojudge.types import GenRequest, Prompt
    >>> gen = TypesetGenerator("typeset", TypesetGenerator.Config(width=256, height=128))
    >>> out = gen.generate([GenRequest(Prompt(id="p", text="a sign", expected_text="OPEN"), 0)])
    >>> out[0].ok, out[0].image[:4]
    (True, b'\\x89PNG')
"""
from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from autojudge.errors import AutojudgeError
from autojudge.sdk import Generator
from autojudge.types import Failure, GenOutput, GenRequest, stable_hash

__all__ = ["BlankGenerator", "NoiseGenerator", "TypesetGenerator", "encode_png", "layout_text"]


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes with no metadata chunks (no tIME/tEXt), so equal pixels give equal bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _check_color(label: str, field_name: str, color: str) -> None:
    try:
        ImageColor.getrgb(color)
    except ValueError as exc:
        raise AutojudgeError(
            f"model '{label}': {field_name}={color!r} is not a colour Pillow knows; "
            f"use a name like 'white' or a hex code like '#808080'"
        ) from exc


def _check_size(label: str, width: int, height: int) -> None:
    if width < 1 or height < 1 or width > 8192 or height > 8192:
        raise AutojudgeError(
            f"model '{label}': image size {width}x{height} is out of range; "
            f"set width and height between 1 and 8192"
        )


class _Baseline(Generator):
    """Shared plumbing: timing per image; nothing to check (Pillow and numpy only)."""

    cheap_to_remake = True  # deterministic and free: the same bytes every time
    batch_size = 16

    def _render(self, request: GenRequest) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        outputs = []
        for request in requests:
            start = time.perf_counter()
            try:
                data = encode_png(self._render(request))
            except Exception as exc:  # one odd prompt fails alone, never its batch
                message = " ".join(f"model '{self.name}': prompt '{request.prompt.id}' seed "
                                   f"{request.seed}: {type(exc).__name__}: {exc}".split())
                outputs.append(GenOutput(image=None, latency_s=time.perf_counter() - start,
                                         failure=Failure("generator_error", message[:500])))
                continue
            outputs.append(GenOutput(image=data, latency_s=time.perf_counter() - start,
                                     cost_usd=0.0))
        return outputs


class BlankGenerator(_Baseline):
    """A flat canvas of one colour, whatever the prompt (the floor every model must beat)."""

    kind = "blank"

    @dataclass
    class Config:
        """Params of the `blank` generator.

        Attributes:
            width, height: image size in pixels.
            color: any Pillow colour: a name ("white", "gray") or "#rrggbb".
        """

        width: int = 512
        height: int = 512
        color: str = "white"

    def __init__(self, name: str, config: "BlankGenerator.Config | None" = None):
        super().__init__(name, config)
        _check_size(name, self.config.width, self.config.height)
        _check_color(name, "color", self.config.color)

    def _render(self, request: GenRequest) -> Image.Image:
        return Image.new("RGB", (self.config.width, self.config.height),
                         ImageColor.getrgb(self.config.color))


class NoiseGenerator(_Baseline):
    """Uniform RGB noise, seeded by the request's seed and a stable hash of the prompt text.

    The generator is numpy's `default_rng([seed mod 2**64, first 64 bits of
    sha256(prompt text)])`, so the same (prompt text, seed) gives the same bytes on every
    machine and every run, and different prompts or seeds give different noise.
    """

    kind = "noise"

    @dataclass
    class Config:
        """Params of the `noise` generator.

        Attributes:
            width, height: image size in pixels.
        """

        width: int = 512
        height: int = 512

    def __init__(self, name: str, config: "NoiseGenerator.Config | None" = None):
        super().__init__(name, config)
        _check_size(name, self.config.width, self.config.height)

    def _render(self, request: GenRequest) -> Image.Image:
        text_key = int(stable_hash(request.prompt.text)[:16], 16)
        rng = np.random.default_rng([request.seed % 2**64, text_key])
        pixels = rng.integers(0, 256, size=(self.config.height, self.config.width, 3),
                              dtype=np.uint8)
        return Image.fromarray(pixels, mode="RGB")


# --------------------------------------------------------------------------- typesetting

Measure = Callable[[str], float]

# Where str.splitlines() breaks a line, so paragraphs can be walked lazily.
_LINE_END = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_WORD = re.compile(r"\S+")


def _paragraphs(text: str) -> Iterator[str]:
    """What `text.splitlines()` returns, one at a time (a huge text is never split whole)."""
    pos = 0
    for match in _LINE_END.finditer(text):
        yield text[pos:match.start()]
        pos = match.end()
    if pos < len(text):
        yield text[pos:]


def _fits(text: str, max_width: float, measure: Measure, probe: int = 256) -> bool:
    """measure(text) <= max_width, without measuring all of a very long text that a
    prefix already shows to be too wide (widths grow with length)."""
    if len(text) > probe and measure(text[:probe]) > max_width:
        return False
    return measure(text) <= max_width


def _fitting_prefix(word: str, start: int, max_width: float, measure: Measure) -> int:
    """Length of the longest prefix of word[start:] that fits (at least 1 character).

    Gallops (1, 2, 4, ... characters) until a prefix is too wide, then bisects, so the
    cost is O(log n) measurements of at most twice the answer, whatever the word's length.
    """
    total = len(word) - start
    lo = hi = 1
    while hi < total:
        hi = min(total, hi * 2)
        if measure(word[start:start + hi]) > max_width:
            hi -= 1
            break
        lo = hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(word[start:start + mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _split_long_word(word: str, max_width: float, measure: Measure) -> Iterator[str]:
    """Break one word that is wider than the line into pieces that fit (at least 1 char),
    lazily, each the longest prefix of the rest that fits."""
    start = 0
    while start < len(word):
        size = _fitting_prefix(word, start, max_width, measure)
        yield word[start:start + size]
        start += size


def wrap_text(text: str, max_width: float, measure: Measure,
              max_lines: int | None = None) -> tuple[list[str], bool]:
    """Greedy word wrap of `text` to `max_width`; explicit newlines start new lines.

    Empty lines at either end are dropped (blank paragraphs in the middle are kept).

    Args:
        text: the text; runs of spaces and tabs between words count as one space.
        max_width: line width, in the units of `measure`.
        measure: width of a string.
        max_lines: stop once max_lines + 1 lines exist (the extra one says "more
            follows"), so the cost depends on what fits, not on the length of `text`.

    Returns:
        (lines, broke_word): broke_word is True when a word alone was wider than the
        line and had to be split between characters (a layout to avoid if a smaller font
        helps).
    """
    limit = None if max_lines is None else max(0, max_lines) + 1
    lines: list[str] = []
    blanks = 0  # blank lines seen since the last text line, kept only if text follows
    broke = False

    def push(line: str) -> bool:
        nonlocal blanks
        if not line:
            blanks += 1 if lines else 0
            return False
        lines.extend([""] * (blanks if limit is None else min(blanks, limit)))
        lines.append(line)
        blanks = 0
        return limit is not None and len(lines) >= limit

    for paragraph in _paragraphs(text):
        current = ""
        for match in _WORD.finditer(paragraph):
            word = match.group()
            candidate = f"{current} {word}" if current else word
            if _fits(candidate, max_width, measure):
                current = candidate
                continue
            if current and push(current):
                return lines[:limit], broke
            current = word
            if not _fits(word, max_width, measure):
                broke = True
                pieces = _split_long_word(word, max_width, measure)
                current = next(pieces)
                for piece in pieces:
                    if push(current):
                        return lines[:limit], broke
                    current = piece
        if push(current):
            return lines[:limit], broke
    return lines, broke


@dataclass(frozen=True)
class TextLayout:
    """Where `layout_text` decided to put the text.

    `lines` are the lines to draw: when the text does not fit (`fits` False) only the
    lines that fit in the box, from the start of the text.
    """

    font_size: int
    lines: tuple[str, ...]
    line_height: int
    fits: bool


def _layout_at(text: str, size: int, box_w: int, box_h: int,
               line_spacing: float) -> tuple[TextLayout, bool]:
    font = ImageFont.load_default(size=size)
    line_height = max(1, round(size * line_spacing))
    # lines whose block (first line's size + line_height per further line) fits in box_h
    room = 1 + (box_h - size) // line_height if size <= box_h else 0
    shown = max(1, room)  # a font taller than the box still draws its first line
    lines, broke = wrap_text(text, box_w, font.getlength, max_lines=shown)
    return TextLayout(size, tuple(lines[:shown]), line_height, len(lines) <= room), broke


def layout_text(text: str, width: int, height: int, *, max_font_size: int,
                min_font_size: int, margin: int, line_spacing: float) -> TextLayout:
    """Largest font size in [min, max] at which `text` wraps inside the margins without
    splitting a word; failing that, the largest at which it fits with words split; failing
    that, `min_font_size` with the lines that fit (the rest of the text is cut off).

    Sizes are binary-searched (fitting is monotone in the font size up to rounding), and
    each size wraps only until its box is full, so any text lays out in time bounded by
    what fits in the image, not by its length; the result is deterministic either way.
    """
    box_w, box_h = max(1, width - 2 * margin), max(1, height - 2 * margin)
    cache: dict[int, tuple[TextLayout, bool]] = {}

    def at(size: int) -> tuple[TextLayout, bool]:
        if size not in cache:
            cache[size] = _layout_at(text, size, box_w, box_h, line_spacing)
        return cache[size]

    def largest(ok: Callable[[TextLayout, bool], bool]) -> TextLayout | None:
        lo, hi, best = min_font_size, max_font_size, None
        while lo <= hi:
            mid = (lo + hi) // 2
            layout, broke = at(mid)
            if ok(layout, broke):
                best, lo = layout, mid + 1
            else:
                hi = mid - 1
        return best

    return (largest(lambda lay, broke: lay.fits and not broke)
            or largest(lambda lay, broke: lay.fits)
            or at(min_font_size)[0])


class TypesetGenerator(_Baseline):
    """Renders the text the prompt asks for, legibly: the ceiling for text rendering.

    With `expected_text` set, draws exactly that text (stripped) in Pillow's built-in
    scalable font (`ImageFont.load_default(size=...)`, works offline with no system fonts),
    `color` on `background`, each line centred and the block centred vertically, word
    wrapped to the width inside `margin`, at the largest size from `max_font_size` down to
    `min_font_size` that fits without splitting a word (splitting only if nothing else fits).
    Explicit newlines in the expected text are kept as line breaks.

    Without `expected_text` (or with a blank one), `no_text` decides:
      - "prompt" (default): a caption card, the prompt text itself at most
        `caption_font_size` pixels tall, laid out the same way. This shows how much a
        judge rewards literally writing the prompt into the image (CLIP-style judges do).
      - "blank": a plain `background` canvas.

    The built-in font covers Latin script; other scripts render as missing-glyph boxes.
    """

    kind = "typeset"
    # 2: text that does not fit at min_font_size shows its first lines (it was centred on
    # the middle of the whole text), so cached images of such prompts must be redrawn
    version = 2

    @dataclass
    class Config:
        """Params of the `typeset` generator.

        Attributes:
            width, height: image size in pixels.
            max_font_size, min_font_size: font size range in pixels, tried largest first.
            caption_font_size: largest size for the caption card (prompts with no text).
            margin: blank border in pixels kept on every side.
            line_spacing: distance between baselines as a multiple of the font size.
            color, background: Pillow colours of the text and the canvas.
            no_text: "prompt" (caption card of the prompt text) or "blank", for prompts
                without expected_text.
        """

        width: int = 512
        height: int = 512
        max_font_size: int = 72
        min_font_size: int = 10
        caption_font_size: int = 28
        margin: int = 32
        line_spacing: float = 1.25
        color: str = "black"
        background: str = "white"
        no_text: str = "prompt"

    _NO_TEXT = ("prompt", "blank")

    def __init__(self, name: str, config: "TypesetGenerator.Config | None" = None):
        super().__init__(name, config)
        c = self.config
        _check_size(name, c.width, c.height)
        _check_color(name, "color", c.color)
        _check_color(name, "background", c.background)
        if not 1 <= c.min_font_size <= c.max_font_size:
            raise AutojudgeError(
                f"model '{name}': font sizes min={c.min_font_size} max={c.max_font_size} "
                f"are invalid; set 1 <= min_font_size <= max_font_size"
            )
        if c.caption_font_size < 1:
            raise AutojudgeError(f"model '{name}': caption_font_size must be >= 1")
        if c.no_text not in self._NO_TEXT:
            raise AutojudgeError(
                f"model '{name}': no_text={c.no_text!r} is not one of {list(self._NO_TEXT)}"
            )
        if c.margin < 0 or 2 * c.margin >= min(c.width, c.height):
            raise AutojudgeError(
                f"model '{name}': margin={c.margin} leaves no room in a "
                f"{c.width}x{c.height} image; use a smaller margin"
            )
        if c.line_spacing <= 0:
            raise AutojudgeError(f"model '{name}': line_spacing must be > 0")

    def text_for(self, request: GenRequest) -> tuple[str, int]:
        """(text to draw, largest font size) for `request`; text '' means a plain canvas."""
        c = self.config
        expected = (request.prompt.expected_text or "").strip()
        if expected:
            return expected, c.max_font_size
        if c.no_text == "prompt":
            return request.prompt.text.strip(), min(c.caption_font_size, c.max_font_size)
        return "", c.max_font_size

    def _render(self, request: GenRequest) -> Image.Image:
        c = self.config
        image = Image.new("RGB", (c.width, c.height), ImageColor.getrgb(c.background))
        text, max_size = self.text_for(request)
        if not text:
            return image
        layout = layout_text(text, c.width, c.height, max_font_size=max_size,
                             min_font_size=min(c.min_font_size, max_size), margin=c.margin,
                             line_spacing=c.line_spacing)
        font = ImageFont.load_default(size=layout.font_size)
        draw = ImageDraw.Draw(image)
        n = len(layout.lines)
        block_h = layout.font_size + layout.line_height * (n - 1)
        top = (c.height - block_h) / 2
        fill = ImageColor.getrgb(c.color)
        for i, line in enumerate(layout.lines):
            if not line:
                continue
            # anchor "mm" centres the line's box on the point (x centre, line centre)
            x = c.width / 2
            y = top + i * layout.line_height + layout.font_size / 2
            draw.text((x, y), line, font=font, fill=fill, anchor="mm")
        return image
