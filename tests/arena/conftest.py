"""Arena test fixtures: a hand-made finished run and started arena clients."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_helpers import arena_config, make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run", tmp_path / "store")


@pytest.fixture
def make_client(run_dir: Path):
    """make_client(**config) -> a started TestClient (lifespan on); closed after the test."""
    from starlette.testclient import TestClient

    from autojudge.arena.app import create_app

    clients = []

    def make(app: Any = None, **overrides: Any) -> Any:
        app = app or create_app(arena_config(run_dir, **overrides))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
