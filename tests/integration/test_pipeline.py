"""The whole pipeline, offline: suite -> generate -> OCR judge -> battles -> boards -> files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autojudge.experiment import pipeline

SMALL = ["suite.tags=[text_rendering]", "suite.limit=8", "ratings.bootstrap_rounds=200",
         "logger=none", "progress=false"]


def run_experiment(compose, store_root: Path, run_dir: Path, extra: list[str] = ()) -> dict:
    cfg = compose([f"store.root={store_root}", *SMALL, *extra])
    return pipeline.run(cfg, run_dir)


def board(document: dict, judge: str, tag: str | None = None) -> dict:
    return next(b for b in document["boards"] if b["judge"] == judge and b["tag"] == tag)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    from autojudge.experiment.schema import compose

    root = tmp_path_factory.mktemp("pipeline")

    document = run_experiment(compose, root / "store", root / "run1")
    return compose, root, document


def test_typeset_beats_blank_and_noise_on_ocr_with_separated_cis(first_run) -> None:
    _, _, document = first_run
    rows = {r["model"]: r for r in board(document, "ocr")["models"]}
    assert rows["typeset"]["rank"] == 1
    for loser in ("blank", "noise"):
        assert rows["typeset"]["ci_low"] > rows[loser]["ci_high"], rows
        assert rows["typeset"]["rating"] > rows[loser]["rating"]


def test_leaderboard_json_follows_the_contract(first_run) -> None:
    _, root, document = first_run
    on_disk = json.loads((root / "run1" / "leaderboard.json").read_text())
    assert on_disk["schema"] == 1
    assert on_disk["run"]["models"] == ["typeset", "blank", "noise"]
    assert on_disk["run"]["judges"] == ["ocr"]
    keys = {"model", "rating", "ci_low", "ci_high", "rank", "elo", "battles", "wins",
            "losses", "ties"}
    for b in on_disk["boards"]:
        assert {"judge", "tag", "method", "n_battles", "models"} <= set(b)
        for row in b["models"]:
            assert keys <= set(row)
    stats = {m["model"]: m for m in on_disk["models"]}
    assert stats["typeset"]["images"] == 8 and stats["typeset"]["failed"] == 0
    assert stats["blank"]["cost_usd"] == 0.0
    assert stats["noise"]["latency_p50_s"] is not None
    # the shipped JSON Schema holds for a real run, and the typed reader reads it back
    # to the same bytes
    jsonschema = pytest.importorskip("jsonschema")
    from autojudge.results import SCHEMA_FILE, read_leaderboard

    jsonschema.validate(on_disk, json.loads(SCHEMA_FILE.read_text()))
    typed = read_leaderboard(root / "run1")
    assert typed.to_dict() == on_disk and typed.board("ocr").row("typeset").rank == 1


def test_battle_log_has_every_pair_of_every_prompt(first_run) -> None:
    _, root, _ = first_run
    rows = [json.loads(line) for line in (root / "run1" / "battles.jsonl").read_text().splitlines()]
    assert len(rows) == 8 * 3  # 8 prompts x 3 pairs x 1 seed
    assert {frozenset((r["model_a"], r["model_b"])) for r in rows} == {
        frozenset(("typeset", "blank")), frozenset(("typeset", "noise")),
        frozenset(("blank", "noise"))}
    # slot A is drawn per (prompt, seed, pair), not taken from config order
    assert len({(r["model_a"], r["model_b"]) for r in rows}) > 3
    assert all(r["winner"] in ("model_a", "model_b", "tie", "tie (bothbad)") for r in rows)
    assert all(r["judge"] == "ocr" and r["rationale"] and r["tstamp"] > 0 for r in rows)
    scores = [json.loads(line) for line in (root / "run1" / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 8 * 3
    assert all("ocr_text" in s["raw"] for s in scores)


def test_second_run_computes_nothing_and_matches(first_run) -> None:
    compose, root, document = first_run
    again = run_experiment(compose, root / "store", root / "run2")
    cache = again["run"]["cache"]
    assert cache["generation"] == {"cached": 24, "computed": 0, "failed": 0}
    assert cache["judges"]["ocr"]["computed"] == 0 and cache["judges"]["ocr"]["cached"] == 24
    assert again["boards"] == document["boards"]
    assert (root / "run1" / "battles.jsonl").read_text() == (root / "run2" / "battles.jsonl").read_text()


def test_changing_a_generator_param_regenerates_only_that_model(first_run) -> None:
    compose, root, _ = first_run
    doc = run_experiment(compose, root / "store", root / "run3", ["model.blank.color=gray"])
    assert doc["run"]["cache"]["generation"]["computed"] == 8
    assert doc["run"]["cache"]["generation"]["cached"] == 16


@pytest.mark.slow
def test_overall_board_pools_judges_and_tag_boards_exist(compose, store_root, tmp_path) -> None:
    doc = run_experiment(compose, store_root, tmp_path / "run",
                         ["judge.ocr.tie_margin=0.1", "report.per_tag_min_prompts=3"])
    tags = {b["tag"] for b in doc["boards"] if b["judge"] == "ocr"}
    assert None in tags and "text_rendering" in tags
    overall = board(doc, "all")
    assert overall["n_battles"] == board(doc, "ocr")["n_battles"]


def test_failed_images_never_win(compose, store_root, tmp_path) -> None:
    from autojudge.experiment import build

    folder = tmp_path / "imgs"
    folder.mkdir()
    cfg = compose([f"store.root={store_root}", *SMALL, "model=[blank,folder]",
                   f"model.folder.path={folder}"])
    for prompt in build.load_suite_from_config(cfg.suite).prompts:  # a file per prompt, none
        (folder / f"{prompt.id}.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # decodes
    doc = pipeline.run(cfg, tmp_path / "run")
    stats = {m["model"]: m for m in doc["models"]}
    assert stats["folder"]["failed"] == 8 and stats["folder"]["images"] == 0
    rows = {r["model"]: r for r in board(doc, "ocr")["models"]}
    assert rows["blank"]["wins"] == 0 and rows["folder"]["wins"] == 0
    # no battles, no rating, and the board says why
    assert rows["folder"]["rating"] is None and rows["folder"]["rank"] is None
    assert rows["folder"]["unrated_reason"] == "all 8 images failed (corrupt_image x8)"
    skipped = (tmp_path / "run" / "skipped.jsonl").read_text().splitlines()
    assert len(skipped) == 8 and "corrupt_image" in skipped[0]
    loss = pipeline.run(compose([f"store.root={store_root}", *SMALL, "model=[blank,folder]",
                                 f"model.folder.path={folder}", "battles.failed_image=loss"]),
                        tmp_path / "run_loss")
    rows = {r["model"]: r for r in board(loss, "ocr")["models"]}
    assert rows["folder"]["losses"] == 8 and rows["blank"]["wins"] == 8


def test_wandb_offline_run_stays_inside_the_run_folder(compose, store_root, tmp_path) -> None:
    cfg = compose([f"store.root={store_root}", "suite.tags=[text_rendering]", "suite.limit=3",
                   "ratings.bootstrap_rounds=50", "progress=false", "logger=wandb"])
    pipeline.run(cfg, tmp_path / "run")
    offline = list((tmp_path / "run" / "wandb").rglob("offline-run-*"))
    assert offline, "no offline W&B run in the run folder"
    assert list((tmp_path / "run" / "wandb").rglob("*.wandb"))
