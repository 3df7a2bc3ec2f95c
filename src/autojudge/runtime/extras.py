"""Optional capabilities and the one-line error when one is not installed.

The core install runs the default experiment (weight-free baselines judged by offline
OCR, logged to W&B offline), `rate`, `gate` and `validate judge=[ocr]`. Everything that
needs torch or a hosted API client is an extra (pyproject.toml's optional dependencies);
a plugin calls `require()` from its `check()`, so a missing extra stops the run before
any work:

    error: judge 'clip' needs the [clip] extra: pip install 'autojudge[clip]' (not installed: ...)

Example:
    >>> require("clip", "judge 'clip'", modules=("json",))  # importable: no error
    >>> missing_modules(("json", "no_such_module_xyz"))
    ['no_such_module_xyz']
"""
from __future__ import annotations

from importlib.util import find_spec
from typing import Sequence

from autojudge.errors import AutojudgeError

#: extra -> the import names it provides that plugins need (the pip names are in
#: pyproject.toml). Checked with find_spec: importing torch to see if it exists costs seconds.
EXTRAS: dict[str, tuple[str, ...]] = {
    "clip": ("torch", "open_clip"),
    "diffusers": ("torch", "diffusers", "transformers"),
    "fal": ("fal_client", "httpx", "aiohttp", "httpx_aiohttp"),
    "vlm": ("openai",),
    "vlm-local": ("torch", "transformers"),
}


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The import names in `modules` that cannot be found (without importing them)."""
    absent = []
    for module in modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a broken parent package counts as missing
            found = False
        if not found:
            absent.append(module)
    return absent


def install_hint(extra: str) -> str:
    """The command that installs `extra` (works for editable installs too: pip keeps the
    installed autojudge and adds the extra's packages)."""
    return f"pip install 'autojudge[{extra}]'"


def require(extra: str, what: str, modules: Sequence[str] | None = None) -> None:
    """Raise AutojudgeError (one line naming the pip command) unless every module of
    `extra` (or the given `modules`, for a backend that needs only some) is installed.

    Args:
        extra: the extra's name in pyproject.toml, e.g. "clip".
        what: who needs it, as the error should start, e.g. "judge 'clip'".
        modules: import names to check; default: EXTRAS[extra].
    """
    absent = missing_modules(EXTRAS[extra] if modules is None else modules)
    if absent:
        raise AutojudgeError(f"{what} needs the [{extra}] extra: {install_hint(extra)} "
                             f"(not installed: {', '.join(absent)})")
