"""Suites: the starter suite, native-format validation, tag filters, seeds, importers."""
from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest
from helpers import GENEVAL, PARTI, needs_shared_data

import autojudge.suites.importers as suite_importers
import autojudge.suites.load as suites
from autojudge.errors import AutojudgeError
from autojudge.suites.load import Suite, load_suite
from autojudge.types import Prompt

REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "prompt_suites" / "starter.yaml"
needs_parti = needs_shared_data(PARTI.name)
needs_geneval = needs_shared_data(GENEVAL.name)

GOOD_ENTRY = """\
  - id: a
    text: a red apple
    category: food
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(AutojudgeError) as info:
        load_suite(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


@pytest.fixture(scope="module")
def starter() -> Suite:
    return load_suite(STARTER)


# ---------------------------------------------------------------- the starter suite


def test_starter_size_categories_and_ids(starter: Suite) -> None:
    assert starter.name == "starter"
    assert starter.fmt == "autojudge"
    assert starter.seeds == (0,)
    assert len(starter.prompts) >= 66
    assert len({p.category for p in starter.prompts}) >= 8
    ids = [p.id for p in starter.prompts]
    assert len(set(ids)) == len(ids)
    assert all(p.category == p.tags[0] for p in starter.prompts)
    assert all(any(t in p.tags for t in ("easy", "medium", "hard")) for p in starter.prompts)


def test_starter_expected_text_is_ocr_friendly(starter: Suite) -> None:
    rendered = [p for p in starter.prompts if p.expected_text]
    assert len(rendered) >= 20
    assert len({p.expected_text for p in rendered}) == len(rendered)  # varied
    for p in rendered:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 .,!?'&-]*", p.expected_text), p.expected_text
        assert 1 <= len(p.expected_text.split()) <= 4, p.expected_text
        assert f'"{p.expected_text}"' in p.text, p.id  # quoted verbatim in the prompt
        assert "text" in p.tags and p.category == "text_rendering"


def test_starter_capability_tags(starter: Suite) -> None:
    tags = starter.tags()
    for tag in ("text", "counting", "spatial", "color", "composition", "style",
                "easy", "medium", "hard"):
        assert tags.get(tag, 0) >= 3, tag
    assert sum(tags[d] for d in ("easy", "medium", "hard")) == len(starter.prompts)


# ---------------------------------------------------------------- Suite helpers


def test_requests_expand_default_and_prompt_seeds(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", """\
name: demo
seeds: [3, 4]
prompts:
  - {id: a, text: one, category: x}
  - {id: b, text: two, category: x, seeds: [9]}
  - {id: c, text: three, category: y}
""")
    suite = load_suite(path)
    assert suite.seeds == (3, 4)
    assert [(p.id, s) for p, s in suite.requests()] == [
        ("a", 3), ("a", 4), ("b", 9), ("c", 3), ("c", 4)]
    # an explicit seeds argument replaces the file's default seeds, never a prompt's own
    overridden = load_suite(path, seeds=[0, 1, 2])
    assert [(p.id, s) for p, s in overridden.requests()] == [
        ("a", 0), ("a", 1), ("a", 2), ("b", 9), ("c", 0), ("c", 1), ("c", 2)]


def test_seeds_default_to_zero_and_tags_count(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "prompts:\n" + GOOD_ENTRY)
    suite = load_suite(path)
    assert suite.seeds == (0,) and suite.name == "s" and suite.source == str(path)
    assert suite.requests() == [(suite.prompts[0], 0)]
    assert suite.tags() == {"food": 1}
    assert load_suite(path, name="renamed").name == "renamed"


def test_prompt_tags_order_lowercase_dedup(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", """\
prompts:
  - id: sign
    text: 'A sign that reads "OPEN"'
    category: Text_Rendering
    capabilities: [Text, text, color]
    difficulty: Hard
    expected_text: OPEN
    tags: [signage, TEXT]
    meta: {note: hi}
""")
    (prompt,) = load_suite(path).prompts
    assert prompt.tags == ("text_rendering", "text", "color", "hard", "signage")
    assert prompt.category == "text_rendering"
    assert prompt.expected_text == "OPEN"
    assert prompt.meta == {"note": "hi"}
    assert prompt.seeds is None


def test_module_doctests() -> None:
    for module in (suites, suite_importers):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# ---------------------------------------------------------------- filters


def test_tag_filter_any_exclude_and_limit(starter: Suite) -> None:
    texts = load_suite(STARTER, tags=["text"])
    assert {p.id for p in texts.prompts} == {p.id for p in starter.prompts if "text" in p.tags}
    either = load_suite(STARTER, tags=["counting", "spatial"])
    assert all({"counting", "spatial"} & set(p.tags) for p in either.prompts)
    assert len(either.prompts) > len(load_suite(STARTER, tags=["counting"]).prompts)
    easy_text = load_suite(STARTER, tags=["TEXT"], exclude_tags=["hard", "medium"])
    assert easy_text.prompts and all("easy" in p.tags for p in easy_text.prompts)
    first3 = load_suite(STARTER, tags=["text"], limit=3)
    assert [p.id for p in first3.prompts] == [p.id for p in texts.prompts[:3]]
    assert load_suite(STARTER, tags="counting").prompts == load_suite(STARTER, tags=["counting"]).prompts


def test_unknown_tag_names_suite_and_suggests(starter: Suite) -> None:
    message = error_of(STARTER, tags=["countin"])
    assert "unknown tag 'countin' in suite.tags for suite starter" in message
    assert "did you mean 'counting'" in message
    assert "known tags" in message and "text_rendering" in message
    message = error_of(STARTER, exclude_tags=["hardd"])
    assert "suite.exclude_tags" in message and "'hard'" in message


def test_empty_selection_and_bad_limit() -> None:
    message = error_of(STARTER, tags=["text"], exclude_tags=["text_rendering"])
    assert "no prompts left" in message and "starter.yaml" in message
    assert "suite.limit" in error_of(STARTER, limit=0)
    assert "suite.limit" in error_of(STARTER, limit=True)


# ---------------------------------------------------------------- native-format errors


@pytest.mark.parametrize("body, expected", [
    # missing required field
    ("prompts:\n  - id: a\n    category: food\n", ["entry 1", "id 'a'", "line 2", "missing required field 'text'"]),
    # wrong type: text not a string
    ("prompts:\n  - id: a\n    text: 42\n    category: food\n", ["entry 1", "line 3", "field 'text'", "must be a string"]),
    # empty text
    ("prompts:\n  - id: a\n    text: '   '\n    category: food\n", ["entry 1", "field 'text'", "is empty"]),
    # seeds not a list of ints
    ("prompts:\n  - id: a\n    text: t\n    category: food\n    seeds: [0, x]\n", ["line 5", "field 'seeds'", "non-negative integers"]),
    ("prompts:\n  - id: a\n    text: t\n    category: food\n    seeds: 3\n", ["field 'seeds'", "list"]),
    # unknown difficulty
    ("prompts:\n  - id: a\n    text: t\n    category: food\n    difficulty: medum\n", ["field 'difficulty'", "did you mean 'medium'", "easy, medium, hard"]),
    # unknown key (typo)
    ("prompts:\n  - id: a\n    text: t\n    category: food\n    capabilites: [text]\n", ["line 5", "field 'capabilites'", "did you mean 'capabilities'", "allowed fields"]),
    # duplicate id: both entries named
    ("prompts:\n" + GOOD_ENTRY + GOOD_ENTRY, ["entry 2", "line 5", "duplicate id 'a'", "entry 1", "line 2"]),
    # entry not a mapping
    ("prompts:\n  - just a string\n", ["entry 1", "line 2", "expected a mapping"]),
    # top level not a mapping / no prompts list / prompts not a list / empty
    ("- id: a\n  text: t\n", ["top level must be a mapping", "under 'prompts:'"]),
    ("name: x\n", ["no 'prompts' list"]),
    ("prompts: hello\n", ["line 1", "field 'prompts'", "must be a list"]),
    ("prompts: []\n", ["field 'prompts'", "is empty"]),
    ("", ["is empty"]),
    # unknown top-level key, duplicate key, bad tag, bad id, expected_text type
    ("prompt:\n" + GOOD_ENTRY, ["line 1", "field 'prompt'", "did you mean 'prompts'"]),
    ("prompts:\n  - id: a\n    text: t\n    text: u\n    category: food\n", ["line 4", "field 'text'", "appears twice", "line 3"]),
    ("prompts:\n  - id: a\n    text: t\n    category: Text Rendering\n", ["field 'category'", "'text_rendering'"]),
    ("prompts:\n  - id: a b\n    text: t\n    category: food\n", ["field 'id'", "not a valid id"]),
    ("prompts:\n  - id: a\n    text: t\n    category: food\n    expected_text: 2024\n", ["field 'expected_text'", "quote it"]),
    ("seeds: [-1]\nprompts:\n" + GOOD_ENTRY, ["line 1", "field 'seeds'"]),
])
def test_native_yaml_errors(tmp_path: Path, body: str, expected: list[str]) -> None:
    path = write(tmp_path, "bad.yaml", body)
    message = error_of(path)
    assert f"suite {path}" in message
    for part in expected:
        assert part in message, (part, message)


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: x\nprompts:\n  - id: a\n    text: [unclosed\n    category: food\n")
    message = error_of(path)
    assert "bad.yaml" in message and "malformed YAML" in message
    assert re.search(r"line [4-6]", message), message


def test_file_missing_suggests_sibling(tmp_path: Path) -> None:
    write(tmp_path, "starter.yaml", "prompts:\n" + GOOD_ENTRY)
    message = error_of(tmp_path / "stater.yaml")
    assert "stater.yaml" in message and "not found" in message and "starter.yaml" in message
    assert "is a directory" in error_of(tmp_path)


def test_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "prompts:\n" + GOOD_ENTRY)
    assert "did you mean 'geneval'" in error_of(path, fmt="genevall")


def test_native_jsonl(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "a cat", "category": "animals", "seeds": [1, 2]},
            {"id": "b", "text": 'a sign "HI"', "category": "text_rendering", "expected_text": "HI",
             "capabilities": ["text"], "difficulty": None}]
    path = write(tmp_path, "s.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    suite = load_suite(path)
    assert suite.fmt == "autojudge"
    assert [p.id for p in suite.prompts] == ["a", "b"]
    assert suite.prompts[1].tags == ("text_rendering", "text")
    assert [(p.id, s) for p, s in suite.requests()] == [("a", 1), ("a", 2), ("b", 0)]

    bad = write(tmp_path, "bad.jsonl", json.dumps(rows[0]) + "\n{\"id\": \"b\", oops}\n")
    message = error_of(bad)
    assert "bad.jsonl, line 2" in message and "malformed JSON" in message
    dup = write(tmp_path, "dup.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[0]) + "\n")
    message = error_of(dup)
    assert "line 3 (id 'a')" in message and "already used by line 1" in message


# ---------------------------------------------------------------- importers


@needs_parti
def test_parti_real_file() -> None:
    suite = load_suite(PARTI)  # auto: .tsv
    assert suite.fmt == "parti" and suite.name == "PartiPrompts"
    assert len(suite.prompts) == 1632
    assert len({p.id for p in suite.prompts}) == 1632
    assert suite.prompts[0].id == "parti-0001" and suite.prompts[-1].id == "parti-1632"
    tags = suite.tags()
    assert tags["animals"] == 314 and tags["writing_symbols"] == 91
    assert tags["food_beverage"] == 74 and tags["fine_grained_detail"] == 312
    first = suite.prompts[0]
    assert first.text == "bond" and first.category == "abstract" and first.tags == ("abstract", "basic")
    assert first.meta["note"] == "Biology-inspired concepts with multiple meanings"
    by_text = {p.text: p for p in suite.prompts}
    oops = next(p for p in suite.prompts if '"OOPS"' in p.text)
    assert oops.expected_text == "OOPS"
    assert by_text["a book with the words 'Don't Panic!' written on it"].expected_text == "Don't Panic!"
    # quoted words outside a writing challenge are kept in meta, not made OCR targets
    peace = next(p for p in suite.prompts if '"PEACE"' in p.text and "panda" in p.text)
    assert peace.expected_text is None and peace.meta["quoted_text"] == ("PEACE",)
    rendered = [p for p in suite.prompts if p.expected_text]
    assert 30 <= len(rendered) <= 91 and all("writing_symbols" in p.tags for p in rendered)
    assert len(load_suite(PARTI, fmt="parti", tags=["writing_symbols"], limit=10).prompts) == 10


@needs_geneval
def test_geneval_real_file() -> None:
    suite = load_suite(GENEVAL)  # auto: .jsonl rows with "include"
    assert suite.fmt == "geneval"
    assert len(suite.prompts) == 553
    assert len({p.id for p in suite.prompts}) == 553
    assert suite.prompts[0].id == "geneval-0001"
    assert set(suite.tags()) == {"single_object", "two_object", "counting", "colors",
                                 "position", "color_attr"}
    first = suite.prompts[0]
    assert first.text == "a photo of a bench" and first.category == "single_object"
    assert first.meta["include"] == ({"class": "bench", "count": 1},)
    assert sum(1 for _ in load_suite(GENEVAL, tags=["counting"]).prompts) == 80


def test_parti_and_geneval_small_files(tmp_path: Path) -> None:
    tsv = write(tmp_path, "p.tsv", "Prompt\tCategory\tChallenge\tNote\n"
                '"HI" on a sign\tArtifacts\tWriting & Symbols\tn1\n\n'
                "a cat\tAnimals\tBasic\t\n")
    suite = load_suite(tsv)
    assert [p.id for p in suite.prompts] == ["parti-0001", "parti-0002"]
    assert suite.prompts[0].text == '"HI" on a sign' and suite.prompts[0].expected_text == "HI"
    assert suite.prompts[0].tags == ("artifacts", "writing_symbols")

    no_prompt = write(tmp_path, "np.tsv", "Text\tCategory\nhello\tX\n")
    message = error_of(no_prompt)
    assert "np.tsv, line 1" in message and "no 'Prompt' column" in message

    rows = [{"tag": "counting", "include": [{"class": "dog", "count": 2}], "prompt": "a photo of two dogs"}]
    jsonl = write(tmp_path, "g.jsonl", json.dumps(rows[0]) + "\n")
    assert load_suite(jsonl).fmt == "geneval"
    assert "unknown field" in error_of(jsonl, fmt="autojudge")  # forcing the format is honoured
    bad = write(tmp_path, "gbad.jsonl", json.dumps(rows[0]) + "\nnot json\n")
    message = error_of(bad, fmt="geneval")
    assert "gbad.jsonl, line 2" in message and "malformed JSON" in message
    bad_include = write(tmp_path, "ginc.jsonl", json.dumps({"tag": "x", "include": "dog", "prompt": "p"}))
    assert "field 'include'" in error_of(bad_include, fmt="geneval")


def test_hand_built_suite_coerces_sequences() -> None:
    suite = Suite("s", [Prompt("a", "t")], [5], Path("x.yaml"))
    assert suite.prompts == (Prompt("a", "t"),) and suite.seeds == (5,) and suite.source == "x.yaml"
    assert suite.tags() == {}


def test_accepts_omegaconf_lists_from_hydra() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"tags": ["text"], "exclude_tags": [], "seeds": [0, 1], "limit": 2})
    suite = load_suite(STARTER, tags=cfg.tags, exclude_tags=cfg.exclude_tags, seeds=cfg.seeds, limit=cfg.limit)
    assert suite.seeds == (0, 1) and len(suite.requests()) == 4


# ---------------------------------------------------------------- prompt length limit


def test_over_long_prompt_is_refused_at_load_naming_file_id_and_limit(tmp_path: Path) -> None:
    long_text = "a" * 10_001
    path = write(tmp_path, "long.yaml", "prompts:\n" + GOOD_ENTRY
                 + f"  - id: too-long\n    text: {long_text}\n    category: food\n")
    message = error_of(path)
    assert message == (f"suite {path}, entry 2 (id 'too-long', line 6), field 'text': is "
                       "10,001 characters, over the limit of 10,000; shorten it, or load the "
                       "suite with a higher max_prompt_chars")
    assert suites.DEFAULT_MAX_PROMPT_CHARS == 10_000
    # the limit is set at load time: raised, lowered or switched off
    assert len(load_suite(path, max_prompt_chars=20_000).prompts) == 2
    assert len(load_suite(path, max_prompt_chars=None).prompts) == 2
    exactly = write(tmp_path, "exact.yaml", "prompts:\n"
                    f"  - id: edge\n    text: {'b' * 10_000}\n    category: food\n")
    assert load_suite(exactly).prompts[0].text == "b" * 10_000
    assert "over the limit of 5" in error_of(path.with_name("exact.yaml"), max_prompt_chars=5)
    # filters do not hide it: a broken entry is a broken file
    assert "id 'too-long'" in error_of(path, limit=1)


def test_length_limit_covers_every_text_field_and_format(tmp_path: Path) -> None:
    expected = write(tmp_path, "e.yaml", "prompts:\n  - id: sign\n    text: a sign\n"
                     f"    category: x\n    expected_text: {'Z' * 101}\n")
    assert "id 'sign'" in (m := error_of(expected, max_prompt_chars=100))
    assert "field 'expected_text'" in m and "limit of 100" in m
    jsonl = write(tmp_path, "j.jsonl", json.dumps({"id": "j1", "text": "c" * 300,
                                                   "category": "x"}) + "\n")
    m = error_of(jsonl, max_prompt_chars=200)
    assert m.startswith(f"suite {jsonl}, line 1 (id 'j1'), field 'text': is 300 characters")
    tsv = write(tmp_path, "p.tsv", "Prompt\tCategory\tChallenge\tNote\nshort\tA\tB\t\n"
                + "d" * 300 + "\tA\tB\t\n")
    m = error_of(tsv, max_prompt_chars=200)
    assert m.startswith(f"suite {tsv}, row 2 (id 'parti-0002'), field 'text'")
    geneval = write(tmp_path, "g.jsonl", json.dumps(
        {"tag": "t", "include": [{"class": "dog", "count": 1}], "prompt": "e" * 300}) + "\n")
    assert "line 1 (id 'geneval-0001')" in error_of(geneval, max_prompt_chars=200)


@pytest.mark.parametrize("bad", [0, -5, "many", 2.5, True])
def test_bad_max_prompt_chars_is_one_line(tmp_path: Path, bad) -> None:
    path = write(tmp_path, "s.yaml", "prompts:\n" + GOOD_ENTRY)
    message = error_of(path, max_prompt_chars=bad)
    assert "max_prompt_chars" in message and "positive integer" in message


# ---------------------------------------------------------------- judged prompts only


def has_text(prompt: Prompt) -> bool:
    return prompt.expected_text is not None


OCR_LIKE = suites.JudgeScope({"ocr": has_text}, {"ocr": "prompts with expected_text"})


def test_only_judged_keeps_the_prompts_a_judge_applies_to_and_says_so(starter: Suite) -> None:
    every = load_suite(STARTER)
    kept = load_suite(STARTER, judges=OCR_LIKE)
    wanted = [p.id for p in every.prompts if has_text(p)]
    assert 0 < len(wanted) < len(every.prompts)
    assert [p.id for p in kept.prompts] == wanted  # file order kept
    assert kept.notes == (f"keeping {len(wanted)} of {len(every.prompts)} prompts: judge ocr "
                          "applies to those; suite.only_judged=false to generate all",)
    everything = load_suite(STARTER, judges=suites.JudgeScope(OCR_LIKE.applies,
                                                              only_judged=False))
    assert everything.prompts == every.prompts and everything.notes == ()


def test_limit_counts_judged_prompts_only(tmp_path: Path) -> None:
    entries = "".join(f"  - {{id: p{i}, text: t{i}, category: c{i % 2}"
                      + (f", expected_text: T{i}" if i % 3 == 2 else "") + "}\n"
                      for i in range(12))
    path = write(tmp_path, "s.yaml", "prompts:\n" + entries)
    kept = load_suite(path, limit=3, judges=OCR_LIKE)
    assert [p.id for p in kept.prompts] == ["p2", "p5", "p8"]
    assert kept.notes[0].startswith("keeping 3 of 12 prompts: judge ocr applies to 4 of them "
                                     "and suite.limit=3 keeps the first 3")
    # filters first: c1 holds p5 and p11 of the judged ones
    assert [p.id for p in load_suite(path, tags=["c1"], judges=OCR_LIKE).prompts] == ["p5", "p11"]
    # only_judged=false: the limit cuts first, and a judge left with nothing is refused
    message = error_of(path, limit=2, judges=suites.JudgeScope(
        OCR_LIKE.applies, OCR_LIKE.needs, only_judged=False))
    assert message.startswith("judge ocr applies to none of the 2 selected prompts: it needs "
                              "prompts with expected_text; this suite has 4 such prompts: "
                              "select them, e.g. suite.tags=[c0] (2 of them) or "
                              "suite.only_judged=true (keeps only those), or choose another "
                              "judge"), message


def test_several_judges_keep_the_union_and_each_must_apply(starter: Suite) -> None:
    kinds = {"ocr": has_text, "animals": lambda p: "animals" in p.tags}
    both = load_suite(STARTER, judges=suites.JudgeScope(kinds))
    assert all(has_text(p) or "animals" in p.tags for p in both.prompts)
    assert "judges ocr, animals apply to those" in both.notes[0]
    # a judge of every prompt (clip, human votes) keeps the whole suite
    assert load_suite(STARTER, judges=suites.JudgeScope(
        {**kinds, "human": lambda p: True})).prompts == starter.prompts


def test_judge_that_applies_nowhere_gets_a_fix_from_the_suite_in_use(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.yaml", "prompts:\n" + GOOD_ENTRY)
    editing = suites.JudgeScope({"preservation": lambda p: p.init_image is not None},
                                {"preservation": "editing prompts with an init_image"})
    message = error_of(path, judges=editing)
    # the starter suite's tag is not offered: a shipped suite that has such prompts is
    assert "text_rendering" not in message
    assert message.startswith("judge preservation applies to none of the 1 selected prompts: "
                              "it needs editing prompts with an init_image; this suite has no "
                              "such prompt; use a suite that has some, e.g. suite=editing ("), \
        message
    assert message.endswith(", or choose another judge")


@needs_parti
def test_parti_limit_applies_after_the_judged_filter_and_hints_its_own_tag() -> None:
    kept = load_suite(PARTI, limit=200, judges=OCR_LIKE)
    assert len(kept.prompts) == 43 and all(has_text(p) for p in kept.prompts)
    assert kept.notes[0].startswith("keeping 43 of 1632 prompts: judge ocr applies to those")
    message = error_of(PARTI, limit=40, judges=suites.JudgeScope(
        OCR_LIKE.applies, OCR_LIKE.needs, only_judged=False))
    assert "suite.tags=[writing_symbols] (43 of them)" in message, message
    assert "text_rendering" not in message
