"""Name -> plugin class, looked up lazily so `--help` never imports torch.

Built-in plugins are listed as "module:attr" strings and imported on first use; third
parties register with the decorator or with a package entry point in the groups
`autojudge.generators` / `autojudge.judges`.

Example:
    >>> from autojudge.registry import JUDGES
    >>> @JUDGES.register("always_a")
    ... class AlwaysA: ...
    >>> JUDGES.get("always_a") is AlwaysA
    True
"""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

from autojudge.errors import AutojudgeError


class Registry:
    """A named table of plugin classes with lazy imports and did-you-mean errors."""

    def __init__(self, kind: str, entry_point_group: str, builtins: dict[str, str]):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._lazy: dict[str, str] = dict(builtins)
        self._builtins = tuple(builtins)
        self._loaded: dict[str, Any] = {}
        self._entry_points_read = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator: make `cls` available as `name`."""

        def add(cls: Any) -> Any:
            self._loaded[name] = cls
            return cls

        return add

    def builtin_names(self) -> list[str]:
        """The kinds autojudge ships (entry-point plugins excluded)."""
        return sorted(self._builtins)

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(set(self._lazy) | set(self._loaded))

    def get(self, name: str) -> Any:
        """The class registered as `name`; AutojudgeError (with suggestions) if none."""
        if name in self._loaded:
            return self._loaded[name]
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
        self._loaded[name] = getattr(module, attr)
        return self._loaded[name]

    def _unknown(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return (f"unknown {self.kind} kind '{name}'.{hint} Known: {', '.join(known)} (a plugin "
                f"registers its kind with an entry point in the group "
                f"'{self.entry_point_group}'; is its package installed?)")

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in entry_points(group=self.entry_point_group):
            self._lazy.setdefault(ep.name, ep.value)


GENERATORS = Registry(
    "generator",
    "autojudge.generators",
    {
        "blank": "autojudge.generators.baselines:BlankGenerator",
        "noise": "autojudge.generators.baselines:NoiseGenerator",
        "typeset": "autojudge.generators.baselines:TypesetGenerator",
        "folder": "autojudge.generators.folder:FolderGenerator",
        "fal": "autojudge.generators.fal:FalGenerator",
        "diffusers": "autojudge.generators.diffusers_local:DiffusersGenerator",
    },
)

JUDGES = Registry(
    "judge",
    "autojudge.judges",
    {
        "ocr": "autojudge.judges.ocr:OCRJudge",
        "clip": "autojudge.judges.clip_score:CLIPScoreJudge",
        "aesthetic": "autojudge.judges.aesthetic:AestheticJudge",
        "vlm": "autojudge.judges.vlm_preference:VLMPreferenceJudge",
        "preservation": "autojudge.judges.preservation:PreservationJudge",
    },
)
