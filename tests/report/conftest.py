"""Report/W&B/compare/sweep fixtures: a hand-made run (every honest-drawing case) and one
real 3-point Hydra multirun over `typeset`'s font size (OCR judge, W&B offline), shared by
the W&B and compare tests so the sweep runs once per session."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_cli
from report_helpers import FONT_SIZES, SUITE_SMALL, TYPESET_SMALL, make_run



@pytest.fixture
def handmade_run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run", tmp_path / "store")


@pytest.fixture(scope="session")
def font_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`-m model.typeset.max_font_size=4,6,24` on model=[typeset,blank], logger=wandb, with
    HOME pointed at an empty folder (the W&B test checks it stays empty)."""
    root = tmp_path_factory.mktemp("font_sweep")
    home, store, sweep = root / "home", root / "store", root / "sweep"
    home.mkdir()
    env = {"HOME": str(home),
           # onnxruntime (the OCR judge's runtime, not W&B) writes a device id under
           # $XDG_CACHE_HOME (default ~/.cache) when imported; keep it out of HOME so the
           # HOME check is about what autojudge and W&B write
           "XDG_CACHE_HOME": str(root / "xdg")}
    proc = run_cli(["autojudge", "-m", "model=[typeset,blank]",
                    "model.typeset.max_font_size=" + ",".join(map(str, FONT_SIZES)),
                    *TYPESET_SMALL, *SUITE_SMALL, f"store.root={store}",
                    f"hydra.sweep.dir={sweep}", "logger=wandb", "logger.max_images=5"],
                   env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [sweep / str(i) for i in range(len(FONT_SIZES))]
    for job in jobs:
        assert json.loads((job / "leaderboard.json").read_text())["run"]["models"] == \
            ["typeset", "blank"]
    return {"sweep": sweep, "store": store, "home": home, "jobs": jobs, "root": root}
