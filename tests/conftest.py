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
sys.path.insert(0, str(REPO / "benchmarks"))  # for `import studies` (not shipped in the package)
CONF_DIR = REPO / "conf"


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent):
    """Doctests run over the package only (pyproject's --doctest-modules): the test folder's
    modules hold none, and several share a name (conftest.py in each folder), which the
    doctest importer would refuse as a file mismatch."""
    from _pytest.doctest import DoctestModule

    collected = yield
    return [item for item in collected if not isinstance(item, DoctestModule)]


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def compose():
    """compose(overrides) -> the experiment config, exactly as `python -m autojudge` sees it."""
    from autojudge.experiment.schema import compose as compose_config

    return compose_config
