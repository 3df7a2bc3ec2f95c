"""Typed schemas for the Hydra config, registered once in Hydra's ConfigStore.

The top level and the fixed sections (suite, battles, ratings, store, report, logger) are
structured configs, so a misspelled key fails at composition with Hydra's own message.
`model` and `judge` are maps of label -> plugin params; each plugin validates its own
params against its `Config` dataclass in `app.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SuiteConfig:
    """Which prompts to run: a suite file plus filters."""

    name: str = "starter"
    path: str = "prompt_suites/starter.yaml"
    format: str = "auto"  # auto | autojudge | parti | geneval
    tags: List[str] = field(default_factory=list)
    exclude_tags: List[str] = field(default_factory=list)
    limit: Optional[int] = None
    seeds: Optional[List[int]] = None  # None: the suite file's seeds (default [0])


@dataclass
class BattlesConfig:
    """How generations become battles.

    failed_image: what a battle does when one side's image failed: "skip" leaves the
    battle out (failures show as the model's failure rate), "loss" counts it as a loss
    for the failed side. Both failed is always skipped: nobody gets a free win.
    """

    failed_image: str = "skip"


@dataclass
class RatingsConfig:
    bootstrap_rounds: int = 1000
    seed: int = 0
    confidence: float = 0.95
    prior: Optional[float] = None  # None: the ratings module's documented default
    anchor: Optional[str] = None


@dataclass
class StoreConfig:
    root: str = "~/.cache/autojudge"


@dataclass
class ReportConfig:
    per_tag_min_prompts: int = 5  # per-tag boards only for tags with this many prompts
    terminal_tags: bool = True  # print the per-tag rating matrix
    write_scores: bool = True


@dataclass
class LoggerConfig:
    kind: str = "none"  # none | wandb
    project: str = "autojudge"
    entity: Optional[str] = None
    mode: str = "offline"  # offline | online | disabled
    tags: List[str] = field(default_factory=list)


@dataclass
class AutojudgeConfig:
    name: str = "run"
    model: Dict[str, Any] = field(default_factory=dict)
    judge: Dict[str, Any] = field(default_factory=dict)
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    battles: BattlesConfig = field(default_factory=BattlesConfig)
    ratings: RatingsConfig = field(default_factory=RatingsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    progress: bool = True


def register_configs() -> None:
    """Make the schemas available to the defaults list (`- base_config`, `- suite/base`)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=AutojudgeConfig)


CONF_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "conf"


def compose(overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The experiment config for `overrides`, exactly as `python -m autojudge` composes it
    (for notebooks and tests; `hydra:` keys are left out).

    Example:
        >>> cfg = compose(["model=[typeset,blank]", "logger=none"])
        >>> sorted(cfg.model)
        ['blank', 'typeset']
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
