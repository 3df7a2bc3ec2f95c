"""The one exception type that reaches the user as a single clear line."""
from __future__ import annotations


class AutojudgeError(Exception):
    """Bad input or an unusable environment: what was wrong, where, and what to do.

    The entry points print `error: <message>` on one line and exit non-zero; they never
    show a traceback for this type.

    Example:
        >>> raise AutojudgeError("suite prompt_suites/x.yaml, entry 3: missing field 'text'")
        Traceback (most recent call last):
        ...
        autojudge.errors.AutojudgeError: suite prompt_suites/x.yaml, entry 3: missing field 'text'
    """
