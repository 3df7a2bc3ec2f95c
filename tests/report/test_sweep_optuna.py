"""Optimising, not only ranking: `hydra/sweeper=optuna` tunes `typeset`'s font size for
the OCR judge (tiny fonts are unreadable). Each trial returns its objective (mean OCR
score minus the fixed reference's, `blank`, on the same prompts); the best trial's
setting is the one `autojudge.compare` ranks first on the pooled board."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from report_helpers import TYPESET_SMALL

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs hydra-optuna-sweeper "
                    "(the [sweep] extra)")
pytestmark = pytest.mark.slow
SIZES = (2, 3, 4, 5, 6, 8)


def test_optuna_best_trial_is_the_boards_first(tmp_path: Path) -> None:
    sweep, store = tmp_path / "sweep", tmp_path / "store"
    proc = run_cli(["autojudge", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid",
                    "hydra.sweeper.direction=maximize", f"hydra.sweeper.n_trials={len(SIZES)}",
                    "model.typeset.max_font_size=choice(" + ",".join(map(str, SIZES)) + ")",
                    "model=[typeset,blank]", *TYPESET_SMALL, "suite.tags=[text_rendering]",
                    "suite.limit=6", "ratings.bootstrap_rounds=100", "progress=false",
                    "sweep.reference=blank", "sweep.objective=score", "sweep.judge=ocr",
                    f"store.root={store}", f"hydra.sweep.dir={sweep}", "logger=none",
                    "report.html=false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    objectives = {}
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        run = json.loads((job / "leaderboard.json").read_text())["run"]
        size = json.loads((job / "config.json").read_text())["model"]["typeset"]["max_font_size"]
        assert run["objective"]["target"] == "typeset" and run["objective"]["n"] == 6
        objectives[size] = run["objective"]["value"]
    assert sorted(objectives) == sorted(SIZES)  # the grid tried every size once
    assert best["best_value"] == pytest.approx(max(objectives.values()))
    winner = best["best_params"]["model.typeset.max_font_size"]
    assert objectives[winner] == max(objectives.values())
    assert objectives[min(SIZES)] < objectives[winner]  # 2 px text is unreadable
    _assert_best_set_printed(sweep, proc.stdout, winner)

    pooled = run_cli(["autojudge.compare", str(sweep), "--quiet", "--no-report"])
    assert pooled.returncode == 0, pooled.stderr
    document = json.loads((sweep / "compare" / "leaderboard.json").read_text())
    board = next(b for b in document["boards"] if b["judge"] == "ocr" and b["tag"] is None)
    first = board["models"][0]
    assert first["model"] == f"typeset[max_font_size={winner}]" and first["rank"] == 1
    assert document["run"]["cache"]["judges"]["ocr"]["computed"] == 0


def _assert_best_set_printed(sweep: Path, stdout: str, winner: int) -> None:
    """Beside Optuna's one pick, the sweep's end lists every trial whose objective CI
    reaches the top trial's: each tie for first among them, the 2 px trial not."""
    records = {}
    for job in (p for p in sweep.iterdir() if p.name.isdigit()):
        run = json.loads((job / "leaderboard.json").read_text())["run"]
        size = json.loads((job / "config.json").read_text())["model"]["typeset"]["max_font_size"]
        records[size] = run["objective"]
        assert run["objective"]["ci_low"] <= run["objective"]["value"] <= \
            run["objective"]["ci_high"]
    top = max(records.values(), key=lambda r: r["value"])
    expected = {s for s, r in records.items() if r["ci_high"] >= top["ci_low"]}
    assert {s for s, r in records.items() if r["value"] == top["value"]} <= expected
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("best settings, CI-aware"))
    listed = [line for line in lines[head + 1:] if line.startswith("  model.typeset.")]
    sizes = [int(line.split("=")[1].split(":")[0]) for line in listed]
    assert set(sizes) == expected and min(SIZES) not in sizes
    assert f"{len(expected)} of {len(SIZES)} trials" in lines[head]
    marked = [line for line in listed if line.endswith("<- the sweeper's best_params")]
    assert len(marked) == 1 and f"max_font_size={winner}:" in marked[0]
