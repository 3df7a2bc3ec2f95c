"""Prompt suites: load and validate them, filter by tag, expand seeds.

Formats (`fmt=`):
    autojudge  the native format: YAML (see prompt_suites/starter.yaml), or JSONL with one
               prompt entry per line
    parti      PartiPrompts TSV (columns Prompt, Category, Challenge, Note)
    geneval    GenEval's evaluation_metadata.jsonl (keys tag, include, prompt)
    auto       by suffix and content: .yaml/.yml/.json/.jsonl native, .tsv PartiPrompts,
               .jsonl whose rows carry "include" GenEval

A native entry:

    - id: sign-bakery                 # required, unique (it names image files)
      text: 'A bakery storefront with a sign that reads "FRESH BREAD"'   # required
      category: text_rendering        # required
      capabilities: [text]            # optional
      difficulty: easy                # optional: easy | medium | hard
      expected_text: FRESH BREAD      # optional: what an OCR judge should read
      seeds: [0, 1]                   # optional: overrides the suite's seeds
      tags: [signage]                 # optional extra tags
      meta: {source: my-notes}        # optional, free-form
      questions: [{id: q1, question: 'Is there a sign?'}]   # optional (judges.questions)

An editing entry adds (see prompt_suites/editing.yaml):

      task: inpaint                   # optional: txt2img | img2img | inpaint (inferred)
      init_image: editing/room.png    # image to edit, relative to the suite file
      mask: editing/room_mask.png     # inpaint only: white = repaint, black = keep
      strength: 0.8                   # optional, (0, 1]
      style_prompt: a charcoal sketch # optional (style transfer)

`Prompt.tags` is category, capabilities, difficulty, tags: lower case, de-duplicated, in
that order. Every problem raises AutojudgeError with one line that names the file, the
entry (1-based index, id, line) or line, the field and the fix.

Example:
    >>> from autojudge.types import Prompt
    >>> suite = Suite("demo", (Prompt("cat", "a cat", ("animals",), "animals"),
    ...                        Prompt("dog", "a dog", ("animals", "hard"), "animals", seeds=(7,))),
    ...               seeds=(0, 1), source="demo.yaml")
    >>> [(prompt.id, seed) for prompt, seed in suite.requests()]
    [('cat', 0), ('cat', 1), ('dog', 7)]
    >>> suite.tags()
    {'animals': 2, 'hard': 1}
"""
from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from autojudge.errors import AutojudgeError
from autojudge.suites.entries import (DIFFICULTIES, ENTRY_FIELDS, EntryLocation, build_prompts,
                                     check_lengths, did_you_mean, question_lines, seed_list)
from autojudge.suites.importers import fail, read_geneval, read_parti, show
from autojudge.types import Prompt

__all__ = ["Suite", "JudgeScope", "load_suite", "FORMATS", "ENTRY_FIELDS", "DIFFICULTIES",
           "DEFAULT_MAX_PROMPT_CHARS"]

FORMATS = ("auto", "autojudge", "parti", "geneval")
_FORMAT_ALIASES = {"native": "autojudge", "yaml": "autojudge", "jsonl": "autojudge",
                   "partiprompts": "parti"}
TOP_LEVEL_FIELDS = ("name", "description", "seeds", "prompts", "license", "source", "version")
_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl", ".tsv")
_MAX_LISTED = 80  # tags listed in an unknown-tag error (the most common ones)
# Longest text, expected_text or style_prompt accepted (PartiPrompts' longest is 389
# characters; CLIP reads 77 tokens): anything far past this is a mistake, not a prompt.
DEFAULT_MAX_PROMPT_CHARS = 10_000


@dataclass(frozen=True)
class Suite:
    """A loaded, validated, filtered prompt suite.

    Attributes:
        name: the suite's name (file's `name:`, else the file stem, unless overridden).
        prompts: the prompts, in file order, after tag filters and limit.
        seeds: default seeds for prompts whose `Prompt.seeds` is None.
        source: the path it was read from.
        description: the file's `description:`, if any.
        fmt: the format it was read as ("autojudge", "parti", "geneval").
        notes: what the selection did that a person should hear before the run (prompts
            left out because no judge looks at them).
    """

    name: str
    prompts: tuple[Prompt, ...]
    seeds: tuple[int, ...]
    source: str
    description: str = ""
    fmt: str = "autojudge"
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "source", str(self.source))

    def requests(self) -> list[tuple[Prompt, int]]:
        """Every (prompt, seed): prompt order, then seed order."""
        return [(prompt, seed) for prompt in self.prompts
                for seed in (self.seeds if prompt.seeds is None else prompt.seeds)]

    def tags(self) -> dict[str, int]:
        """tag -> number of prompts carrying it, in order of first appearance."""
        counts: dict[str, int] = {}
        for prompt in self.prompts:
            for tag in dict.fromkeys(prompt.tags):
                counts[tag] = counts.get(tag, 0) + 1
        return counts


@dataclass(frozen=True)
class JudgeScope:
    """The run's judges as far as choosing prompts goes (`load_suite(judges=...)`).

    Attributes:
        applies: judge label -> whether the judge looks at images of a prompt.
        needs: judge label -> what it needs, in words (the plugin's `needs` hook), for
            the error when it applies to none of the selected prompts.
        only_judged: keep only prompts some judge applies to, before `limit`: an image
            no judge looks at is generated (and with hosted models paid for) for nothing.
    """

    applies: Mapping[str, Callable[[Prompt], bool]]
    needs: Mapping[str, str] = field(default_factory=dict)
    only_judged: bool = True

    @classmethod
    def of(cls, judges: Mapping[str, Any], *, only_judged: bool = True,
           human_votes: bool = False) -> "JudgeScope":
        """The scope of built judges (runners or plugins with `applies`). Human votes
        count as a judge of every prompt: people may vote on any image of the run."""
        applies = {label: judge.applies for label, judge in judges.items()}
        needs = {label: str(getattr(getattr(judge, "plugin", judge), "needs",
                                    "prompts its applies() accepts"))
                 for label, judge in judges.items()}
        if human_votes:
            applies["human"] = lambda prompt: True
        return cls(applies, needs, bool(only_judged))


def load_suite(path: str | Path, *, fmt: str = "auto", name: str | None = None,
               tags: Sequence[str] = (), exclude_tags: Sequence[str] = (),
               limit: int | None = None, seeds: Sequence[int] | None = None,
               max_prompt_chars: int | None = DEFAULT_MAX_PROMPT_CHARS,
               judges: JudgeScope | None = None) -> Suite:
    """Read, validate and filter a suite file.

    Args:
        path: the suite file.
        fmt: "auto", "autojudge", "parti" or "geneval" (see the module docstring).
        name: overrides the suite's name.
        tags: keep only prompts carrying ANY of these tags (each must exist in the suite).
        exclude_tags: then drop prompts carrying any of these (each must exist too).
        limit: then keep the first `limit` prompts (file order, so deterministic); with
            `judges` and `only_judged`, the first `limit` that some judge applies to.
        seeds: default seeds for prompts without their own. None (the default) takes
            the file's top-level `seeds:`, else (0,); a value given here overrides the
            file's top-level seeds (never a prompt's own `seeds:`).
        max_prompt_chars: the most characters an entry's text, expected_text or
            style_prompt may have; a longer one refuses the suite (whatever the filters
            keep), naming the file, the entry id and the limit. None: no limit.
        judges: the run's judges. Every judge must apply to at least one kept prompt
            (else one line naming what it needs and where this suite has such prompts);
            with `only_judged` the prompts no judge applies to are left out, and
            `Suite.notes` says so.

    Raises:
        AutojudgeError: one line naming the file, entry/line, field and fix.
    """
    path = Path(path)
    source = str(path)
    max_chars = _max_chars(max_prompt_chars, source)
    text = _read_text(path)
    kind = _resolve_format(fmt, path, text)
    file_name: str | None = None
    description = ""
    file_seeds: tuple[int, ...] | None = None
    if kind in ("parti", "geneval"):
        prompts = (read_parti if kind == "parti" else read_geneval)(source, text)
        for prompt in prompts if max_chars is not None else ():
            row = prompt.meta.get("row") or prompt.meta.get("line")
            where = "row" if "row" in prompt.meta else "line"
            check_lengths(prompt, max_chars, f"suite {source}, {where} {row} (id {prompt.id!r})")
    elif path.suffix.lower() == ".jsonl" or (path.suffix.lower() not in _SUFFIXES
                                             and text.lstrip().startswith("{")):
        prompts = _read_native_jsonl(source, text, max_chars)
    else:
        prompts, file_name, description, file_seeds = _read_native_yaml(source, text, max_chars)
    if not prompts:
        fail(f"suite {source}", "contains no prompts; add at least one entry")

    if name is not None and (not isinstance(name, str) or not name.strip()):
        fail(f"suite {source}", f"name must be a non-empty string, got {show(name)}")
    suite_name = (name or file_name or path.stem).strip()
    if seeds is not None:
        default_seeds = seed_list(seeds, f"suite {source}, suite.seeds")
    else:
        default_seeds = file_seeds if file_seeds is not None else (0,)
    selected, notes = _select(prompts, suite_name, source, tags, exclude_tags, limit, judges)
    return Suite(name=suite_name, prompts=tuple(selected), seeds=default_seeds,
                 source=source, description=description, fmt=kind, notes=notes)


# ---------------------------------------------------------------- reading and formats


def _max_chars(value: Any, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(f"suite {source}, max_prompt_chars", f"must be a positive integer or null (no "
             f"limit), got {show(value)}")
    return value


def _read_text(path: Path) -> str:
    if not path.exists():
        hint = ""
        if path.parent.is_dir():
            siblings = [p.name for p in path.parent.iterdir() if p.suffix.lower() in _SUFFIXES]
            close = difflib.get_close_matches(path.name, siblings, n=1, cutoff=0.5)
            if close:
                hint = f"; did you mean {str(path.parent / close[0])!r}?"
            elif siblings:
                hint = f"; suites there: {', '.join(sorted(siblings)[:10])}"
        fail(f"suite {path}", f"file not found (looked at {path.resolve()}); "
             f"check suite.path{hint}")
    if path.is_dir():
        fail(f"suite {path}", "is a directory; give a suite file (.yaml, .jsonl or .tsv)")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"suite {path}", f"is not UTF-8 text (byte {exc.start}); save it as UTF-8")
    except OSError as exc:
        fail(f"suite {path}", f"cannot be read ({exc.strerror or exc}); check its permissions")


def _resolve_format(fmt: str, path: Path, text: str) -> str:
    key = str(fmt).strip().lower()
    key = _FORMAT_ALIASES.get(key, key)
    if key not in FORMATS:
        close = difflib.get_close_matches(key, FORMATS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        fail(f"suite {path}", f"unknown format {fmt!r}{hint}; use one of {', '.join(FORMATS)}")
    if key != "auto":
        return key
    suffix = path.suffix.lower()
    first = next((line for line in text.splitlines() if line.strip()), "")
    if suffix == ".tsv" or (suffix not in _SUFFIXES and "\t" in first
                            and "prompt" in first.lower().split("\t")):
        return "parti"
    if suffix == ".jsonl" or (suffix not in _SUFFIXES and first.lstrip().startswith("{")):
        try:
            row = json.loads(first)
        except json.JSONDecodeError:
            return "autojudge"  # the native reader reports the bad line
        return "geneval" if isinstance(row, dict) and "include" in row else "autojudge"
    return "autojudge"


# ---------------------------------------------------------------- native format


def _read_native_yaml(source: str, text: str, max_chars: int | None = None):
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"suite {source}" + (f", line {mark.line + 1}, column {mark.column + 1}" if mark else "")
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        if exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
            problem += f"; the construct began on line {exc.context_mark.line + 1}"
        fail(where, f"malformed YAML ({problem}); fix the syntax there (quote text that "
             "contains ': ', ' #', or starts with a quote, '[', '{', '*' or '&'; inside '...' write an "
             "apostrophe as '')")
    except yaml.YAMLError as exc:
        fail(f"suite {source}", f"malformed YAML ({exc}); fix the syntax")
    finally:
        loader.dispose()

    top = f"suite {source}"
    if data is None:
        fail(top, "is empty; write a mapping with name, seeds and a 'prompts' list")
    if not isinstance(data, dict):
        hint = " (put the entries under 'prompts:')" if isinstance(data, list) else ""
        fail(top, f"the top level must be a mapping with a 'prompts' list, got {type(data).__name__}{hint}")
    _no_duplicate_keys(top, node, "")
    top_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    for key in data:
        if key not in TOP_LEVEL_FIELDS:
            fail(f"{top}, line {top_lines.get(str(key), '?')}, field {key!r}",
                 f"unknown top-level field{did_you_mean(str(key), TOP_LEVEL_FIELDS)}; "
                 f"allowed: {', '.join(TOP_LEVEL_FIELDS)}")
    if "prompts" not in data:
        fail(top, "no 'prompts' list at the top level; add 'prompts:' with one entry per prompt")
    entries = data["prompts"]
    where_prompts = f"{top}, line {top_lines.get('prompts', '?')}, field 'prompts'"
    if not isinstance(entries, list):
        fail(where_prompts, f"must be a list of entries ('- id: ...'), got {show(entries)}")
    if not entries:
        fail(where_prompts, "is empty; add at least one entry")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        fail(f"{top}, line {top_lines.get('name')}, field 'name'", f"must be a non-empty string, got {show(name)}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        fail(f"{top}, line {top_lines.get('description')}, field 'description'",
             f"must be a string, got {show(description)}")
    file_seeds = None
    if data.get("seeds") is not None:
        file_seeds = seed_list(data["seeds"], f"{top}, line {top_lines.get('seeds')}, field 'seeds'")

    prompts_node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode)
                         and k.value == "prompts"), None)
    item_nodes = prompts_node.value if isinstance(prompts_node, yaml.SequenceNode) else []
    wheres = []
    for index, entry in enumerate(entries, start=1):
        item = item_nodes[index - 1] if index - 1 < len(item_nodes) else None
        key_lines = {}
        if isinstance(item, yaml.MappingNode):
            key_lines = {k.value: k.start_mark.line + 1 for k, _ in item.value if isinstance(k, yaml.ScalarNode)}
            key_lines.update(question_lines(item))
        where = EntryLocation(source, index, item.start_mark.line + 1 if item is not None else None, key_lines)
        if isinstance(item, yaml.MappingNode):
            _no_duplicate_keys(f"suite {source}, entry {index}", item, "entry ")
        wheres.append(where)
    prompts = build_prompts(list(zip(entries, wheres)), max_chars)
    return prompts, (name.strip() if name else None), description.strip(), file_seeds


def _no_duplicate_keys(where: str, node: Any, what: str) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value != "<<":
            line = key.start_mark.line + 1
            if key.value in seen:
                fail(f"{where}, line {line}, field {key.value!r}",
                     f"the {what}key appears twice (first on line {seen[key.value]}); "
                     "YAML would keep only the last, so delete or merge one")
            seen[key.value] = line


def _read_native_jsonl(source: str, text: str, max_chars: int | None = None) -> list[Prompt]:
    pairs = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(f"suite {source}, line {line_no}",
                 f"malformed JSON ({exc.msg} at column {exc.colno}); each line must be one JSON "
                 'object such as {"id": "a", "text": "...", "category": "animals"}')
        pairs.append((entry, EntryLocation(source, len(pairs) + 1, line_no, jsonl=True)))
    return build_prompts(pairs, max_chars)


# ---------------------------------------------------------------- filters


def _select(prompts: list[Prompt], suite_name: str, source: str, tags: Sequence[str],
            exclude_tags: Sequence[str], limit: int | None, judges: JudgeScope | None = None
            ) -> tuple[list[Prompt], tuple[str, ...]]:
    """(the prompts kept, notes): tag filters, then the judged ones, then the limit."""
    known: dict[str, int] = {}
    for prompt in prompts:
        for tag in dict.fromkeys(prompt.tags):
            known[tag] = known.get(tag, 0) + 1
    want = _tag_args(tags, "suite.tags", suite_name, source, known)
    drop = _tag_args(exclude_tags, "suite.exclude_tags", suite_name, source, known)
    pool = [p for p in prompts
            if (not want or any(t in want for t in p.tags)) and not any(t in drop for t in p.tags)]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        fail(f"suite {suite_name} ({source}), suite.limit",
             f"must be a positive integer or null (all prompts), got {show(limit)}")
    if not pool:
        fail(f"suite {suite_name} ({source})",
             f"no prompts left after suite.tags={sorted(want)} and suite.exclude_tags={sorted(drop)}; "
             "loosen the filters")
    if judges is None:
        return pool[:limit], ()
    judged = pool
    if judges.only_judged:
        judged = [p for p in pool if any(applies(p) for applies in judges.applies.values())]
    kept = judged[:limit]
    _every_judge_applies(judges, kept or pool[:limit], prompts)
    notes = ()
    if len(judged) < len(pool):
        notes = (_kept_note(judges, len(pool), len(judged), len(kept), limit),)
    return kept, notes


def _kept_note(judges: JudgeScope, pooled: int, judged: int, kept: int,
               limit: int | None) -> str:
    labels = list(judges.applies)
    who = (f"judge {labels[0]} applies" if len(labels) == 1
           else f"judges {', '.join(labels)} apply")
    if kept < judged:
        return (f"keeping {kept} of {pooled} prompts: {who} to {judged} of them and "
                f"suite.limit={limit} keeps the first {kept}; suite.only_judged=false to "
                "generate for prompts no judge looks at too")
    return (f"keeping {kept} of {pooled} prompts: {who} to those; suite.only_judged=false "
            "to generate all")


def _every_judge_applies(judges: JudgeScope, selected: Sequence[Prompt],
                         every: Sequence[Prompt]) -> None:
    """One line for the first judge that applies to none of `selected`, with a fix
    computed from the suite in use (`every`: all its prompts, before filters)."""
    for label, applies in judges.applies.items():
        if any(applies(p) for p in selected):
            continue
        needs = judges.needs.get(label, "prompts its applies() accepts")
        raise AutojudgeError(
            f"judge {label} applies to none of the {len(selected)} selected prompts: it "
            f"needs {needs}; {_where_it_applies(applies, every, judges.only_judged)}, or "
            "choose another judge")


def _where_it_applies(applies: Callable[[Prompt], bool], every: Sequence[Prompt],
                      only_judged: bool) -> str:
    """How to select prompts a judge applies to: the tag of this suite that holds most
    of them, else the shipped suites that have some."""
    fit = [p for p in every if applies(p)]
    if fit:
        tag, count = Counter(t for p in fit for t in dict.fromkeys(p.tags)).most_common(1)[0]
        also = "" if only_judged else " or suite.only_judged=true (keeps only those)"
        return (f"this suite has {len(fit)} such prompts: select them, e.g. "
                f"suite.tags=[{tag}] ({count} of them){also}")
    others = _shipped_suites_with(applies)
    if others:
        return (f"this suite has no such prompt; use a suite that has some, e.g. "
                f"{', '.join(f'suite={name} ({n})' for name, n in others)}")
    return "this suite has no such prompt; use a suite that has some"


def _shipped_suites_with(applies: Callable[[Prompt], bool]) -> list[tuple[str, int]]:
    """(name, prompts the judge applies to) of each shipped suite that has any."""
    from autojudge.runtime.resources import CONF_DIR, SUITES_DIR

    found = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        if not (CONF_DIR / "suite" / path.name).is_file():
            continue  # not selectable as suite=<name>
        try:
            n = sum(1 for p in load_suite(path).prompts if applies(p))
        except AutojudgeError:
            continue  # a broken shipped suite is reported when it is chosen, not here
        if n:
            found.append((path.stem, n))
    return found


def _tag_args(values: Sequence[str] | str | None, option: str, suite_name: str, source: str,
              known: dict[str, int]) -> set[str]:
    if values is None:
        return set()
    if isinstance(values, str):
        values = [values]
    chosen: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value.strip():
            fail(f"suite {suite_name} ({source}), {option}",
                 f"each tag must be a non-empty string, got {show(value)}")
        tag = value.strip().lower()
        if tag not in known:
            shown = sorted(sorted(known.items(), key=lambda item: -item[1])[:_MAX_LISTED])
            listing = ", ".join(f"{t} ({n})" for t, n in shown)
            if len(known) > _MAX_LISTED:
                listing += f", ... and {len(known) - _MAX_LISTED} rarer tags"
            close = difflib.get_close_matches(tag, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AutojudgeError(f"unknown tag {tag!r} in {option} for suite {suite_name} ({source}){hint}; "
                                 f"known tags (prompts): {listing}")
        chosen.add(tag)
    return chosen
