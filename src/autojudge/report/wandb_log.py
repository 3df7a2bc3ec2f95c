"""Weights & Biases logging: offline by default, kept inside the run folder.

wandb is imported only here and only when the logger is on (it costs seconds to import).
Every W&B directory is pointed into `<run>/wandb` (the run in `<run>/wandb/offline-run-*`,
caches, staged artifact files and core logs in `<run>/wandb/.staging`), so nothing is
written under the home folder and `wandb sync <run>/wandb/offline-run-*` finds every file
it uploads. Each run is finished before the next job of a Hydra multirun starts; the jobs
of one multirun are grouped under the sweep folder's name, with the swept parameters in
their config (`swept`). What is logged: autojudge.report.wandb_tables.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from autojudge.errors import AutojudgeError
from autojudge.report.redact import redact  # kept importable from here too

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


def init_settings(logger_cfg: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any],
                  document: Mapping[str, Any]) -> dict[str, Any]:
    """wandb.init keyword arguments: project, mode, name, group and the redacted config
    (plus `swept`: this job's values of the swept parameters, for a multirun job)."""
    from autojudge.sweep_jobs import sweep_context

    context = sweep_context(run_dir)
    name = document["run"].get("name")
    settings: dict[str, Any] = {
        "project": logger_cfg.get("project", "autojudge"), "entity": logger_cfg.get("entity"),
        # W&B adds "wandb/" itself: the run lands in <run>/wandb/offline-run-*
        "mode": wandb_mode(logger_cfg.get("mode", "offline")),
        "dir": str(run_dir.resolve()), "tags": list(logger_cfg.get("tags") or []),
        "config": redact(dict(config)), "name": name, "group": logger_cfg.get("group"),
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
    if logger_cfg.get("kind", "none") == "none" or \
            wandb_mode(logger_cfg.get("mode")) == "disabled":
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
        _drop_empty_dirs(wandb_dir / ".staging")


def _log_everything(run: Any, wandb: Any, logger_cfg: Mapping[str, Any],
                    run_dir: Path) -> None:
    from autojudge.report import wandb_tables as tables
    from autojudge.report.rundata import load_run

    data = load_run(run_dir)
    tables.log_boards(run, wandb, data)
    budget = tables.ImageBudget(wandb, int(logger_cfg.get("max_images", 200)),
                                int(logger_cfg.get("image_px", 256)), data.run_dir)
    tables.log_prompt_grid(run, wandb, data, budget)
    tables.log_battles(run, wandb, data, budget, int(logger_cfg.get("max_battle_rows", 2000)))
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
    if logger_cfg.get("artifact", True):
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
