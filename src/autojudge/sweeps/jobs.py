"""Finished runs and Hydra multirun jobs on disk: which folders are jobs, which parameters
a sweep varied, and each job's values of them.

A Hydra job folder holds `.hydra/overrides.yaml` (its command-line overrides) and
`.hydra/hydra.yaml` (Hydra's config: the mode, the job number and, for Optuna, the
searched `sweeper.params`). The basic sweeper also writes `multirun.yaml` in the sweep
folder, whose task overrides say which keys were swept (`a=1,2,3`, `choice(...)`,
`range(...)`). A swept key is one of those; its value in a job is that job's override.

Example:
    >>> find_jobs([Path("runs/2026-01-01_starter_sweep")])       # doctest: +SKIP
    [PosixPath('runs/2026-01-01_starter_sweep/0'), PosixPath('runs/...sweep/1'), ...]
    >>> swept_params(Path("runs/2026-01-01_starter_sweep/0"))     # doctest: +SKIP
    {'model.typeset.max_font_size': 24}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from autojudge.errors import AutojudgeError


#: files that make a folder a run (started; a reader says which one is missing)
RUN_FILES = ("leaderboard.json", "generations.jsonl")
#: files that make a folder of runs a sweep: Hydra's basic sweeper, the Optuna sweeper
SWEEP_MARKERS = ("multirun.yaml", "optimization_results.yaml")
#: what a refused multirun leaves in its sweep folder beside finished jobs: why it stopped
REFUSED_NOTE = "refused.txt"
# sweep folder (real path) -> whether it existed when this process's multirun began
# (`remember_sweep_dir`): a refusal never removes a folder this multirun did not make
_SWEEP_DIR_EXISTED: dict[str, bool] = {}


def is_run(folder: Path) -> bool:
    """A finished run: its leaderboard is written."""
    return (folder / "leaderboard.json").is_file()


def is_started_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_FILES)


def is_pooled(folder: Path) -> bool:
    """Whether a run folder is `autojudge.compare`'s output (e.g. SWEEP/compare): a sweep
    folder's jobs never include it."""
    from autojudge.results import read_leaderboard

    try:
        return read_leaderboard(folder).run.compare is not None
    except AutojudgeError:
        return False


def _job_number(folder: Path) -> tuple[int, str]:
    return (int(folder.name), "") if folder.name.isdigit() else (1 << 30, folder.name)


def find_jobs(paths: Sequence[str | Path]) -> list[Path]:
    """The run folders named by `paths`, a sweep folder standing for its jobs (in job
    order), each once. One line for a path that is neither.

    A sweep folder is one a sweeper wrote (SWEEP_MARKERS beside the jobs), so a folder
    that merely holds runs is never pooled by accident. A job that started but did not
    finish is kept: whoever reads it says so, rather than it being left out silently.
    """
    if not paths:
        raise AutojudgeError("no run folder given; pass finished run folders or a "
                             "multirun's sweep folder, e.g. runs/<run>")
    jobs: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise AutojudgeError(f"{path}: no such folder (not found); pass finished run "
                                 "folders or a multirun's sweep folder")
        if not path.is_dir():
            raise AutojudgeError(f"{path} is a file, not a run folder; pass the folder that "
                                 "holds leaderboard.json and generations.jsonl")
        if is_started_run(path):
            jobs.append(path)
            continue
        found = sorted((p for p in path.iterdir()
                        if p.is_dir() and is_started_run(p) and not is_pooled(p)),
                       key=_job_number)
        if not found or not any((path / name).is_file() for name in SWEEP_MARKERS):
            hint = f" (it holds runs, e.g. {found[0].name}: pass them by name)" if found else ""
            raise AutojudgeError(f"{path} is neither a run (no leaderboard.json or "
                                 "generations.jsonl) nor a multirun sweep folder (no "
                                 f"multirun.yaml){hint}; pass finished run folders or a "
                                 "multirun's sweep folder")
        jobs.extend(found)
    return list(dict.fromkeys(p.resolve() for p in jobs))


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    import yaml
    from omegaconf import OmegaConf

    try:  # libyaml where there is one: Hydra's hydra.yaml takes 0.2 s in pure Python
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return OmegaConf.create(data if data is not None else {})
    except Exception as exc:  # a damaged Hydra file: say which, keep going without it
        raise AutojudgeError(f"{path}: unreadable ({type(exc).__name__}); delete or repair "
                             "it") from None


def job_overrides(job_dir: Path) -> list[str]:
    """The job's command-line overrides (`.hydra/overrides.yaml`), [] if none."""
    node = _load_yaml(job_dir / ".hydra" / "overrides.yaml")
    return [str(x) for x in node] if node is not None else []


def hydra_info(job_dir: Path) -> dict[str, Any]:
    """{mode, num, sweeper_params} from `.hydra/hydra.yaml` ({} when absent)."""
    from omegaconf import OmegaConf

    node = _load_yaml(job_dir / ".hydra" / "hydra.yaml")
    if node is None:
        return {}
    hydra = node.get("hydra") or {}
    params = OmegaConf.select(hydra, "sweeper.params", default=None)
    return {"mode": str(OmegaConf.select(hydra, "mode", default="") or ""),
            "num": OmegaConf.select(hydra, "job.num", default=None),
            "sweeper_params": list(OmegaConf.to_container(params, resolve=False))
            if params is not None else []}


def _parse(overrides: Iterable[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides([str(o) for o in overrides])
    except Exception:  # not Hydra syntax: no swept values can be read from it
        return []


def swept_keys(job_dir: Path) -> list[str]:
    """Keys the job's sweep varied: the sweep overrides of the sweep folder's
    multirun.yaml plus the searched params of an optimising sweeper (Optuna)."""
    keys = list(hydra_info(job_dir).get("sweeper_params") or [])
    multirun = _load_yaml(job_dir.parent / "multirun.yaml")
    if multirun is not None:
        from omegaconf import OmegaConf

        task = OmegaConf.select(multirun, "hydra.overrides.task", default=None) or []
        keys += [o.get_key_element() for o in _parse(task) if o.is_sweep_override()]
    return list(dict.fromkeys(k.lstrip("+~") for k in keys))


def override_values(overrides: Iterable[str]) -> dict[str, Any]:
    """key -> plain value of each `key=value` override (group choices included)."""
    out = {}
    for o in _parse(overrides):
        if o.is_delete():
            continue
        value = o.value()
        out[o.get_key_element().lstrip("+~")] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def argv_swept_keys(argv: Sequence[str] | None = None) -> list[str]:
    """Keys swept on this process's command line (`a=1,2`, `choice(...)`,
    `int(interval(...))`): what a job running inside its multirun's process can see even
    when the sweeper writes no multirun.yaml (Optuna)."""
    import sys

    args = [a for a in (sys.argv[1:] if argv is None else argv)
            if "=" in a and not a.startswith("-")]
    return [o.get_key_element().lstrip("+~") for o in _parse(args) if o.is_sweep_override()]


def swept_params(job_dir: Path, extra_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The swept keys' values in this job (empty for a job of no sweep)."""
    keys = list(dict.fromkeys([*swept_keys(job_dir), *extra_keys]))
    values = override_values(job_overrides(job_dir))
    return {k: values[k] for k in keys if k in values}


def sweep_context(run_dir: Path) -> dict[str, Any] | None:
    """For a Hydra multirun job: {group: the sweep folder's name, sweep_dir, job: its
    number, swept: {key: value}}; None for a single run."""
    info = hydra_info(run_dir)
    if info.get("mode") != "MULTIRUN":
        return None
    sweep_dir = Path(run_dir).resolve().parent
    return {"group": sweep_dir.name, "sweep_dir": str(sweep_dir), "job": info.get("num"),
            "swept": swept_params(Path(run_dir), argv_swept_keys())}


# --------------------------------------------------------------------------- refusals

def remember_sweep_dir(sweep_dir: str | Path) -> None:
    """Note whether a multirun's sweep folder exists yet: called as the multirun starts,
    before its sweeper makes the folder (sweeps.best_settings_callback)."""
    import os

    path = Path(sweep_dir).expanduser()
    _SWEEP_DIR_EXISTED[os.path.realpath(path)] = path.exists()


def refused_job(sweep_dir: Path, job: str, message: str) -> Path | None:
    """After a multirun's job was refused (exit 2, before any work; its own folder is
    gone): remove the sweep folder when this multirun made it and it holds nothing but
    the sweeper's files, else write REFUSED_NOTE into it, saying which job stopped the
    sweep and why beside the jobs that finished (kept). Returns the note, None when the
    folder was removed (or the note could not be written: stderr said it already)."""
    import os
    import shutil

    if not sweep_dir.is_dir():
        return None
    entries = list(sweep_dir.iterdir())
    if _SWEEP_DIR_EXISTED.get(os.path.realpath(sweep_dir)) is False and \
            all(e.name in SWEEP_MARKERS for e in entries):
        shutil.rmtree(sweep_dir, ignore_errors=True)
        return None
    finished = sorted((e for e in entries if e.is_dir() and is_run(e)), key=_job_number)
    kept = ", ".join(e.name for e in finished) or "none"
    note = sweep_dir / REFUSED_NOTE
    try:
        note.write_text(f"error: job {job} was refused before any work: {message}\n"
                        f"The sweep stopped there. Jobs that finished (kept here): {kept}. "
                        "Fix the setting and run the sweep again: what the finished jobs "
                        "made is reused from the store.\n", encoding="utf-8")
    except OSError:
        return None
    return note


def refused_in_multirun(message: str) -> Path | None:
    """`refused_job` for the Hydra job running now, if it is one of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    swept = set(argv_swept_keys()) | set(hydra_swept_params(hydra))
    task = [str(o) for o in hydra.overrides.task]
    shown = [o for o, key in zip(task, _keys(task)) if key in swept]
    job = f"{hydra.job.num}" + (f" ({' '.join(shown)})" if shown else "")
    return refused_job(Path(str(hydra.sweep.dir)), job, message)


def hydra_swept_params(hydra: Any) -> list[str]:
    """The keys an optimising sweeper (Optuna) searches, from Hydra's config."""
    from omegaconf import OmegaConf

    params = OmegaConf.select(hydra, "sweeper.params", default=None)
    return [str(k) for k in params] if params is not None else []


def _keys(overrides: Sequence[str]) -> list[str]:
    return [o.split("=", 1)[0].lstrip("+~") for o in overrides]
