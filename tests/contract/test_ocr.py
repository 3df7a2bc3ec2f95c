"""Contract + specifics of the OCR judge, run on the real offline RapidOCR models.

One RapidOCR engine is loaded per module (the `ocr_engine` fixture in conftest.py) and
shared by every judge instance built here.
"""
from __future__ import annotations

import hashlib
import io
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from judge_contract import PairwiseJudgeContract, PointwiseJudgeContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.generators.baselines import BlankGenerator, NoiseGenerator, TypesetGenerator
from autojudge.judges.ocr import (OCRJudge, normalize_text, quiet_rapidocr_logging, reading_order,
                                  text_accuracy)
from autojudge.sdk.registry import JUDGES
from autojudge.types import GenRequest, JudgeItem, Prompt

REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "prompt_suites" / "starter.yaml"

#: used when the starter suite is not there
PHRASES = [
    "FRESH BREAD", "Open 24 Hours", "STOP", "Hello World", "CAFE 1987", "Big Sale 50% Off",
    "No Parking", "EXIT", "Welcome Home", "Happy Birthday Emma", "Coffee & Donuts",
    "Route 66", "Closed for Renovation", "Ice Cold Beer", "Thank You!",
    "Danger: High Voltage", "Est. 2024", "$4.99 Lunch Special", "Made in Italy",
    "The Quick Brown Fox Jumps Over The Lazy Dog",
]


#: always checked too: symbols and punctuation the starter suite may not have
PUNCTUATED = ["Big Sale 50% Off", "Coffee & Donuts", "$4.99 Lunch Special",
              "Danger: High Voltage", "The Quick Brown Fox Jumps Over The Lazy Dog"]


def starter_expected_texts() -> list[str]:
    """Every `expected_text` anywhere in prompt_suites/starter.yaml (format-agnostic)."""
    if not STARTER.exists():
        return []
    import yaml

    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expected_text" and isinstance(value, str) and value.strip():
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with STARTER.open() as f:
        for doc in yaml.safe_load_all(f):
            walk(doc)
    return list(dict.fromkeys(found))


def render(generator, prompt: Prompt, seed: int = 0) -> Image.Image:
    out = generator.generate([GenRequest(prompt, seed)])[0]
    image = Image.open(io.BytesIO(out.image))
    image.load()
    return image


def item(prompt: Prompt, image: Image.Image) -> JudgeItem:
    return JudgeItem(prompt=prompt, image=image,
                     image_sha=hashlib.sha256(image.tobytes()).hexdigest())


TYPESET = TypesetGenerator("typeset", TypesetGenerator.Config())
SMALL_TYPESET = TypesetGenerator("typeset", TypesetGenerator.Config(width=256, height=128,
                                                                    margin=16))
SIGN = Prompt(id="sign", text='A bakery sign that reads "FRESH BREAD"', tags=("text",),
              expected_text="FRESH BREAD")
NO_TEXT = Prompt(id="cat", text="A cat on a sofa")


def _sign_items() -> list[JudgeItem]:
    """Small images keep the contract fast (it scores these ~20 times)."""
    blank = BlankGenerator("b", BlankGenerator.Config(width=256, height=128))
    return [item(SIGN, render(SMALL_TYPESET, SIGN)), item(SIGN, render(blank, SIGN))]


class TestOCRContract(PointwiseJudgeContract):
    plugin_cls = OCRJudge
    plugin_name = "ocr"
    import_module = "autojudge.judges.ocr"
    fingerprint_changes = [{"min_confidence": 0.9}]
    fingerprint_invariant = [{"batch_size": 1}, {"batch_size": 64}]

    @pytest.fixture
    def make_plugin(self, plugin_params, ocr_engine):
        def make(**overrides):
            config = OCRJudge.Config(**{**plugin_params, **overrides})
            return OCRJudge(self.plugin_name, config, engine=ocr_engine)

        return make

    def sample_items(self):
        return _sign_items()

    def other_prompts(self):
        return [NO_TEXT, Prompt(id="ws", text="x", expected_text="  \n "),
                Prompt(id="empty", text="x", expected_text="")]


class _OCRPairwise:
    """A minimal pointwise -> pairwise wrapper around the OCR judge, here only so the
    pairwise contract runs against a real judge (the product's adapters live elsewhere)."""

    @dataclass
    class Config:
        tie_margin: float = 0.02

    def __init__(self, name, config=None, *, engine=None):
        self.name, self.config = name, config or _OCRPairwise.Config()
        self.inner = OCRJudge(name, OCRJudge.Config(), engine=engine)
        self.batch_size = self.inner.batch_size
        self._memo = {}

    def fingerprint(self):
        return {"kind": "ocr_pairwise_test", "version": 1, "params": asdict(self.config),
                "inner": dict(self.inner.fingerprint())}

    def check(self):
        self.inner.check()

    def applies(self, prompt):
        return self.inner.applies(prompt)

    def _score(self, judge_item):
        if judge_item.image_sha not in self._memo:
            self._memo[judge_item.image_sha] = self.inner.score([judge_item])[0]
        return self._memo[judge_item.image_sha]

    def compare(self, pairs):
        from autojudge.types import Verdict

        verdicts = []
        for pair in pairs:
            a, b = self._score(pair.a), self._score(pair.b)
            if a.failure or b.failure:
                verdicts.append(Verdict(None, failure=a.failure or b.failure))
            elif abs(a.value - b.value) <= self.config.tie_margin:
                verdicts.append(Verdict("tie" if a.value > 0 else "tie (bothbad)",
                                        a.value, b.value))
            else:
                verdicts.append(Verdict("model_a" if a.value > b.value else "model_b",
                                        a.value, b.value,
                                        raw={"a": a.raw["ocr_text"], "b": b.raw["ocr_text"]}))
        return verdicts


class TestOCRPairwiseContract(PairwiseJudgeContract):
    plugin_cls = _OCRPairwise
    plugin_name = "ocr_pairs"
    import_module = "autojudge.judges.ocr"
    fingerprint_changes = [{"tie_margin": 0.5}]

    @pytest.fixture
    def make_plugin(self, plugin_params, ocr_engine):
        def make(**overrides):
            config = _OCRPairwise.Config(**{**plugin_params, **overrides})
            return _OCRPairwise(self.plugin_name, config, engine=ocr_engine)

        return make

    def sample_pairs(self):
        from autojudge.types import PairItem

        good, bad = _sign_items()
        return [PairItem(SIGN, good, bad), PairItem(SIGN, bad, good), PairItem(SIGN, bad, bad)]

    def other_prompts(self):
        return [NO_TEXT]

    def test_winners(self, outputs):
        assert [v.winner for v in outputs] == ["model_a", "model_b", "tie (bothbad)"]


# ---------------------------------------------------------------------- real OCR


@pytest.fixture(scope="module")
def judge(ocr_engine) -> OCRJudge:
    return OCRJudge("ocr", OCRJudge.Config(), engine=ocr_engine)


def test_registered():
    assert JUDGES.get("ocr") is OCRJudge


def test_reads_typeset_text_and_rejects_blank_and_noise(judge):
    noise = NoiseGenerator("n", NoiseGenerator.Config())
    blank = BlankGenerator("b", BlankGenerator.Config())
    good, flat, static = judge.score([item(SIGN, render(TYPESET, SIGN)),
                                      item(SIGN, render(blank, SIGN)),
                                      item(SIGN, render(noise, SIGN))])
    assert good.value >= 0.9, good.raw
    assert good.raw["normalized_expected"] == "fresh bread"
    assert good.raw["boxes"] >= 1 and good.raw["ocr_text"]
    for bad in (flat, static):
        assert bad.failure is None and bad.value is not None  # no text: a score, not a failure
        assert bad.value <= 0.1, bad.raw
    assert flat.value == 0.0 and flat.raw["boxes"] == 0 and flat.raw["ocr_text"] == ""
    assert flat.raw["cer"] == 1.0


def test_misspelled_rendering_scores_lower(judge):
    exact, typo, worse = judge.score([
        item(SIGN, render(TYPESET, SIGN)),
        item(SIGN, render(TYPESET, Prompt(id="t", text="x", expected_text="FRESH BRAED"))),
        item(SIGN, render(TYPESET, Prompt(id="t2", text="x", expected_text="FRASH BROOT"))),
    ])
    assert exact.value > typo.value > worse.value, (exact.raw, typo.raw, worse.raw)
    assert 0.6 <= typo.value <= 0.9


def test_multi_line_text_joins_in_reading_order(judge):
    prompt = Prompt(id="fox", text="x", expected_text="The Quick Brown Fox Jumps Over The Lazy Dog")
    score = judge.score([item(prompt, render(TYPESET, prompt))])[0]
    assert score.raw["boxes"] >= 2, "should wrap onto several lines"
    assert score.value >= 0.95, score.raw


def test_transparent_png_reads_like_white(judge):
    """Dark text on a transparent background: alpha is composited over white."""
    rgb = render(TYPESET, SIGN)
    alpha = Image.eval(rgb.convert("L"), lambda v: 255 - v)  # text opaque, paper transparent
    rgba = Image.new("RGBA", rgb.size, (0, 0, 0, 0))
    rgba.putalpha(alpha)
    score = judge.score([item(SIGN, rgba)])[0]
    assert score.value >= 0.9, score.raw


def test_no_empty_detection_warning_on_stderr(judge, capfd):
    blank = BlankGenerator("b", BlankGenerator.Config(width=64, height=64))
    judge.score([item(SIGN, render(blank, SIGN))])
    err = capfd.readouterr().err
    assert "is empty" not in err and "[INFO]" not in err


@pytest.mark.slow
@pytest.mark.parametrize("text", list(dict.fromkeys(
    (starter_expected_texts() or PHRASES) + PUNCTUATED)))
def test_typeset_is_readable(judge, text):
    """The typeset baseline is the OCR ceiling: every suite text must read (nearly) exactly."""
    prompt = Prompt(id="p", text=f"a sign that says {text}", expected_text=text)
    score = judge.score([item(prompt, render(TYPESET, prompt))])[0]
    assert score.value >= 0.9, score.raw


# ---------------------------------------------------------------------- fake engines


class FakeEngine:
    """Stands in for RapidOCR: returns canned results per image width, or raises."""

    def __init__(self, results):
        self.results = results
        self.calls = 0

    def __call__(self, array):
        self.calls += 1
        assert isinstance(array, np.ndarray) and array.ndim == 3 and array.shape[2] == 3
        result = self.results[array.shape[1]]
        if isinstance(result, Exception):
            raise result
        return result


def box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def blank_of_width(width: int) -> Image.Image:
    return Image.new("L", (width, 10), 255)  # grayscale on purpose: judge converts to RGB


def test_engine_exception_fails_only_that_image():
    ok = SimpleNamespace(txts=("FRESH BREAD",), scores=(0.99,), boxes=np.array([box(0, 0, 9, 9)]))
    engine = FakeEngine({10: ok, 11: RuntimeError("onnx exploded\nsecond line")})
    judge = OCRJudge("ocr", OCRJudge.Config(), engine=engine)
    first, bad, last = judge.score([item(SIGN, blank_of_width(10)),
                                    item(SIGN, blank_of_width(11)),
                                    item(SIGN, blank_of_width(10))])
    assert first.value == 1.0 and last.value == 1.0
    assert bad.value is None and bad.failure.kind == "judge_error"
    assert "RuntimeError" in bad.failure.message and "onnx exploded" in bad.failure.message
    assert "\n" not in bad.failure.message


def test_engine_that_cannot_start_is_an_autojudge_error(monkeypatch):
    import rapidocr

    def broken(*args, **kwargs):
        raise FileNotFoundError("PP-OCRv6_det_small.onnx")

    monkeypatch.setattr(rapidocr, "RapidOCR", broken)
    with pytest.raises(AutojudgeError, match="could not start RapidOCR"):
        OCRJudge("ocr").score([item(SIGN, blank_of_width(10))])


def test_nothing_detected_scores_zero():
    engine = FakeEngine({10: SimpleNamespace(txts=None, scores=None, boxes=None)})
    score = OCRJudge("ocr", engine=engine).score([item(SIGN, blank_of_width(10))])[0]
    assert score.value == 0.0 and score.failure is None and score.raw["boxes"] == 0


def test_boxes_join_in_reading_order_and_low_confidence_is_dropped():
    # detected out of order: second line first, and a right word before a left word
    result = SimpleNamespace(
        txts=("HOURS", "24", "OPEN", "zzz"),
        scores=(0.95, 0.97, 0.99, 0.55),
        boxes=np.array([box(100, 62, 180, 90), box(10, 60, 60, 88), box(10, 10, 90, 40),
                        box(10, 120, 60, 140)], dtype=np.float32),
    )
    engine = FakeEngine({10: result})
    prompt = Prompt(id="open", text="x", expected_text="Open 24 hours")
    loose = OCRJudge("ocr", OCRJudge.Config(min_confidence=0.0), engine=engine)
    strict = OCRJudge("ocr", OCRJudge.Config(min_confidence=0.9), engine=engine)
    a = loose.score([item(prompt, blank_of_width(10))])[0]
    b = strict.score([item(prompt, blank_of_width(10))])[0]
    assert a.raw["ocr_text"] == "OPEN 24 HOURS zzz" and a.raw["boxes"] == 4
    assert b.raw["ocr_text"] == "OPEN 24 HOURS" and b.raw["boxes"] == 3
    assert b.value == 1.0 and a.value < 1.0


def test_text_area_is_the_share_of_the_image_the_kept_boxes_cover():
    # a 200 x 100 image: two kept boxes of 50 x 20 that overlap by 10 x 20, one dropped
    result = SimpleNamespace(
        txts=("OPEN", "24", "zzz"), scores=(0.99, 0.97, 0.3),
        boxes=np.array([box(0, 0, 50, 20), box(40, 0, 90, 20), box(0, 50, 200, 100)],
                       dtype=np.float32))
    judge = OCRJudge("ocr", OCRJudge.Config(min_confidence=0.5),
                     engine=FakeEngine({200: result}))
    prompt = Prompt(id="open", text="x", expected_text="Open 24")
    score = judge.score([item(prompt, Image.new("RGB", (200, 100), "white"))])[0]
    assert score.raw["text_area"] == pytest.approx(90 * 20 / (200 * 100))
    empty = OCRJudge("ocr", engine=FakeEngine({10: SimpleNamespace(txts=None, scores=None,
                                                                     boxes=None)}))
    assert empty.score([item(SIGN, blank_of_width(10))])[0].raw["text_area"] == 0.0


def test_not_applicable_items_are_failures_not_scores():
    engine = FakeEngine({})
    score = OCRJudge("ocr", engine=engine).score([item(NO_TEXT, blank_of_width(10))])[0]
    assert score.value is None and score.failure.kind == "not_applicable"
    assert engine.calls == 0


def test_engine_is_created_lazily_once(monkeypatch):
    import rapidocr

    made = []

    class CountingRapidOCR:
        def __init__(self, *args, **kwargs):
            made.append(kwargs)

        def __call__(self, array):
            return SimpleNamespace(txts=None, scores=None, boxes=None)

    monkeypatch.setattr(rapidocr, "RapidOCR", CountingRapidOCR)
    judge = OCRJudge("ocr", OCRJudge.Config())
    assert made == []
    judge.score([item(SIGN, blank_of_width(10)), item(SIGN, blank_of_width(10))])
    judge.score([item(SIGN, blank_of_width(10))])
    assert len(made) == 1
    assert logging.getLogger("RapidOCR").getEffectiveLevel() >= logging.WARNING


def test_logging_filter_drops_empty_detection_only():
    quiet_rapidocr_logging()
    log = logging.getLogger("RapidOCR")
    assert log.level == logging.WARNING

    def passes(msg):
        record = log.makeRecord("RapidOCR", logging.WARNING, __file__, 1, msg, (), None)
        return all(f.filter(record) for f in log.filters)

    assert not passes("The text detection result is empty")
    assert passes("Something else went wrong")


def test_check_names_the_missing_packages(monkeypatch):
    OCRJudge("ocr").check()  # installed here
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # import now raises ImportError
    with pytest.raises(AutojudgeError, match="pip install rapidocr onnxruntime") as info:
        OCRJudge("my_ocr").check()
    assert "my_ocr" in str(info.value) and "\n" not in str(info.value)


def test_bad_config_is_rejected():
    with pytest.raises(AutojudgeError, match="min_confidence"):
        OCRJudge("ocr", OCRJudge.Config(min_confidence=1.5))


# ---------------------------------------------------------------------- text metric


@pytest.mark.parametrize("raw,expected", [
    ("Hello, World!", "hello world"),
    ("  OPEN\t24\nHOURS  ", "open 24 hours"),
    ("Big Sale 50% Off", "big sale 50 off"),
    ("FRESH-BREAD", "fresh bread"),
    ("Straße", "strasse"),  # casefold
    ("Ｃａｆé ①", "café 1"),  # NFKC: full-width letters, circled digit
    ("café", "café"),  # decomposed é composes under NFKC
    ("...", ""),
    ("", ""),
    (None, ""),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_text_accuracy_ignores_case_punctuation_whitespace():
    assert text_accuracy("open 24 hours", "OPEN, 24  HOURS!") == 1.0
    assert text_accuracy("Thank You", "Thank you!") == 1.0
    assert text_accuracy("FRESH BRAED", "FRESH BREAD") == pytest.approx(1 - 2 / 11)
    assert text_accuracy("", "OPEN") == 0.0
    assert text_accuracy("completely different and much longer text", "OPEN") == 0.0  # clamped
    assert text_accuracy("anything", "") == 0.0 and text_accuracy("", "!!") == 1.0


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_text_accuracy_properties(a, b):
    score = text_accuracy(a, b)
    assert 0.0 <= score <= 1.0
    assert normalize_text(normalize_text(a)) == normalize_text(a)
    assert text_accuracy(a, a) == 1.0
    if normalize_text(a.upper()) == normalize_text(a):
        assert text_accuracy(a.upper() + " !", a) == 1.0


CER_PAIRS = [("open 24 hours", "open 24 hours"), ("fresh braed", "fresh bread"),
             ("", "open"), ("completely different and much longer text", "open"),
             ("stop", "s t o p"), ("cafe 1987", "café 1987"), ("exit", "tixe"),
             ("hello wrld", "hello world"), ("ice cold beer", "ice cold bear!"), ("a", "ab")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20), st.text(min_size=1, max_size=20)), max_size=3))
def test_char_error_rate_equals_torchmetrics(extra):
    """The core computes CER with rapidfuzz (no torch); torchmetrics' CharErrorRate (from
    the [test] extra) is the reference it must equal, pair by pair."""
    from torchmetrics.text import CharErrorRate

    from autojudge.judges.ocr import char_error_rate

    for hypothesis, reference in CER_PAIRS + extra:
        expected = float(CharErrorRate()([hypothesis], [reference]))
        assert char_error_rate(hypothesis, reference) == pytest.approx(expected, rel=1e-6)


def test_reading_order_groups_lines():
    boxes = [box(200, 14, 260, 40), box(0, 100, 50, 130), box(0, 10, 90, 42), box(100, 12, 190, 38)]
    assert reading_order(boxes) == [2, 3, 0, 1]
    assert reading_order([]) == []
