"""One prompt-suite entry: its fields, their checks, and where it sits in the file (for
error lines that name the file, the entry and the field). `autojudge.suites.load` reads files
and hands each entry here."""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Sequence

from autojudge.judges.questions import QuestionFormatError, parse_questions
from autojudge.suites.importers import dedupe, fail, show
from autojudge.types import Prompt, Question

DIFFICULTIES = ("easy", "medium", "hard")
REQUIRED_FIELDS = ("id", "text", "category")
ENTRY_FIELDS = ("id", "text", "category", "capabilities", "difficulty", "expected_text",
                "seeds", "tags", "meta", "task", "init_image", "mask", "strength",
                "style_prompt", "questions")
TASKS = ("txt2img", "img2img", "inpaint")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TAG = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class EntryLocation:
    """Where an entry sits: YAML (index + lines) or JSONL (line) - for error messages."""

    def __init__(self, source: str, index: int, line: int | None,
                 key_lines: dict[str, int] | None = None, jsonl: bool = False):
        self.source, self.index, self.line = source, index, line
        self.key_lines, self.jsonl = key_lines or {}, jsonl
        self.pid: str | None = None

    def __call__(self, field: str | None = None) -> str:
        return f"suite {self.source}, {self.short(field)}"

    def short(self, field: str | None = None) -> str:
        line = self.key_lines.get(field, self.line) if field else self.line
        ident = f"id {self.pid!r}" if self.pid else ""
        if self.jsonl:
            text = f"line {line}" + (f" ({ident})" if ident else "")
        else:
            inside = ", ".join(part for part in (ident, f"line {line}" if line else "") if part)
            text = f"entry {self.index}" + (f" ({inside})" if inside else "")
        return text + (f", field {field!r}" if field else "")


def build_prompts(pairs: list[tuple[Any, EntryLocation]],
                  max_chars: int | None = None) -> list[Prompt]:
    """Validated prompts of (entry, location) pairs; ids unique ignoring case.

    Args:
        pairs: raw entries (as parsed) and where each sits in the file.
        max_chars: the most characters a text field may hold (None: no limit).
    """
    prompts: list[Prompt] = []
    first: dict[str, EntryLocation] = {}
    for entry, where in pairs:
        prompt = build_prompt(entry, where)
        if max_chars is not None:
            check_lengths(prompt, max_chars, where)
        key = prompt.id.lower()
        if key in first:
            fail(where("id"), f"duplicate id {prompt.id!r}, already used by {first[key].short()} "
                 "(ids are compared ignoring case); give each prompt a unique id")
        first[key] = where
        prompts.append(prompt)
    return prompts


# Fields a generator or judge reads as text; each is bounded by the suite's max_chars.
TEXT_FIELDS = ("text", "expected_text", "style_prompt")


def check_lengths(prompt: Prompt, max_chars: int, where: EntryLocation | str) -> None:
    """Refuse a prompt whose text fields are longer than `max_chars` characters.

    A prompt of megabytes is a mistake (a pasted file, a broken export), and it would
    stall generators and judges that lay it out or tokenize it; the limit stops it at
    load time with one line instead.
    """
    for field in TEXT_FIELDS:
        value = getattr(prompt, field)
        if value is not None and len(value) > max_chars:
            place = where(field) if isinstance(where, EntryLocation) else \
                f"{where}, field {field!r}"
            fail(place, f"is {len(value):,} characters, over the limit of {max_chars:,}; "
                 "shorten it, or load the suite with a higher max_prompt_chars")
    for number, question in enumerate(prompt.questions, start=1):
        if len(question.text) > max_chars:  # a judge's VLM reads each one
            place = where("questions") if isinstance(where, EntryLocation) else \
                f"{where}, field 'questions'"
            fail(place, f"question {number} (id {question.id!r}) is {len(question.text):,} "
                 f"characters, over the limit of {max_chars:,}; shorten it")


def build_prompt(entry: Any, where: EntryLocation) -> Prompt:
    if not isinstance(entry, dict):
        fail(where(), f"expected a mapping with fields {', '.join(REQUIRED_FIELDS)}, got "
             f"{show(entry)}; write each entry as '- id: ...' with text: and category: beneath it")
    if isinstance(entry.get("id"), str) and entry["id"].strip():
        where.pid = entry["id"].strip()
    for key in entry:
        if key not in ENTRY_FIELDS:
            fail(where(str(key)), f"unknown field{did_you_mean(str(key), ENTRY_FIELDS)}; "
                 f"allowed fields: {', '.join(ENTRY_FIELDS)}")
    for key in REQUIRED_FIELDS:
        if key not in entry:
            fail(where(), f"missing required field {key!r}; every entry needs "
                 f"{', '.join(REQUIRED_FIELDS)}")

    pid = _string(entry["id"], where, "id", "give a short unique name such as sign-bakery")
    if not _ID.fullmatch(pid):
        fail(where("id"), f"{pid!r} is not a valid id; use letters, digits, '.', '_' and '-' "
             "(it names image files), starting with a letter or digit")
    text = _string(entry["text"], where, "text", "write the prompt the generator should draw")
    category = _tag(entry["category"], where, "category")
    capabilities = [_tag(t, where, "capabilities") for t in _list(entry.get("capabilities"), where, "capabilities")]
    extra = [_tag(t, where, "tags") for t in _list(entry.get("tags"), where, "tags")]

    difficulty = entry.get("difficulty")
    if difficulty is not None:
        difficulty = _string(difficulty, where, "difficulty", "use easy, medium or hard").lower()
        if difficulty not in DIFFICULTIES:
            fail(where("difficulty"), f"unknown difficulty {difficulty!r}"
                 f"{did_you_mean(difficulty, DIFFICULTIES)}; use one of {', '.join(DIFFICULTIES)}")
    expected = entry.get("expected_text")
    if expected is not None:
        expected = _string(expected, where, "expected_text", "quote it, e.g. expected_text: '2024'")
    seeds = entry.get("seeds")
    if seeds is not None:
        seeds = seed_list(seeds, where("seeds"))
    meta = entry.get("meta")
    if meta is not None and not isinstance(meta, dict):
        fail(where("meta"), f"must be a mapping, got {show(meta)}")
    return Prompt(id=pid, text=text, tags=dedupe([category, *capabilities, difficulty or "", *extra]),
                  category=category, expected_text=expected, seeds=seeds, meta=dict(meta or {}),
                  questions=_questions(entry.get("questions"), where),
                  **_editing_fields(entry, where))


def question_lines(item: Any) -> dict[str, int]:
    """"questions.N" -> the line of the N-th question of an entry's YAML mapping node."""
    import yaml

    for key, value in item.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "questions" \
                and isinstance(value, yaml.SequenceNode):
            return {f"questions.{n}": node.start_mark.line + 1
                    for n, node in enumerate(value.value, start=1)}
    return {}


def _questions(value: Any, where: EntryLocation) -> tuple[Question, ...]:
    """An entry's `questions:` ({id, question, parents?, skill?} each), checked as a DSG;
    an error names the line of the question it is about where the file gives one."""
    if value is None:
        return ()
    try:
        return parse_questions(value)
    except QuestionFormatError as exc:
        line = where.key_lines.get(f"questions.{exc.number}")
        at = where
        if line is not None:
            at = EntryLocation(where.source, where.index, where.line,
                               {"questions": line}, where.jsonl)
            at.pid = where.pid
        fail(at("questions"), f"{exc}; each question is {{id: ..., question: 'Is ...?', "
             "parents: [ids it presupposes]}")


def _editing_fields(entry: dict, where: EntryLocation) -> dict[str, Any]:
    """task, init_image, mask, strength, style_prompt of an editing entry, validated.

    Image paths resolve relative to the suite file and must exist and decode; the task
    defaults to inpaint (with a mask), img2img (with an init image) or txt2img."""
    base = Path(where.source).resolve().parent
    paths: dict[str, str | None] = {}
    for field in ("init_image", "mask"):
        value = entry.get(field)
        if value is None:
            paths[field] = None
            continue
        rel = _string(value, where, field, "give an image path relative to the suite file")
        path = (base / Path(rel).expanduser()).resolve()
        if not path.is_file():
            fail(where(field), f"image file not found: {rel} (looked at {path}); paths are "
                 "relative to the suite file")
        try:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
        except Exception as exc:  # PIL raises many types for bad data
            fail(where(field), f"{rel} is not a readable image ({type(exc).__name__})")
        paths[field] = str(path)
    init, mask = paths["init_image"], paths["mask"]
    task = entry.get("task")
    if task is None:
        task = "inpaint" if mask else "img2img" if init else "txt2img"
    else:
        task = _string(task, where, "task", f"use one of {', '.join(TASKS)}").lower()
        if task not in TASKS:
            fail(where("task"), f"unknown task {task!r}{did_you_mean(task, TASKS)}; use one "
                 f"of {', '.join(TASKS)}")
    if task in ("img2img", "inpaint") and not init:
        fail(where("init_image"), f"task {task} needs an init_image (a path relative to the "
             "suite file)")
    if task == "inpaint" and not mask:
        fail(where("mask"), "task inpaint needs a mask (white = repaint, black = keep)")
    if task != "inpaint" and mask:
        fail(where("mask"), f"a mask is only used by task inpaint, this entry is {task}; "
             "remove the mask or set task: inpaint")
    if task == "txt2img" and init:
        fail(where("init_image"), "an init_image needs task img2img or inpaint")
    strength = entry.get("strength")
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
                or not 0 < strength <= 1:
            fail(where("strength"), f"must be a number in (0, 1], got {show(strength)}")
        if task == "txt2img":
            fail(where("strength"), "strength applies only to img2img and inpaint entries")
        strength = float(strength)
    style = entry.get("style_prompt")
    if style is not None:
        style = _string(style, where, "style_prompt", "describe the style, e.g. 'a charcoal "
                        "sketch'")
    return {"task": task, "init_image": init, "mask": mask, "strength": strength,
            "style_prompt": style}


def _string(value: Any, where: EntryLocation, field: str, fix: str) -> str:
    if not isinstance(value, str):
        fail(where(field), f"must be a string, got {show(value)}; {fix}")
    if not value.strip():
        fail(where(field), f"is empty; {fix}")
    return value.strip()


def _list(value: Any, where: EntryLocation, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        fail(where(field), f"must be a list of strings such as [text, color], got {show(value)}")
    return value


def _tag(value: Any, where: EntryLocation, field: str) -> str:
    tag = _string(value, where, field, "use a short lower-case word such as text_rendering").lower()
    if not _TAG.fullmatch(tag):
        suggestion = re.sub(r"[^a-z0-9]+", "_", tag).strip("_") or "text_rendering"
        fail(where(field), f"{value!r} is not a valid tag; use lower-case letters, digits, '_', "
             f"'-' and '.', e.g. {suggestion!r}")
    return tag


def seed_list(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        fail(where, f"must be a non-empty list of non-negative integers such as [0, 1], got {show(value)}")
    if len(set(value)) != len(value):
        fail(where, f"repeats a seed in {list(value)}; list each seed once")
    return tuple(int(s) for s in value)


def did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
