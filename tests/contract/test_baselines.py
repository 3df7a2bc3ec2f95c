"""Contract + specifics of the weight-free baselines: blank, noise, typeset."""
from __future__ import annotations

import io

import numpy as np
import pytest
from generator_contract import GeneratorContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.generators.baselines import (BlankGenerator, NoiseGenerator, TypesetGenerator,
                                            layout_text, wrap_text)
from autojudge.sdk.registry import GENERATORS
from autojudge.types import GenRequest, Prompt

SIGN = Prompt(id="sign", text='A shop sign that reads "FRESH BREAD"', tags=("text",),
              expected_text="FRESH BREAD")
CAT = Prompt(id="cat", text="A photo of a cat on a red sofa")
LONG = Prompt(id="long", text="A poster",
              expected_text="The Quick Brown Fox Jumps Over The Lazy Dog")

REQUESTS = [GenRequest(SIGN, 0), GenRequest(CAT, 0), GenRequest(CAT, 1), GenRequest(LONG, 7)]


def small_margin(cls):
    return {"margin": 4} if cls is TypesetGenerator else {}


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


class _Small:
    """Small images keep the contract fast."""

    def default_params(self):
        return {"width": 128, "height": 96}

    def sample_requests(self):
        return list(REQUESTS)


class TestBlankContract(_Small, GeneratorContract):
    plugin_cls = BlankGenerator
    plugin_name = "blank"
    import_module = "autojudge.generators.baselines"
    fingerprint_changes = [{"color": "black"}, {"width": 64}, {"height": 64}]


class TestNoiseContract(_Small, GeneratorContract):
    plugin_cls = NoiseGenerator
    plugin_name = "noise"
    import_module = "autojudge.generators.baselines"
    fingerprint_changes = [{"width": 64}, {"height": 64}]


class TestTypesetContract(GeneratorContract):
    plugin_cls = TypesetGenerator
    plugin_name = "typeset"
    import_module = "autojudge.generators.baselines"
    fingerprint_changes = [{"max_font_size": 40}, {"margin": 8}, {"color": "navy"},
                           {"background": "ivory"}, {"no_text": "blank"},
                           {"caption_font_size": 12}, {"width": 320}]

    def default_params(self):
        return {"width": 256, "height": 192}

    def sample_requests(self):
        return list(REQUESTS)


# ---------------------------------------------------------------------- specifics


@pytest.mark.parametrize("name,cls", [("blank", BlankGenerator), ("noise", NoiseGenerator),
                                      ("typeset", TypesetGenerator)])
def test_registered(name, cls):
    assert GENERATORS.get(name) is cls


@pytest.mark.parametrize("cls", [BlankGenerator, NoiseGenerator, TypesetGenerator])
def test_cacheable_free_and_sized(cls):
    gen = cls("x", cls.Config(width=100, height=60, **small_margin(cls)))
    assert gen.cacheable is True
    out = gen.generate([GenRequest(SIGN, 3)])[0]
    assert out.ok and out.cost_usd == 0.0 and out.latency_s >= 0
    im = decode(out.image)
    assert im.format == "PNG" and im.size == (100, 60) and im.mode == "RGB"


@pytest.mark.parametrize("cls", [BlankGenerator, NoiseGenerator, TypesetGenerator])
def test_png_has_no_metadata(cls):
    gen = cls("x", cls.Config(width=64, height=64, **small_margin(cls)))
    data = gen.generate([GenRequest(SIGN, 0)])[0].image
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8].decode("ascii"))
        pos += 12 + length
    assert set(chunks) <= {"IHDR", "IDAT", "IEND"}, chunks


def test_blank_is_one_colour():
    im = decode(BlankGenerator("b", BlankGenerator.Config(color="#336699", width=32, height=16))
                .generate([GenRequest(CAT, 0)])[0].image)
    assert im.getcolors() == [(32 * 16, (0x33, 0x66, 0x99))]


def test_blank_rejects_unknown_colour():
    with pytest.raises(AutojudgeError, match="colour"):
        BlankGenerator("b", BlankGenerator.Config(color="not-a-colour"))


def test_noise_depends_on_seed_and_prompt_text_only():
    gen = NoiseGenerator("n", NoiseGenerator.Config(width=32, height=32))
    same_text = Prompt(id="other-id", text=CAT.text, tags=("x",))
    a, b, c, d = (o.image for o in gen.generate([
        GenRequest(CAT, 0), GenRequest(CAT, 1), GenRequest(SIGN, 0), GenRequest(same_text, 0)]))
    assert len({a, b, c}) == 3
    assert a == d
    pixels = np.asarray(decode(a))
    assert pixels.min() < 20 and pixels.max() > 235  # spans the range: uniform noise
    assert abs(pixels.mean() - 127.5) < 10


def test_noise_bytes_are_pinned():
    """Same request, same bytes on any machine: numpy's PCG64 stream is stable."""
    out = NoiseGenerator("n", NoiseGenerator.Config(width=4, height=2)).generate(
        [GenRequest(Prompt(id="p", text="hello"), 5)])[0]
    pixels = np.asarray(decode(out.image))
    from autojudge.types import stable_hash

    rng = np.random.default_rng([5, int(stable_hash("hello")[:16], 16)])
    assert np.array_equal(pixels, rng.integers(0, 256, size=(2, 4, 3), dtype=np.uint8))


def test_typeset_renders_dark_text_on_white_centred():
    gen = TypesetGenerator("t", TypesetGenerator.Config(width=256, height=256))
    px = np.asarray(decode(gen.generate([GenRequest(SIGN, 0)])[0].image).convert("L"))
    assert px[0, 0] == 255 and px.min() < 50
    ys, xs = np.nonzero(px < 128)
    assert abs((xs.min() + xs.max()) / 2 - 128) < 6
    assert abs((ys.min() + ys.max()) / 2 - 128) < 12
    margin = gen.config.margin
    assert xs.min() >= margin - 1 and xs.max() <= 256 - margin


def test_typeset_seed_does_not_matter():
    gen = TypesetGenerator("t", TypesetGenerator.Config(width=128, height=128))
    a, b = gen.generate([GenRequest(SIGN, 0), GenRequest(SIGN, 99)])
    assert a.image == b.image


def test_typeset_without_expected_text_captions_or_blanks():
    caption = TypesetGenerator("t", TypesetGenerator.Config(width=128, height=128))
    blank = TypesetGenerator("t", TypesetGenerator.Config(width=128, height=128, no_text="blank"))
    with_caption = np.asarray(decode(caption.generate([GenRequest(CAT, 0)])[0].image))
    without = np.asarray(decode(blank.generate([GenRequest(CAT, 0)])[0].image))
    assert with_caption.min() < 100
    assert without.min() == 255
    whitespace_only = Prompt(id="w", text="a cat", expected_text="   ")
    assert caption.text_for(GenRequest(whitespace_only, 0)) == ("a cat", 28)


def test_typeset_rejects_bad_config():
    with pytest.raises(AutojudgeError, match="no_text"):
        TypesetGenerator("t", TypesetGenerator.Config(no_text="nothing"))
    with pytest.raises(AutojudgeError, match="font"):
        TypesetGenerator("t", TypesetGenerator.Config(min_font_size=50, max_font_size=20))
    with pytest.raises(AutojudgeError, match="margin"):
        TypesetGenerator("t", TypesetGenerator.Config(width=64, margin=40))


def test_wrap_text_keeps_words_and_newlines():
    measure = len  # one unit per character
    lines, broke = wrap_text("aa bb cc\ndd", 5, measure)
    assert lines == ["aa bb", "cc", "dd"] and not broke
    lines, broke = wrap_text("abcdefghij", 4, measure)
    assert lines == ["abcd", "efgh", "ij"] and broke


def test_layout_shrinks_font_to_fit():
    short = layout_text("STOP", 512, 512, max_font_size=72, min_font_size=10, margin=32,
                        line_spacing=1.25)
    long = layout_text("word " * 60, 512, 512, max_font_size=72, min_font_size=10, margin=32,
                       line_spacing=1.25)
    assert short.font_size == 72 and short.lines == ("STOP",) and short.fits
    assert long.fits and long.font_size < 40 and len(long.lines) > 3
    huge = layout_text("word " * 2000, 128, 128, max_font_size=20, min_font_size=10,
                       margin=4, line_spacing=1.25)
    assert huge.font_size == 10 and not huge.fits  # clipped, but still renders
    gen = TypesetGenerator("t", TypesetGenerator.Config(width=128, height=128, margin=4,
                                                        max_font_size=20))
    assert gen.generate([GenRequest(Prompt(id="h", text="x", expected_text="word " * 2000),
                                    0)])[0].ok


def test_typeset_is_deterministic_across_processes():
    """Byte-identical PNG in a fresh interpreter (no timestamps, no hash randomisation)."""
    from generator_contract import image_digest, run_isolated

    here = image_digest(TypesetGenerator("t").generate([GenRequest(LONG, 0)])[0].image)
    there = run_isolated(f"""
        import hashlib, json
        from autojudge.generators.baselines import TypesetGenerator, NoiseGenerator
        from autojudge.types import GenRequest, Prompt
        p = Prompt(id={LONG.id!r}, text={LONG.text!r}, expected_text={LONG.expected_text!r})
        img = TypesetGenerator("t").generate([GenRequest(p, 0)])[0].image
        noise = NoiseGenerator("n").generate([GenRequest(p, 3)])[0].image
        print(json.dumps({{"typeset": hashlib.sha256(img).hexdigest(),
                          "noise": hashlib.sha256(noise).hexdigest()}}))
    """)
    noise_here = image_digest(NoiseGenerator("n").generate([GenRequest(LONG, 3)])[0].image)
    assert there == {"typeset": here, "noise": noise_here}


# ---------------------------------------------------------------------- bounded layout


def words_text(n_chars: int) -> str:
    vocabulary = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    words, total, i = [], 0, 0
    while total < n_chars:
        words.append(vocabulary[i % len(vocabulary)])
        total += len(words[-1]) + 1
        i += 1
    return " ".join(words)[:n_chars]


@pytest.mark.parametrize("field", ["text", "expected_text", "no_spaces"])
def test_typeset_renders_a_10k_character_prompt_from_its_start(field):
    text = "a" * 10_000 if field == "no_spaces" else words_text(10_000)
    prompt = (Prompt(id="long", text=text) if field == "text"
              else Prompt(id="long", text="x", expected_text=text))
    gen = TypesetGenerator("t")
    out = gen.generate([GenRequest(prompt, 0)])[0]
    assert out.ok and decode(out.image).size == (512, 512)
    shown, max_size = gen.text_for(GenRequest(prompt, 0))
    layout = layout_text(shown, 512, 512, max_font_size=max_size, min_font_size=10, margin=32,
                         line_spacing=1.25)
    assert layout.font_size == 10 and not layout.fits
    # what is drawn is the beginning of the text, as many lines as fit the box
    assert 1 < len(layout.lines) <= 1 + (448 - 10) // 12
    assert text.startswith(layout.lines[0])
    assert layout.lines[0] and " ".join(layout.lines).startswith(layout.lines[0])


def test_wrap_text_stops_measuring_once_max_lines_is_exceeded():
    calls = []

    def measure(s):
        calls.append(s)
        return len(s)

    text = "word " * 100_000
    lines, broke = wrap_text(text, 20, measure, max_lines=3)
    assert lines == ["word word word word", "word word word word", "word word word word",
                     "word word word word"] and not broke  # 3 that fit + 1 saying "more"
    assert len(calls) < 40 and max(map(len, calls)) <= 24
    full, _ = wrap_text("word " * 30, 20, len)
    assert wrap_text("word " * 30, 20, len, max_lines=3)[0] == full[:4]
    assert wrap_text("word " * 30, 20, len, max_lines=100)[0] == full


def test_wrap_text_drops_blank_edges_but_keeps_inner_blanks_under_a_limit():
    text = "\n\n\na\n\n\nb\n\n\n\n\n"
    assert wrap_text(text, 10, len) == (["a", "", "", "b"], False)
    assert wrap_text(text, 10, len, max_lines=1) == (["a", ""], False)
    assert wrap_text("\n" * 1000, 10, len, max_lines=2) == ([], False)


def test_a_huge_word_is_split_with_few_measurements():
    calls = []

    def measure(s):
        calls.append(len(s))
        return len(s)

    lines, broke = wrap_text("x" * 1_000_000, 7, measure, max_lines=2)
    assert lines == ["xxxxxxx"] * 3 and broke
    assert len(calls) < 40 and sum(calls) < 2_000  # never the whole word
    assert wrap_text("abcdefghij", 4, len) == (["abcd", "efgh", "ij"], True)
    assert wrap_text("ab Wxyz", 1, len) == (["a", "b", "W", "x", "y", "z"], True)


def test_baseline_isolates_a_failing_request():
    class Flaky(BlankGenerator):
        def _render(self, request):
            if request.prompt.id == "bad":
                raise ValueError("cannot draw\nthis")
            return super()._render(request)

    gen = Flaky("flaky", BlankGenerator.Config(width=8, height=8))
    ok1, bad, ok2 = gen.generate([GenRequest(CAT, 0), GenRequest(Prompt(id="bad", text="x"), 3),
                                  GenRequest(SIGN, 0)])
    assert ok1.ok and ok2.ok
    assert bad.image is None and bad.failure.kind == "generator_error"
    assert bad.failure.message == "model 'flaky': prompt 'bad' seed 3: ValueError: cannot draw this"


def test_typeset_version_tracks_the_clipping_change():
    assert TypesetGenerator("t").fingerprint()["version"] == 2
    assert BlankGenerator("b").fingerprint()["version"] == 1
