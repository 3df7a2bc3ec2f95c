"""Range rules of the typed settings (`autojudge.experiment.schema`), declared on the
fields themselves.

A setting's type, default and rule live together in its section's dataclass:

    bootstrap_rounds: int = ranged(100, Range(low=1))

and a rule that depends on another setting of the same section is declared beside the
section as `RULES: ClassVar[tuple[When, ...]] = (When(...),)`. Pre-flight (`check_rules`)
walks the schema, so every declared rule is checked before any work, and nothing
accepted up front is refused later.

Example:
    >>> Range(low=10).problem("battles.bootstrap_rounds", 5, integer=True)
    'battles.bootstrap_rounds=5: must be an integer >= 10 (set battles.bootstrap_rounds=10 or more)'
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Iterator, Union


def _fmt(x: float) -> str:
    """1e-06 -> 1e-6, 1000000.0 -> 1e6, 10.0 -> 10 (as a user types them)."""
    return ("%g" % x).replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


@dataclass(frozen=True)
class Range:
    """Allowed values of a number: `low`/`high` bounds, inclusive unless `open_low` /
    `open_high`. `what` names the number in messages (None: "an integer" or "a number" by
    the field's type; "" for none); `null` says what null means where the type allows it."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    what: str | None = None
    null: str = ""

    def allows(self, value: Any, integer: bool = False) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value) or (integer and value != int(value)):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def bounds(self) -> str:
        """'>= 10', '> 0', 'between 0 and 1'."""
        if self.low is not None and self.high is not None:
            return f"between {_fmt(self.low)} and {_fmt(self.high)}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {_fmt(self.low)}"
        return f"{'<' if self.open_high else '<='} {_fmt(self.high or 0)}"

    def must(self, integer: bool, optional: bool) -> str:
        noun = self.what if self.what is not None else ("an integer" if integer else "a number")
        both = self.low is not None and self.high is not None
        text = self.bounds() if both or not noun else f"{noun} {self.bounds()}"
        if optional:
            text += f", or null for {self.null}" if self.null else " or null"
        return text

    def fix(self, path: str) -> str:
        if self.low is not None and self.high is not None:
            return f"set {path} {self.bounds()}"
        if self.low is not None:
            return (f"set {path} above {_fmt(self.low)}" if self.open_low
                    else f"set {path}={_fmt(self.low)} or more")
        return (f"set {path} below {_fmt(self.high or 0)}" if self.open_high
                else f"set {path}={_fmt(self.high or 0)} or less")

    def problem(self, path: str, value: Any, integer: bool = False,
                optional: bool = False) -> str | None:
        """One line when `value` breaks the rule, else None."""
        if (value is None and optional) or self.allows(value, integer):
            return None
        return f"{path}={value!r}: must be {self.must(integer, optional)} ({self.fix(path)})"


@dataclass(frozen=True)
class OneOf:
    """A text setting with a fixed set of values (enums are checked by their type)."""

    values: tuple[str, ...]

    def problem(self, path: str, value: Any, integer: bool = False,
                optional: bool = False) -> str | None:
        if (value is None and optional) or value in self.values:
            return None
        return f"{path}={value!r}: choose {', '.join(self.values[:-1])} or {self.values[-1]}"


@dataclass(frozen=True)
class Distinct:
    """A list of at least one item, none twice (null allowed where the type says so)."""

    example: str = "[0,1,2]"

    def problem(self, path: str, value: Any, integer: bool = False,
                optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        items = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "__len__") \
            and not isinstance(value, str) else None
        if items and len(set(items)) == len(items):
            return None
        shown = items if items is not None else value
        return (f"{path}={shown!r}: must be a non-empty list of distinct values"
                f"{' or null' if optional else ''} (e.g. {path}={self.example})")


@dataclass(frozen=True)
class SubsetOf:
    """A list of distinct values, each one of `values` (empty allowed: none of them)."""

    values: tuple[str, ...]

    def problem(self, path: str, value: Any, integer: bool = False,
                optional: bool = False) -> str | None:
        items = list(value) if value is not None and not isinstance(value, str) else None
        if items is None:
            return f"{path}={value!r}: must be a list, e.g. {path}=[{self.values[0]}]"
        unknown = [v for v in items if v not in self.values]
        if unknown:
            return (f"{path}={items!r}: unknown value {unknown[0]!r}; choose from "
                    f"{', '.join(self.values)}")
        if len(set(items)) != len(items):
            return f"{path}={items!r}: a value is listed twice"
        return None


Rule = Union[Range, OneOf, Distinct, SubsetOf]


@dataclass(frozen=True)
class When:
    """A rule on `setting` that holds while the section's `other` setting equals `value`
    (a cross-field rule, declared once beside its section); `reason` names the case."""

    setting: str
    rule: Range
    other: str
    value: Any
    reason: str

    def problem(self, path: str, value: Any, integer: bool = False) -> str | None:
        if value is None or self.rule.allows(value, integer):
            return None
        return f"{path}={value!r}: {self.reason} needs {self.rule.bounds()} ({self.rule.fix(path)})"


def ranged(default: Any, rule: Rule) -> Any:
    """A dataclass field with its default and its rule (read by `declared_rules`)."""
    return field(default=default, metadata={"rule": rule})


@dataclass(frozen=True)
class Declared:
    """One declared rule, found by walking the schema: where, on which type, which rule."""

    path: str  # dotted, e.g. battles.bootstrap_rounds
    integer: bool
    optional: bool
    rule: Rule
    when: When | None = None  # a cross-field rule: `rule` is when.rule, checked if it holds

    def problem(self, section: Any, value: Any) -> str | None:
        if self.when is None:
            return self.rule.problem(self.path, value, self.integer, self.optional)
        if _plain(_attr(section, self.when.other)) != _plain(self.when.value):
            return None
        return self.when.problem(self.path, value, self.integer)


def _shape(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional, whether None is allowed)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else hint), True
    return hint, False


def declared_rules(schema: type, prefix: str = "") -> Iterator[Declared]:
    """Every rule declared in `schema` and its section dataclasses, field rules first."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        kind, optional = _shape(hints[f.name])
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(kind):
            yield from declared_rules(kind, f"{path}.")
        elif "rule" in f.metadata:
            yield Declared(path, kind is int, optional, f.metadata["rule"])
    for when in getattr(schema, "RULES", ()):
        kind, _ = _shape(hints[when.setting])
        yield Declared(f"{prefix}{when.setting}", kind is int, False, when.rule, when)


_UNSET = object()


def _plain(value: Any) -> Any:
    """An Enum member's value, anything else as is (typed and plain configs compare)."""
    return getattr(value, "value", value)


def _attr(node: Any, name: str) -> Any:
    """A setting of a typed section or an OmegaConf node; _UNSET when it cannot be read
    (a value left as ??? is reported by its own check)."""
    try:
        return getattr(node, name)
    except Exception:  # omegaconf's MissingMandatoryValue and friends
        return _UNSET


def check_rules(settings: Any, schema: type, prefix: str = "") -> list[str]:
    """Every broken rule of `settings` (the typed tree, or the composed OmegaConf node of
    `schema`), one line each, in declaration order; `prefix` is where `schema` sits in
    the whole tree (e.g. "battles." for a section checked alone)."""
    problems = []
    for rule in declared_rules(schema, prefix):
        *parents, name = rule.path[len(prefix):].split(".")
        section = settings
        for part in parents:
            section = _attr(section, part) if section is not _UNSET else _UNSET
        value = _attr(section, name) if section is not _UNSET else _UNSET
        if value is _UNSET:
            continue
        problem = rule.problem(section, value)
        if problem:
            problems.append(problem)
    return problems

