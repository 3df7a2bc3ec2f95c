"""Fast, one-line checks of command-line overrides before Hydra composes anything.

Hydra's own message for an unknown config-group option spans several lines; this turns
`model=[typeset,blnk]` into `error: unknown model 'blnk' (did you mean 'blank'?) ...`.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Sequence

CHECKED_GROUPS = ("model", "judge", "suite", "logger", "executor", "experiment")

#: Hydra plugins a user selects by name: (group, option prefix) -> (plugin module, install)
HYDRA_PLUGINS = {
    ("hydra/sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper",
                                  "pip install 'autojudge[sweep]'"),
    ("hydra/launcher", "submitit"): ("hydra_plugins.hydra_submitit_launcher",
                                     "pip install hydra-submitit-launcher"),
    ("hydra/launcher", "ray"): ("hydra_plugins.hydra_ray_launcher",
                                "pip install hydra-ray-launcher"),
    ("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher",
                                   "pip install hydra-joblib-launcher"),
}


def available(conf_dir: Path, group: str) -> list[str]:
    folder = conf_dir / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _names(value: Any) -> Iterable[Any]:
    """Every option inside an override value (str, list, or a sweep of lists); Hydra
    parses `model=[typeset,5]` with an int, which no config file can be named."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _names(item)
    elif hasattr(value, "list"):  # ChoiceSweep and friends
        yield from _names(value.list)
    elif value is not None:
        yield value


def check_overrides(args: Sequence[str], conf_dir: Path) -> str | None:
    """The first problem with a group override, as one line, or None if all is well."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    if not overrides:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return None  # Hydra reports grammar errors itself, with the caret under the spot
    conf_dirs = _search_dirs(parsed, conf_dir)
    if conf_dirs is None:
        return None  # a pkg:// search path: let Hydra look there itself
    for override in parsed:
        group = override.key_or_group
        plugin = _missing_hydra_plugin(group, override.value())
        if plugin:
            return plugin
        if group not in CHECKED_GROUPS or override.is_delete():
            continue
        known = sorted({name for folder in conf_dirs for name in available(folder, group)})
        value = override.value()
        if isinstance(value, (list, tuple)) and not override.is_sweep_override():
            twice = sorted({n for n in value if isinstance(n, str) and list(value).count(n) > 1})
            if twice:
                return (f"{group}={override.get_value_element_as_str()} names {twice[0]} twice; "
                        f"a {group} is chosen once (for two copies, add a second label: "
                        f"'+{group}.{twice[0]}_2={{kind: ...}}')")
        for name in _names(value):
            if not isinstance(name, str):
                from autojudge.battles.names import kind_of

                return (f"{group}={override.get_value_element_as_str()}: {name!r} is "
                        f"{kind_of(name)}, not a {group} name; available: "
                        f"{', '.join(known)}")
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                return (f"unknown {group} '{name}'{hint}; available: {', '.join(known)} "
                        f"(add conf/{group}/{name}.yaml to define it)")
    return None


def _missing_hydra_plugin(group: str, value: Any) -> str | None:
    """`hydra/sweeper=optuna` (or a launcher) whose Hydra plugin is not installed: Hydra
    would only say that the option is not among 'basic'."""
    from autojudge.runtime.extras import missing_modules

    for name in _names(value) if group.startswith("hydra/") else ():
        for (plugin_group, prefix), (module, install) in HYDRA_PLUGINS.items():
            if group == plugin_group and str(name).startswith(prefix) and missing_modules([module]):
                return f"{group}={name} needs a Hydra plugin that is not installed: {install}"
    return None


def _search_dirs(parsed: Sequence[Any], conf_dir: Path) -> list[Path] | None:
    """autojudge's conf dir plus every `file://` folder of a hydra.searchpath override
    (plugin packages ship their own config files); None when some entry is not a folder."""
    dirs = [conf_dir]
    for override in parsed:
        if override.key_or_group != "hydra.searchpath":
            continue
        for entry in _names(override.value()):
            if not isinstance(entry, str) or not entry.startswith("file://"):
                return None
            dirs.append(Path(entry[len("file://"):]))
    return dirs


def _is_searchpath(arg: str) -> bool:
    return arg.lstrip("+~").startswith("hydra.searchpath")


def _known_keys_hint(full_key: str, group_overrides: Sequence[str]) -> str:
    """' (did you mean ...?) known keys: ...' for a misspelled dotted key, or ''."""
    from omegaconf import OmegaConf

    from autojudge.experiment.schema import compose

    parent, _, leaf = full_key.rpartition(".")
    try:
        node = compose(group_overrides)
    except Exception:  # the hint is a courtesy; the error line stands without it
        return ""
    node = OmegaConf.select(node, parent) if parent else node
    if not OmegaConf.is_dict(node):
        return ""
    keys = [str(k) for k in node.keys()]
    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f" (did you mean '{parent + '.' if parent else ''}{close[0]}'?)" if close else ""
    return f"{hint}; known keys: {', '.join(keys)}"


def _composed(overrides: list[str], planned: list[str]) -> Any:
    """The job config of `overrides`; where they are the run's overrides less `hydra.*`
    ones (which change only the `hydra:` section), from the composition `planned_run_dir`
    also reads (`run_dir.compose_with_hydra`), less that section."""
    from omegaconf import OmegaConf

    from autojudge.experiment.run_dir import compose_with_hydra
    from autojudge.experiment.schema import compose

    if overrides == [a for a in planned if a in overrides] and all(
            a.lstrip("+~").startswith(("hydra.", "hydra/")) for a in planned
            if a not in overrides):
        try:
            full = compose_with_hydra(planned)
        except Exception:  # noqa: BLE001 - composed again below, for its own message
            full = None
        if full is not None:
            job = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
            OmegaConf.set_struct(job, True)  # as compose() leaves it
            return job
    return compose(overrides)


def check_composition(args: Sequence[str]) -> str | None:
    """Compose the job config the way a single run would; any failure as one line.

    Multiruns, help and hydra.* overrides are left to Hydra itself.
    """
    if any(a in ("-m", "--multirun") or (a.startswith("-") and a not in ("-m",)) for a in args):
        return None
    # hydra.* settings are Hydra's own, except the search path: it decides which config
    # files exist (a plugin package's conf folder)
    overrides = [a for a in args if not a.lstrip("+~").startswith(("hydra.", "hydra/"))
                 or _is_searchpath(a)]
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        composed = _composed(overrides, [a for a in args if not a.startswith("-")])
    except (HydraException, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cause = exc.__cause__
        detail = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
        full_key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
        groups = [a for a in overrides if "." not in a.split("=", 1)[0] or _is_searchpath(a)]
        hint = _known_keys_hint(full_key, groups) if full_key and "not in" in detail else ""
        return f"{first.rstrip('.')}: {detail}{hint}" if detail else first
    from autojudge.experiment.schema import rule_problems
    from autojudge.experiment.preflight import unknown_keys

    problems = unknown_keys(composed)  # e.g. a key added with '+' that nothing reads
    if problems:
        return f"{problems[0]}; remove it or fix its spelling"
    # every range rule of the schema, before Hydra makes a run folder (the run checks
    # them again, for multirun jobs and API callers)
    problems = rule_problems(composed)
    return problems[0] if problems else None


def check_run_dir(args: Sequence[str], cwd: Path | None = None) -> str | None:
    """The run folder Hydra is about to create (hydra.run.dir=..., else runs/ here) must
    be creatable: not a file, under a folder this user can write. Hydra itself would
    fail inside its logging setup with a traceback."""
    import os

    base = Path(cwd or Path.cwd())
    given = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("hydra.run.dir=")]
    target = (base / Path(given[-1]).expanduser()) if given else base / "runs"
    where = f"hydra.run.dir={given[-1]}" if given else f"the runs folder {target}"
    if target.exists() and not target.is_dir():
        return (f"{where}: {target} is a file, not a folder; give a folder for the run's "
                "outputs, e.g. hydra.run.dir=runs/my_run")
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{where}: {probe} is a file, so the run folder cannot be made under it"
    if not os.access(probe, os.W_OK | os.X_OK):
        return (f"{where}: {probe} is not writable by this user; choose a writable folder "
                "with hydra.run.dir=... or fix its permissions")
    return None
