"""What counts as a model name: a non-empty string without control characters.

Names come from battle logs, human-vote files and run configs, and end up in terminal
tables, CSV files and report pages. A list, object or number read as a name would be
rated under its printed form (`['x']`, `inf`), and a newline would split a table row,
so such names are refused where they are read, in one line naming the row and column.
Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) are
refused rather than escaped: a name that cannot be printed as itself cannot be matched
by eye against the files it came from.

Example:
    >>> name_problem("sdxl")
    >>> name_problem(["x"])
    'must be a string, got a list'
    >>> name_problem("a\\nb")
    "must be printable text, got 'a\\\\nb' (it holds the control character '\\\\n')"
"""
from __future__ import annotations

import re
from typing import Any

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def kind_of(value: Any) -> str:
    """A value's JSON-ish kind, with its article: "a list", "an object", "a number".

    Example:
        >>> kind_of([1]), kind_of({}), kind_of(True), kind_of(float("inf")), kind_of(None)
        ('a list', 'an object', 'a boolean', 'a number', 'a NoneType')
    """
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "a boolean"
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        return "a number"
    return f"a {type(value).__name__}"


def name_problem(value: Any) -> str | None:
    """Why `value` is not a model name, as a phrase ("must be a string, got a list"),
    or None when it is one. Emptiness is the caller's to report (it has its own fix)."""
    if not isinstance(value, str):
        return f"must be a string, got {kind_of(value)}"
    found = CONTROL.search(value)
    if found:
        return (f"must be printable text, got {value!r} (it holds the control character "
                f"{found.group()!r})")
    return None
