"""Checks before any work: a run that cannot produce an answer fails before the first image
is generated or paid for, with one line saying what is wrong, where, and what to do.

- every key of the composed config exists in the schema (also keys added with `+`);
- every setting is in range: the rules declared beside each setting in the schema
  (`autojudge.experiment.schema`), cross-field rules included; and names that must exist do (an
  anchor or gate model among the run's models, a gated judge among its judges);
- at least two distinct models;
- every judge applies to at least one selected prompt (partial applicability is reported
  up front, e.g. "ocr applies to 28 of 94 prompts");
- a folder model has an image for at least one request.

Example:
    >>> unknown_keys({"ratings": {"bootstrap_round": 5}})
    ["unknown key 'ratings.bootstrap_round' (did you mean 'ratings.bootstrap_rounds'?)"]
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Mapping, Sequence

from autojudge.errors import AutojudgeError

# Maps whose keys are labels or plugin parameters, validated by the plugins themselves.
_FREE_MAPS = {"model", "judge", "human_votes.models"}


def unknown_keys(config: Mapping[str, Any]) -> list[str]:
    """Keys of a plain (or OmegaConf) config that the schema (`config.AutojudgeConfig`)
    does not know, each as a one-line message with the closest known key."""
    from omegaconf import OmegaConf

    from autojudge.experiment.schema import AutojudgeConfig

    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    problems: list[str] = []
    _walk(dict(config), AutojudgeConfig, "", problems)
    return problems


def _walk(node: Mapping[str, Any], schema: type, prefix: str, problems: list[str]) -> None:
    hints = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    for key, value in node.items():
        path = f"{prefix}{key}"
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            problems.append(f"unknown key '{path}'{hint}")
            continue
        sub = hints[key]
        if path not in _FREE_MAPS and dataclasses.is_dataclass(sub) and isinstance(value, Mapping):
            _walk(value, sub, f"{path}.", problems)


def check_settings(config: Mapping[str, Any], models: Sequence[str],
                   judges: Sequence[str], settings: Any = None) -> None:
    """Range and reference checks of the run's settings (see the module docstring): every
    rule declared in the schema (`config.rule_problems`), checked on the typed tree
    `settings` (built from `config` when not given)."""
    from autojudge.experiment.schema import rule_problems, typed_settings

    problems = unknown_keys(config)
    if problems:
        raise AutojudgeError(f"{problems[0]}; remove it or fix its spelling")
    settings = settings if settings is not None else typed_settings(config)
    problems = rule_problems(settings)
    if problems:
        raise AutojudgeError(problems[0])
    anchor = settings.ratings.anchor
    if anchor is not None and anchor not in models:
        raise AutojudgeError(f"ratings.anchor={anchor!r}: not a model of this run; choose one "
                             f"of {', '.join(models)}")
    _check_gate(settings.gate, models, judges)
    extra = [f for f in settings.gate.control if f not in settings.ratings.control]
    if extra:
        raise AutojudgeError(f"gate.control={list(settings.gate.control)}: {', '.join(extra)} "
                             "not in ratings.control, so the battle log will not carry it; "
                             "add it to ratings.control")
    mapped = settings.human_votes.models
    for name, label in mapped.items():
        if label not in models:
            raise AutojudgeError(f"human_votes.models.{name}={label!r}: not a model of this "
                                 f"run; map vote names onto {', '.join(models)}")


def check_control(control: Sequence[str], judge_kinds: Sequence[str | None]) -> None:
    """`ratings.control=[text_area]` needs an OCR judge: its boxes are the feature."""
    if "text_area" in control and "ocr" not in judge_kinds:
        raise AutojudgeError("ratings.control=[text_area] needs an ocr judge in the run (the "
                             "text area comes from its boxes); add judge=[...,ocr] or drop "
                             "text_area")


def _check_gate(gate: Any, models: Sequence[str], judges: Sequence[str]) -> None:
    base, cand = gate.baseline, gate.candidate
    if not base and not cand:
        return
    if not base or not cand:
        missing = "gate.baseline" if not base else "gate.candidate"
        raise AutojudgeError(f"{missing} is not set; a gate needs both gate.baseline and "
                             "gate.candidate (or neither)")
    for key, name in (("gate.baseline", base), ("gate.candidate", cand)):
        if name not in models:
            close = difflib.get_close_matches(str(name), list(models), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise AutojudgeError(f"{key}={name!r}: not a model of this run{hint}; models: "
                                 f"{', '.join(models)}")
    if base == cand:
        raise AutojudgeError("gate.baseline and gate.candidate name the same model; name two")
    for judge in gate.judges:
        if judge not in judges:
            raise AutojudgeError(f"gate.judges: {judge!r} is not a judge of this run; judges: "
                                 f"{', '.join(judges)}")


def check_models(models: Sequence[str]) -> None:
    """Model labels are plain text (`autojudge.battles.names`: they name rows of every table and
    file a run writes); at least two models: a board of one model compares nothing."""
    from autojudge.battles.names import name_problem

    for label in models:
        problem = name_problem(label) or ("must not be empty" if not label.strip() else None)
        if problem:
            raise AutojudgeError(f"model label {label!r} {problem}; label models with plain "
                                 "text (the top key of conf/model/NAME.yaml, or "
                                 "+model.NAME={kind: ...})")
    if len(models) < 2:
        shown = ", ".join(models) or "none"
        raise AutojudgeError(f"a run compares models and this one has {len(models)} ({shown}); "
                             "choose at least two, e.g. model=[typeset,blank]")


def check_folders(generators: Mapping[str, Any], requests: Sequence[Any]) -> list[str]:
    """Folder models: refuse one with no image for any request; report partial cover."""
    notes = []
    for label, gen in generators.items():
        match = getattr(gen, "matching_requests", None)
        if not callable(match):
            continue
        found = match(requests)
        if found.matched == 0:
            raise AutojudgeError(found.summary(label))
        if found.matched < found.requests:
            notes.append(found.summary(label))
    return notes


def check_applicability(judges: Mapping[str, Any], prompts: Sequence[Any],
                        pool: Sequence[Any] = ()) -> list[str]:
    """Refuse a judge that applies to none of the selected prompts (naming what it needs
    and a fix computed from `pool`, the suite in use before filters, else `prompts`);
    one line per judge that applies to only some of them."""
    notes = []
    for label, judge in judges.items():
        n = sum(1 for p in prompts if judge.applies(p))
        if n == 0:
            needs = getattr(judge.plugin, "needs", "prompts its applies() accepts")
            raise AutojudgeError(
                f"judge {label} applies to none of the {len(prompts)} selected prompts: it "
                f"needs {needs}; {_tags_hint(judge, pool or prompts)}choose another judge")
        if n < len(prompts):
            notes.append(f"{label} applies to {n} of {len(prompts)} prompts")
    return notes


def _tags_hint(judge: Any, pool: Sequence[Any]) -> str:
    """'select them, e.g. suite.tags=[TAG]; or ' with the tags of the prompts in `pool`
    the judge applies to (most frequent first), or '' when it applies to none."""
    counts: dict[str, int] = {}
    for prompt in pool:
        if judge.applies(prompt):
            for tag in dict.fromkeys(getattr(prompt, "tags", ())):
                counts[tag] = counts.get(tag, 0) + 1
    if not counts:
        return ""
    tags = sorted(counts, key=lambda t: -counts[t])[:3]
    return f"select such prompts, e.g. suite.tags=[{','.join(tags)}]; or "
