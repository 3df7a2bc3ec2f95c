"""Shared test setup: offline hubs, W&B offline, a fresh store per test, Hydra compose."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# A failed hub lookup retries for ~47 s; tests never reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import helpers`
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def compose():
    """compose(overrides) -> the experiment config, exactly as `python -m autojudge` sees it."""
    from autojudge.config import compose as compose_config

    return compose_config
