"""Importers for public prompt suites (PartiPrompts TSV, GenEval metadata JSONL), plus the
small helpers `autojudge.suites.load` shares with them (one-line errors, slugs,
quoted-text extraction).

Both importers read the formats as published, from any path, and return plain `Prompt`s;
`autojudge.suites.load.load_suite` picks the importer and applies filters and seeds.

Example:
    >>> slugify("Food & Beverage")
    'food_beverage'
    >>> quoted_text('a book with the words \\'Don\\'t Panic!\\' written on it')
    ["Don't Panic!"]
    >>> parti_expected_text('A sign that says "Very Deep Learning"', "World Knowledge", "Writing & Symbols")
    'Very Deep Learning'
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, NoReturn

from autojudge.errors import AutojudgeError
from autojudge.types import Prompt

PARTI_COLUMNS = ("Prompt", "Category", "Challenge", "Note")

# Text between straight or curly double quotes, or between single quotes that are not
# apostrophes (an opening quote has no letter before it, a closing one none after it).
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’|(?<!\w)'(.+?)'(?!\w)")
# A PartiPrompts Category/Challenge that asks for rendered text ("Writing & Symbols").
_WRITING = re.compile(r"writ|text|typograph|letter", re.IGNORECASE)


def fail(where: str, problem: str) -> NoReturn:
    """Raise AutojudgeError("<where>: <problem>") as exactly one line."""
    message = f"{where}: {problem}" if where else problem
    raise AutojudgeError(" ".join(message.splitlines()))


def show(value: Any, limit: int = 60) -> str:
    """A short, one-line rendering of a bad value for an error message."""
    if value is None:
        return "null (empty)"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


def slugify(label: str) -> str:
    """'Writing & Symbols' -> 'writing_symbols': lower case, runs of other chars -> '_'."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def dedupe(items: list[str]) -> tuple[str, ...]:
    """Drop empties and repeats, keep first-seen order."""
    return tuple(dict.fromkeys(item for item in items if item))


def quoted_text(text: str) -> list[str]:
    """Every quoted span in `text`, in order (double, curly or non-apostrophe single quotes)."""
    spans = []
    for match in _QUOTED.finditer(text):
        span = next(group for group in match.groups() if group is not None).strip()
        if span:
            spans.append(span)
    return spans


def parti_expected_text(prompt: str, category: str, challenge: str) -> str | None:
    """The text a PartiPrompts prompt asks to render, or None.

    Only prompts whose Category or Challenge is about writing (in the published file:
    the "Writing & Symbols" challenge) and that quote their text count; several quoted
    spans are joined with a space in reading order ("START" ... "SMILING" -> "START SMILING").
    """
    if not (_WRITING.search(category) or _WRITING.search(challenge)):
        return None
    spans = quoted_text(prompt)
    return " ".join(spans) if spans else None


def read_parti(source: str, text: str) -> list[Prompt]:
    """Prompts of a PartiPrompts TSV (columns Prompt, Category, Challenge, Note).

    ids are "parti-NNNN" by data row (1-based); tags are the slugs of Category and
    Challenge; category is the Category slug; meta keeps the Note and the original labels.
    """
    reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    header: dict[str, int] | None = None
    prompts: list[Prompt] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = {cell.strip().lower(): i for i, cell in enumerate(row)}
            if "prompt" not in header:
                found = ", ".join(repr(cell.strip()) for cell in row[:8]) or "nothing"
                comma = " (is it comma-separated? PartiPrompts is tab-separated)" if "," in row[0] else ""
                fail(f"suite {source}, line {line}",
                     f"no 'Prompt' column in the header (found {found}){comma}; a PartiPrompts "
                     f"TSV starts with the tab-separated header {' / '.join(PARTI_COLUMNS)}")
            continue

        def cell(column: str) -> str:
            index = header.get(column.lower())
            return row[index].strip() if index is not None and index < len(row) else ""

        number = len(prompts) + 1
        prompt_text = cell("Prompt")
        if not prompt_text:
            fail(f"suite {source}, line {line} (row {number}), field 'Prompt'",
                 "the prompt is empty; fill it in or delete the row")
        category_label, challenge_label = cell("Category"), cell("Challenge")
        category = slugify(category_label)
        meta: dict[str, Any] = {"source": "PartiPrompts", "row": number, "note": cell("Note"),
                                "category_label": category_label, "challenge": challenge_label}
        spans = quoted_text(prompt_text)
        if spans:
            meta["quoted_text"] = tuple(spans)
        prompts.append(Prompt(
            id=f"parti-{number:04d}",
            text=prompt_text,
            tags=dedupe([category, slugify(challenge_label)]),
            category=category or None,
            expected_text=parti_expected_text(prompt_text, category_label, challenge_label),
            meta=meta,
        ))
    if header is None:
        fail(f"suite {source}", "the file is empty; a PartiPrompts TSV needs the header "
             f"{' / '.join(PARTI_COLUMNS)} and one prompt per row")
    return prompts


def read_geneval(source: str, text: str) -> list[Prompt]:
    """Prompts of GenEval's evaluation_metadata.jsonl (keys tag, include, prompt[, exclude]).

    ids are "geneval-NNNN" by line number; the tag is both the category and the only tag;
    meta keeps `include` (and `exclude`, and any other key) for object-level judges.
    """
    prompts: list[Prompt] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"suite {source}, line {line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(where, f"malformed JSON ({exc.msg} at column {exc.colno}); each line of a GenEval "
                 "metadata file is one JSON object with keys tag, include, prompt")
        if not isinstance(row, dict):
            fail(where, f"expected a JSON object with keys tag, include, prompt, got {show(row)}")
        for key in ("prompt", "tag"):
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                fail(f"{where}, field {key!r}", f"must be a non-empty string, got {show(value)}")
        include = row.get("include")
        if not isinstance(include, list) or not all(
            isinstance(item, dict) and isinstance(item.get("class"), str)
            and isinstance(item.get("count"), int) for item in include
        ):
            fail(f"{where}, field 'include'", "must be a list of objects like "
                 f'{{"class": "dog", "count": 1}}, got {show(include)}')
        tag = slugify(row["tag"])
        meta: dict[str, Any] = {"source": "GenEval", "line": line_no}
        for key, value in row.items():
            if key not in ("prompt", "tag"):
                meta[key] = tuple(value) if isinstance(value, list) else value
        prompts.append(Prompt(id=f"geneval-{line_no:04d}", text=row["prompt"].strip(),
                              tags=(tag,), category=tag, meta=meta))
    return prompts
