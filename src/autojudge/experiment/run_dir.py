"""Where a single run will write, told before Hydra makes the folder: the composed
config with its `hydra:` section (composed once per process for the pre-run checks),
the planned run folder, and whether it can be made (one line, never a traceback from
inside Hydra)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autojudge.experiment.schema import CONF_DIR, register_configs


def compose_with_hydra(overrides: list[str] | tuple[str, ...]) -> Any:
    """`compose(overrides)` with the `hydra:` section, kept for this process: the
    pre-run checks (`cli.checks.check_composition`, `planned_run_dir`) compose once,
    not once each (a second or so). Callers must not change what it returns."""
    key = tuple(overrides)
    if key not in _WITH_HYDRA:
        from hydra import compose as hydra_compose
        from hydra import initialize_config_dir

        register_configs()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            _WITH_HYDRA.clear()  # one entry: a process checks one command line
            _WITH_HYDRA[key] = hydra_compose(config_name="config", overrides=list(key),
                                             return_hydra_config=True)
    return _WITH_HYDRA[key]


_WITH_HYDRA: dict[tuple[str, ...], Any] = {}


def planned_run_dir(args: list[str] | tuple[str, ...]) -> tuple[Path, str] | None:
    """The folder a single run of `args` will write (hydra.run.dir, resolved as Hydra will),
    and the setting a user changes to move it: `hydra.run.dir=...` when given, else
    `name=...` (the default folder is runs/<time>_<name>). None when it cannot be told
    here; Hydra then reports the problem itself."""
    from omegaconf import OmegaConf

    overrides = [a for a in args if not a.startswith("-")]
    try:
        cfg = compose_with_hydra(overrides)
        folder, name = OmegaConf.select(cfg, "hydra.run.dir"), OmegaConf.select(cfg, "name")
    except Exception:  # an override Hydra will explain better itself
        return None
    given = [a for a in args if a.lstrip("+").startswith("hydra.run.dir=")]
    setting = given[-1].lstrip("+") if given else f"name={name}"
    return Path(str(folder)), setting  # as Hydra makes it: no ~ expansion


def run_dir_problem(target: Path, setting: str) -> str | None:
    """Whether Hydra can make the run folder `target` (from `planned_run_dir`), as one line
    naming `setting`, checked by making (and removing) its first missing folder: a name
    longer than the file system allows, or a place no folder can be made (/proc, a
    read-only mount) would otherwise be a traceback from inside Hydra. None when all is
    well."""
    import errno
    import os

    shown = setting if len(setting) <= 60 else f"{setting[:50]}... ({len(setting)} characters)"
    target = target if target.is_absolute() else Path.cwd() / target
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    missing = target.parts[len(existing.parts):]
    if not missing:
        return None
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = max(missing, key=len)
    if len(longest.encode()) > limit:
        return (f"{shown}: the run folder's name is {len(longest.encode())} bytes, too long "
                f"for this file system (at most {limit}); shorten it, or choose the folder "
                "with hydra.run.dir=runs/my_run")
    probe = existing / missing[0]
    try:
        probe.mkdir()
    except FileExistsError:  # made meanwhile, e.g. by a run starting beside this one
        return None
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        return (f"{shown}: cannot make the run folder {target} ({reason} at {probe}); choose "
                "a folder this user can write, e.g. hydra.run.dir=runs/my_run")
    probe.rmdir()
    return None
