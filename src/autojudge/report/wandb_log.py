"""Weights & Biases logging: offline by default, kept inside the run folder.

wandb is imported only here and only when the logger is on (it costs seconds to import).
Every W&B directory is pointed into `<run>/wandb` (the run in `<run>/wandb/offline-run-*`,
caches, staged artifact files and core logs in `<run>/wandb/.staging`), so nothing is
written under the home folder and `wandb sync <run>/wandb/offline-run-*` finds every file
it uploads. Each run is finished before the next job of a Hydra multirun starts; the jobs
of one multirun are grouped under the sweep folder's name, with the swept parameters in
their config (`swept`). What is logged: autojudge.report.wandb_tables.

An offline run keeps in `.staging` every file its artifacts hold until `wandb sync`
uploads them from there: W&B's private read-only copy of each, the same thumbnail once
per table, each run output once more. After `run.finish()` each copy becomes a link to
the same bytes (slim_staging), so the W&B folder costs little more than its records.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from autojudge.errors import AutojudgeError
from autojudge.report.redact import redact  # kept importable from here too
from autojudge.report.render_cache import RenderCache

log = logging.getLogger(__name__)

ARTIFACT_FILES = ("leaderboard.json", "leaderboard.csv", "models.csv", "battles.jsonl",
                  "generations.jsonl", "scores.jsonl", "skipped.jsonl", "prompts.jsonl",
                  "config.json", "report.html", "gate.json")


def point_wandb_into(run_dir: Path) -> Path:
    """Point every W&B folder into the run (see the module docstring); returns <run>/wandb."""
    wandb_dir = (run_dir / "wandb").resolve()
    wandb_dir.mkdir(parents=True, exist_ok=True)
    # WANDB_DIR is the folder W&B puts its own "wandb/" into; its caches, staging and
    # core logs go to <run>/wandb/.staging, never under the home folder.
    os.environ["WANDB_DIR"] = str(run_dir.resolve())
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        os.environ[var] = str(wandb_dir / ".staging")
    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb_dir


def logged_in() -> bool:
    """Whether W&B has an API key here: WANDB_API_KEY, or `wandb login`'s netrc entry for
    the W&B host (read only; nothing is written)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return bool(host and netrc.netrc().authenticators(host))
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(configured: str | None) -> str:
    """WANDB_MODE if set; else the logger's mode, where "auto" (the shipped default) is
    online for a user logged in to W&B and offline otherwise."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    mode = str(configured or "offline")
    if mode == "auto":
        return "online" if logged_in() else "offline"
    return mode


def _typed(logger_cfg: Any) -> Any:
    """The `logger` section as config.LoggerConfig (a plain mapping takes the schema's
    defaults for what it leaves out)."""
    from autojudge.experiment.schema import LoggerConfig, stored_section

    if isinstance(logger_cfg, LoggerConfig):
        return logger_cfg
    return stored_section({"logger": dict(logger_cfg or {})}, "logger")


def init_settings(logger_cfg: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any],
                  document: Mapping[str, Any]) -> dict[str, Any]:
    """wandb.init keyword arguments: project, mode, name, group and the redacted config
    (plus `swept`: this job's values of the swept parameters, for a multirun job)."""
    from autojudge.sweeps.jobs import sweep_context

    context = sweep_context(run_dir)
    name = document["run"].get("name")
    logger = _typed(logger_cfg)
    settings: dict[str, Any] = {
        "project": logger.project, "entity": logger.entity,
        # W&B adds "wandb/" itself: the run lands in <run>/wandb/offline-run-*
        "mode": wandb_mode(logger.mode),
        "dir": str(run_dir.resolve()), "tags": list(logger.tags),
        "config": redact(dict(config)), "name": name, "group": logger.group,
        "job_type": "run", "reinit": "finish_previous"}
    if context is not None:
        settings["config"]["swept"] = context["swept"]
        settings["config"]["sweep_job"] = context["job"]
        settings["group"] = settings["group"] or context["group"]
        settings["job_type"] = "sweep-job"
        point = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in context["swept"].items())
        settings["name"] = f"{name} #{context['job']}" + (f" ({point})" if point else "")
    return settings


def log_to_wandb(logger_cfg: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any],
                 document: Mapping[str, Any]) -> str | None:
    """Log the run (see wandb_tables) to W&B. Returns the W&B run directory, or None when
    the logger is off."""
    logger = _typed(logger_cfg)
    if logger.kind == "none" or wandb_mode(logger.mode) == "disabled":
        return None
    run_dir = Path(run_dir)
    wandb_dir = point_wandb_into(run_dir)
    try:
        import wandb
    except ImportError as exc:
        raise AutojudgeError("logger=wandb needs the wandb package: pip install wandb, "
                             "or run with logger=none") from exc
    run = wandb.init(**init_settings(logger_cfg, run_dir, config, document))
    try:
        _log_everything(run, wandb, logger_cfg, run_dir)
        return str(run.dir)
    finally:
        run.finish()
        try:
            with _shared_store(config, document) as store:
                slim_staging(wandb_dir / ".staging", run_dir, store)
        except OSError as exc:  # the rest stay copies: bigger, still what sync needs
            log.warning("W&B's staged files in %s are not all linked: %s", wandb_dir, exc)
        _drop_empty_dirs(wandb_dir / ".staging")


@contextmanager
def _shared_store(config: Mapping[str, Any], document: Mapping[str, Any]) -> Iterator[Any]:
    """The run's store, to share W&B's staged images through; None when the run's
    images are copies (its folder must outlive the store), when no store is there (none
    is created for this) or when it cannot be opened (W&B's copies then stay)."""
    from autojudge.store.index import INDEX_NAME, Store

    root = (document.get("run") or {}).get("store") or (config.get("store") or {}).get("root")
    from autojudge.experiment.schema import Images, stored_section

    copies = stored_section(config, "report").images == Images.copy
    if copies or not root or not (Path(root).expanduser() / INDEX_NAME).is_file():
        yield None
        return
    try:
        store = Store(root)
    except AutojudgeError as exc:
        log.info("W&B's staged images are not shared through the store: %s", exc)
        yield None
        return
    with store:
        yield store


def _log_everything(run: Any, wandb: Any, logger_cfg: Mapping[str, Any],
                    run_dir: Path) -> None:
    from autojudge.report import wandb_tables as tables
    from autojudge.report.rundata import load_run

    data = load_run(run_dir)
    tables.log_boards(run, wandb, data)
    logger = _typed(logger_cfg)
    root = data.document["run"].get("store")
    with RenderCache.open(root) as cache, tempfile.TemporaryDirectory() as folder:
        budget = tables.ImageBudget(wandb, logger.max_images, logger.image_px, data.run_dir,
                                    cache, folder)
        tables.log_prompt_grid(run, wandb, data, budget)
        tables.log_battles(run, wandb, data, budget, logger.max_battle_rows)
    tables.log_costs_and_latency(run, wandb, data)
    if data.document.get("agreement"):
        keys = list(data.document["agreement"][0])
        agreement = wandb.Table(columns=keys)
        for row in data.document["agreement"]:
            agreement.add_data(*[row.get(k) for k in keys])
        run.log({"agreement": agreement})
    run.summary.update({**tables.summary_metrics(data.document),  # one record, not one each
                        "cache": data.document["run"].get("cache", {}),
                        "images_logged": budget.used})
    if logger.artifact:
        run.log_artifact(run_artifact(wandb, run_dir, data.document["run"].get("name")))


def run_artifact(wandb: Any, run_dir: Path, name: Any) -> Any:
    """The run folder's outputs (tables, battle log, report, plots) as one artifact of
    type "autojudge-run"; W&B versions it (v0, v1, ...) under the run's name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or run_dir.name)).strip("-.") or "run"
    artifact = wandb.Artifact(f"autojudge-{safe}", type="autojudge-run",
                              description=f"autojudge outputs of {run_dir.name}")
    for file in ARTIFACT_FILES:
        if (run_dir / file).is_file():
            artifact.add_file(str(run_dir / file), name=file)
    plots = run_dir / "plots"
    if plots.is_dir() and any(plots.glob("*.png")):
        artifact.add_dir(str(plots), name="plots")
    return artifact


def slim_staging(staging: Path, run_dir: Path, store: Any = None) -> None:
    """Turn each file W&B staged (see the module docstring) into a link to identical
    bytes: a repeat to the first copy (hard link), a run output to that file (hard: run
    files are replaced by rename, never rewritten, so the link keeps the logged bytes),
    an image to the same image as a blob of `store` (a Store with local blobs; symbolic,
    the blob written if new, so runs share it). Bytes are matched by sha256, so every
    manifest digest still holds. What stays a copy (tables; anything where no link can
    be made) gets the mode of the run's other files instead of W&B's read-only one."""
    files = sorted(p for p in staging.rglob("*") if p.is_file() and not p.is_symlink()) \
        if staging.is_dir() else []
    if not files:
        return
    outputs = {hashlib.sha256(p.read_bytes()).hexdigest(): p
               for p in _artifact_sources(run_dir)}
    mode = stat.S_IMODE((run_dir / "leaderboard.json").stat().st_mode)
    blobs = _BlobLinks(store)
    first: dict[str, Path] = {}
    for path in files:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in first:
            linked = _replace_with_link(path, first[digest], symbolic=False)
        elif digest in outputs:
            linked = _replace_with_link(path, outputs[digest], symbolic=False)
        else:
            blob = blobs.put(data)
            linked = blob is not None and _replace_with_link(path, blob, symbolic=True)
        if not linked:
            os.chmod(path, mode)
        first.setdefault(digest, path)


class _BlobLinks:
    """Images put into a store with local blobs, for staged copies to link to."""

    def __init__(self, store: Any):
        self.store = store if store is not None and store.blobs.local else None

    def put(self, data: bytes) -> Path | None:
        """The blob holding `data` (written if new), or None: not an image, no store,
        or the store cannot take it (said once in the log; the copies then stay)."""
        from autojudge.runtime.atomic_files import image_extension

        if self.store is None or image_extension(data) == "bin":
            return None
        try:
            sha, ext = self.store.put_blob(data)
        except AutojudgeError as exc:
            log.info("W&B's staged images are not shared through the store: %s", exc)
            self.store = None
            return None
        return Path(self.store.blob_path(sha, ext)).absolute()  # a link's target


def _artifact_sources(run_dir: Path) -> list[Path]:
    files = [run_dir / name for name in ARTIFACT_FILES if (run_dir / name).is_file()]
    return files + sorted((run_dir / "plots").glob("*.png"))


def _replace_with_link(path: Path, target: Path, symbolic: bool) -> bool:
    """Replace `path` by a link to `target` in one rename (`path` never goes missing);
    False, with `path` untouched, where the link cannot be made (another filesystem,
    no links there)."""
    temp = path.with_name(f".{path.name}.link")
    try:
        temp.unlink(missing_ok=True)
        if symbolic:
            os.symlink(target, temp)
        else:  # to the link itself when `target` is a symbolic link: no new one
            os.link(target, temp, follow_symlinks=False)
        os.replace(temp, path)
        return True
    except OSError:
        temp.unlink(missing_ok=True)
        return False


def _drop_empty_dirs(root: Path) -> None:
    """Remove staging folders W&B left empty (deepest first); files are kept."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()),
                         key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty
