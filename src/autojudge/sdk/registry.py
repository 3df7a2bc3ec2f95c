"""Name -> plugin class, looked up lazily so `--help` never imports torch.

Built-in plugins are listed as "module:attr" strings (`autojudge.generators.BUILTINS`,
`autojudge.judges.BUILTINS`) and imported on first use; third parties register with the
decorator or with a package entry point in the groups `autojudge.generators` /
`autojudge.judges`. A name is owned by one plugin: registering a taken name (a built-in,
an entry point, another class) is refused in one line, never a silent overwrite.

Example:
    >>> from autojudge.sdk.registry import JUDGES
    >>> @JUDGES.register("always_a")
    ... class AlwaysA: ...
    >>> JUDGES.get("always_a") is AlwaysA
    True
    >>> class AlwaysB: ...
    >>> JUDGES.register("always_a")(AlwaysB)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    autojudge.errors.AutojudgeError: plugin name 'always_a' is taken by ...:AlwaysA ...
"""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

from autojudge import generators
from autojudge import judges
from autojudge.errors import AutojudgeError


def _target(cls: Any) -> str:
    """"module:qualname" of a class, as entry points and built-ins spell it."""
    return f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', repr(cls))}"


class Registry:
    """A named table of plugin classes with lazy imports and did-you-mean errors."""

    def __init__(self, kind: str, entry_point_group: str, builtins: dict[str, str]):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._lazy: dict[str, str] = dict(builtins)
        self._owner: dict[str, str] = {name: f"built-in {kind}" for name in builtins}
        self._builtins = tuple(builtins)
        self._loaded: dict[str, Any] = {}
        self._entry_points_read = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator: make `cls` available as `name`; a taken name is refused."""

        def add(cls: Any) -> Any:
            self._read_entry_points()
            taken = self._loaded.get(name)
            target = _target(cls)
            if taken is not None and _target(taken) != target:
                self._refuse(name, _target(taken), self._owner.get(name, "registered in code"),
                             target)
            if taken is None and name in self._lazy and self._lazy[name] != target:
                self._refuse(name, self._lazy[name], self._owner[name], target)
            self._loaded[name] = cls
            self._owner.setdefault(name, "registered in code")
            return cls

        return add

    def _refuse(self, name: str, holder: str, how: str, newcomer: str) -> None:
        raise AutojudgeError(f"plugin name '{name}' is taken by {holder} ({how}); register "
                             f"{newcomer} under another name")

    def builtin_names(self) -> list[str]:
        """The kinds autojudge ships (entry-point plugins excluded)."""
        return sorted(self._builtins)

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(set(self._lazy) | set(self._loaded))

    def check_entry_points(self) -> None:
        """Read the installed entry points now: AutojudgeError (one line) when one reuses
        a taken name. Building a plugin calls this (app.build_plugin)."""
        self._read_entry_points()

    def get(self, name: str) -> Any:
        """The class registered as `name`; AutojudgeError (with suggestions) if none.
        A built-in resolves without reading entry points (schemas are registered at
        import time, where an error could only be a traceback)."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._builtins:
            self._read_entry_points()
        if name not in self._lazy:
            raise AutojudgeError(self._unknown(name))
        module_name, _, attr = self._lazy[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AutojudgeError(
                f"{self.kind} '{name}' needs a package that is not installed ({exc}); "
                "install the extra that provides it (the README's Extras table), e.g. "
                "pip install 'autojudge[all]'"
            ) from exc
        cls = module
        for part in attr.split("."):
            cls = getattr(cls, part)
        self._loaded[name] = cls
        return cls

    def _unknown(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return (f"unknown {self.kind} kind '{name}'.{hint} Known: {', '.join(known)} (a plugin "
                f"registers its kind with an entry point in the group "
                f"'{self.entry_point_group}'; is its package installed?)")

    def _read_entry_points(self) -> None:
        """Add the installed packages' entry points; one reusing a taken name (a
        built-in, another package's) is refused in one line."""
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in entry_points(group=self.entry_point_group):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            how = f"entry point of {dist}"
            holder = self._lazy.get(ep.name)
            if holder is None and ep.name in self._loaded:
                holder = _target(self._loaded[ep.name])
            if holder is not None and holder != ep.value:
                self._entry_points_read = False  # refuse again at the next look-up
                raise AutojudgeError(
                    f"plugin name '{ep.name}' is taken by {holder} "
                    f"({self._owner.get(ep.name, 'registered in code')}); the {how} "
                    f"'{ep.name} = {ep.value}' in group '{self.entry_point_group}' must use "
                    f"another name")
            self._lazy[ep.name] = ep.value
            self._owner.setdefault(ep.name, how)


GENERATORS = Registry("generator", "autojudge.generators", generators.BUILTINS)

JUDGES = Registry("judge", "autojudge.judges", judges.BUILTINS)
