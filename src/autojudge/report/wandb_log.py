"""Weights & Biases logging: offline by default, kept inside the run folder.

wandb is imported only here and only when the logger is on (it costs seconds to import).
Every W&B directory is pointed into `<run>/wandb`, so nothing stages under the home folder,
and each run is finished before the next one of a Hydra multirun starts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from autojudge.errors import AutojudgeError
from autojudge.ratings.boards import BOARD_KEYS as BOARD_MODEL_KEYS
from autojudge.report.files import win_rate

SECRET_MARKERS = ("key", "secret", "token", "password")


def redact(config: Any) -> Any:
    """A copy of a plain config tree with every secret-looking value replaced."""
    if isinstance(config, Mapping):
        return {k: ("<redacted>" if any(m in str(k).lower() for m in SECRET_MARKERS) and v
                    else redact(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact(v) for v in config]
    return config


def log_to_wandb(logger_cfg: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any],
                 document: Mapping[str, Any]) -> str | None:
    """Log config, every board as a table, and headline ratings as summary. Returns the
    W&B run directory (or None when the logger is off)."""
    if logger_cfg.get("kind", "none") == "none" or logger_cfg.get("mode") == "disabled":
        return None
    wandb_dir = (run_dir / "wandb").resolve()
    wandb_dir.mkdir(parents=True, exist_ok=True)
    # WANDB_DIR is the folder W&B puts its own "wandb/" into; its caches, staging and
    # core logs go to <run>/wandb/.staging, never under the home folder.
    os.environ["WANDB_DIR"] = str(run_dir.resolve())
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        os.environ[var] = str(wandb_dir / ".staging")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb
    except ImportError as exc:
        raise AutojudgeError("logger=wandb needs the wandb package: pip install wandb, "
                             "or run with logger=none") from exc
    run = wandb.init(project=logger_cfg.get("project", "autojudge"),
                     entity=logger_cfg.get("entity"), mode=logger_cfg.get("mode", "offline"),
                     # W&B adds "wandb/" itself: the run lands in <run>/wandb/offline-run-*
                     name=document["run"].get("name"), dir=str(run_dir.resolve()),
                     config=redact(dict(config)), tags=list(logger_cfg.get("tags") or []),
                     reinit="finish_previous")
    try:
        columns = ["judge", "tag", *BOARD_MODEL_KEYS, "win_rate"]
        table = wandb.Table(columns=columns)
        for board in document["boards"]:
            for row in board["models"]:
                table.add_data(board["judge"], board["tag"] or "",
                               *[row[k] for k in BOARD_MODEL_KEYS], win_rate(row))
        models = wandb.Table(columns=list(document["models"][0]) if document["models"] else [])
        for stats in document["models"]:
            models.add_data(*[str(v) if isinstance(v, dict) else v for v in stats.values()])
        run.log({"leaderboard": table, "models": models})
        if document.get("agreement"):
            keys = list(document["agreement"][0])
            agreement = wandb.Table(columns=keys)
            for row in document["agreement"]:
                agreement.add_data(*[row.get(k) for k in keys])
            run.log({"agreement": agreement})
        for board in document["boards"]:
            if board["tag"] is None:
                for row in board["models"]:
                    run.summary[f"{board['judge']}/{row['model']}/rating"] = row["rating"]
                    run.summary[f"{board['judge']}/{row['model']}/rank"] = row["rank"]
        run.summary["cache"] = document["run"].get("cache", {})
        return str(run.dir)
    finally:
        run.finish()
        _drop_empty_dirs(wandb_dir / ".staging")


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
