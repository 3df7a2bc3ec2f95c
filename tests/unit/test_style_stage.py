"""The style-control stage of a run: features per stored image (cached in the store by
content), one controlled board per judge from that judge's battles."""
from __future__ import annotations

import io
import json
from itertools import combinations

import numpy as np
from helpers import REPO, run_cli
from PIL import Image
from scipy.special import expit

from autojudge.ratings import RatingConfig
from autojudge.ratings.bradley_terry import ELO_PER_NAT
from autojudge.stages import style
from autojudge.store.index import Store
from autojudge.types import Battle, Generation, Prompt

STRENGTH = {"m0": 0.0, "m1": 60.0, "m2": 120.0}


def _png(contrast: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(128 + contrast * rng.standard_normal((32, 32, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _run(store: Store, bias: float, prompts: int = 60):
    """Stored images whose contrast varies within each model, and a judge that adds
    `bias` Elo per contrast unit (pixel sd / 10)."""
    rng = np.random.default_rng(0)
    generations, battles = [], []
    for p in range(prompts):
        prompt, contrast = Prompt(f"p{p}", "text"), {}
        for k, model in enumerate(STRENGTH):
            contrast[model] = max(1.0, rng.normal(30 + 5 * k, 15))
            sha, ext = store.put_blob(_png(contrast[model], p * 10 + k))
            generations.append(Generation(model, prompt, 0, sha, str(store.blob_path(sha, ext)),
                                          0.0, 0.0))
        for a, b in combinations(STRENGTH, 2):
            d = STRENGTH[a] - STRENGTH[b] + bias * (contrast[a] - contrast[b]) / 10
            won = rng.random() < expit(d / ELO_PER_NAT)
            battles.append(Battle(a, b, "model_a" if won else "model_b", "judge", f"p{p}", 0))
    return generations, battles


def test_a_run_stage_measures_the_judges_taste_and_caches_the_features(tmp_path,
                                                                       monkeypatch) -> None:
    config = RatingConfig(bootstrap_rounds=50)
    with Store(tmp_path / "store") as store:
        generations, battles = _run(store, bias=80.0)
        boards = style.style_control_boards(battles, generations, ["judge"], ["contrast"],
                                            store, config)
        assert len(boards) == 1 and boards[0]["note"] is None
        (coef,) = boards[0]["coefficients"]
        assert coef["feature"] == "contrast" and coef["ci_low"] > 0
        assert {r["model"] for r in boards[0]["rows"]} == set(STRENGTH)
        assert boards[0]["n_battles"] == len(battles)

        calls = []
        monkeypatch.setattr("autojudge.style.features.image_features",
                            lambda image: calls.append(image) or {})
        again = style.style_control_boards(battles, generations, ["judge"], ["contrast"],
                                           store, config)
    assert calls == []  # every image's features came from the store
    assert again == boards


def test_no_feature_asked_is_no_work(tmp_path) -> None:
    with Store(tmp_path / "store") as store:
        assert style.style_control_boards([], [], ["judge"], [], store, RatingConfig()) == []


def test_a_run_with_control_writes_the_boards_everywhere(tmp_path) -> None:
    """ratings.control in a run: leaderboard.json's style_control (here the OCR battles
    are separated, which says so instead of a board), style_control.csv, the report's
    section and the terminal line; a bad feature name is refused before any work."""
    run = tmp_path / "run"
    proc = run_cli(["autojudge", "model=[typeset,blank]", "ratings.control=[contrast]",
                    "suite.limit=3", "ratings.bootstrap_rounds=20", "logger=none",
                    "progress=false", f"store.root={tmp_path / 'store'}",
                    f"hydra.run.dir={run}"], cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (board,) = json.loads((run / "leaderboard.json").read_text())["style_control"]
    assert board["judge"] == "ocr" and board["features"] == ["contrast"]
    assert board["rows"] == [] and "never lost" in board["note"]
    assert "style control not computed" in proc.stdout
    assert (run / "style_control.csv").is_file()
    assert 'id="style"' in (run / "report.html").read_text()
    row = json.loads((run / "battles.jsonl").read_text().splitlines()[0])
    assert {"contrast", "text_area"} <= set(row["features_a"]) and "features_b" in row
    gated = run_cli(["autojudge.gate", str(run), "--baseline", "blank", "--candidate",
                     "typeset", "--control", "contrast"], cwd=REPO, timeout=300)
    assert gated.returncode == 1 and "contrast held fixed" in gated.stdout
    assert "never lost" in gated.stdout  # separated: inconclusive, never a verdict
    bad = run_cli(["autojudge", "model=[typeset,blank]", "ratings.control=[saturation]",
                   f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'bad'}"],
                  cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "ratings.control" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_the_runs_plain_board_is_reused_as_the_raw_side(tmp_path) -> None:
    """When every battle of a judge has features, its whole-suite board is the raw side
    (not rated a second time): the controlled board is the same either way."""
    from autojudge.stages.boards import BoardSpec, build_boards

    config = RatingConfig(bootstrap_rounds=30)
    with Store(tmp_path / "store") as store:
        generations, battles = _run(store, bias=40.0, prompts=30)
        boards = build_boards(battles, list(STRENGTH), ["judge"], BoardSpec(config))
        alone = style.style_control_boards(battles, generations, ["judge"], ["contrast"],
                                           store, config)
        reused = style.style_control_boards(battles, generations, ["judge"], ["contrast"],
                                            store, config, boards)
    assert reused == alone


def test_judges_and_people_side_by_side_in_the_terminal_and_the_report(tmp_path) -> None:
    """With two measured boards (a judge and people), one table shows each feature's
    coefficient per judge, people as "people", in the terminal and in report.html."""
    from rich.console import Console

    from autojudge.report.html import build_report
    from autojudge.report.terminal import print_report

    run = tmp_path / "run"
    proc = run_cli(["autojudge", "model=[typeset,blank]", "ratings.control=[contrast]",
                    "suite.limit=3", "ratings.bootstrap_rounds=20", "logger=none",
                    "progress=false", f"store.root={tmp_path / 'store'}",
                    f"hydra.run.dir={run}"], cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads((run / "leaderboard.json").read_text())
    coef = lambda elo: {"feature": "contrast", "elo_per_sd": elo, "ci_low": elo - 20,  # noqa
                        "ci_high": elo + 20, "sd": 0.1}
    document["style_control"] = [
        {"judge": "vlm", "features": ["contrast"], "n_battles": 90, "rows": [],
         "coefficients": [coef(61.0)], "dropped": {}, "note": None},
        {"judge": "human", "features": ["contrast"], "n_battles": 40, "rows": [],
         "coefficients": [coef(19.5)], "dropped": {}, "note": None}]
    (run / "leaderboard.json").write_text(json.dumps(document))
    console = Console(record=True, width=200)
    print_report(document, str(run), 0.95, console=console)
    shown = console.export_text()
    assert "side by side" in shown
    # one row holds the judge's and people's coefficient together
    assert any("contrast" in ln and "+61.0" in ln and "+19.5" in ln
               for ln in shown.splitlines())
    html = build_report(run).read_text()
    assert "<th>people</th>" in html and "+61.0" in html and "+19.5" in html


def test_control_settings_that_cannot_work_are_refused_before_any_work() -> None:
    import pytest

    from autojudge.errors import AutojudgeError
    from autojudge.experiment.preflight import check_control

    with pytest.raises(AutojudgeError, match="needs an ocr judge"):
        check_control(["contrast", "text_area"], ["clip", "vlm"])
    check_control(["contrast", "text_area"], ["clip", "ocr"])
    check_control(["contrast"], ["clip"])


def test_gate_control_must_be_written_by_ratings_control(tmp_path) -> None:
    bad = run_cli(["autojudge", "model=[typeset,blank]", "gate.baseline=blank",
                   "gate.candidate=typeset", "gate.control=[contrast]",
                   f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'bad'}"],
                  cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "not in ratings.control" in bad.stderr
    assert not (tmp_path / "bad").exists()
