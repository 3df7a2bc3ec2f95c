"""leaderboard.json's typed contract: one writer, one reader, a shipped JSON Schema that
matches the classes, and one clear line for a file that is not a leaderboard."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autojudge.errors import AutojudgeError
from autojudge.ratings import RatingConfig
from autojudge.report.files import leaderboard_document, write_run_files
from autojudge.results import (SCHEMA_FILE, Board, Leaderboard, json_schema,
                               parse_leaderboard, read_leaderboard)
from autojudge.stages.boards import BoardSpec, build_boards, model_stats
from autojudge.types import Battle

MODELS = ["a", "b", "c", "d"]


def battles(linked: bool = True) -> list[Battle]:
    """a > b > c, d plays c: one component; unlinked: {a, b} and {c, d} never meet."""
    rng = np.random.default_rng(0)
    out = []
    pairs = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")] if linked else \
        [("a", "b"), ("c", "d")]
    for p in range(12):
        for x, y in pairs:
            winner = "model_a" if rng.random() < 0.8 else "model_b"
            out.append(Battle(prompt_id=f"p{p}", seed=0, model_a=x, model_b=y,
                              judge="ocr", winner=winner, tags=("t",)))
    return out


def document(linked: bool = True) -> dict:
    config = RatingConfig(bootstrap_rounds=40, seed=0)
    boards = build_boards(battles(linked), MODELS, ["ocr"], BoardSpec(config, 5, 0))
    run = {"name": "x", "suite": "s", "suite_path": None, "models": MODELS,
           "judges": ["ocr"], "ratings": {"bootstrap_rounds": 40, "seed": 0,
                                          "confidence": 0.95, "prior": None}}
    return leaderboard_document(run, boards, model_stats([], MODELS))


def test_the_shipped_schema_is_the_one_the_classes_give() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "regenerate it: python -c 'import json; from autojudge.results import json_schema, "
        "SCHEMA_FILE; SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + \"\\n\")'")


def test_write_then_read_gives_the_same_typed_leaderboard(tmp_path: Path) -> None:
    doc = document()
    write_run_files(tmp_path, doc, [], [], [], [])
    on_disk = json.loads((tmp_path / "leaderboard.json").read_text())
    assert on_disk == doc
    typed = read_leaderboard(tmp_path)
    assert isinstance(typed, Leaderboard) and typed.to_dict() == doc
    ocr = typed.board("ocr")
    assert ocr is not None and ocr.connected and ocr.row("a").rank == 1
    assert typed.board("all") is not None and typed.board("all").definition is not None
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(on_disk, json_schema())


def test_a_disconnected_board_says_so_in_the_typed_reader() -> None:
    typed = parse_leaderboard(document(linked=False))
    ocr = typed.board("ocr")
    assert not ocr.connected and ocr.n_components == 2 and ocr.n_unrated == 0
    assert ocr.row("a").component != ocr.row("c").component


def test_an_older_board_without_structure_keys_derives_them_from_its_rows() -> None:
    doc = document(linked=True)
    board = doc["boards"][0]
    for key in ("connected", "n_components", "n_rated", "n_unrated"):
        del board[key]
    board["models"][0]["component"] = 7  # two components among the rated rows
    typed = Board.from_dict(board)
    assert not typed.connected and typed.n_components == 2


def test_unknown_keys_are_kept_and_written_back() -> None:
    doc = document()
    doc["run"]["from_the_future"] = {"x": 1}
    doc["boards"][0]["models"][0]["note"] = "kept"
    assert parse_leaderboard(doc).to_dict() == doc


@pytest.mark.parametrize("damage, says", [
    (lambda d: [d], "not an autojudge leaderboard"),
    (lambda d: {**d, "boards": {"x": 1}}, "boards: expected a list"),
    (lambda d: {**d, "schema": 99}, "upgrade autojudge"),
    (lambda d: {**d, "run": {**d["run"], "models": "abc"}}, "run.models: expected a list"),
    (lambda d: {**d, "boards": [{**d["boards"][0], "models": [{"rating": 1.0}]}]},
     "boards[0].models[0]: missing model"),
    (lambda d: {**d, "boards": [{**d["boards"][0], "n_battles": "many"}]},
     "boards[0].n_battles: expected int"),
])
def test_a_damaged_document_is_one_line_naming_the_field(damage, says: str) -> None:
    with pytest.raises(AutojudgeError) as err:
        parse_leaderboard(damage(document()), "runs/x/leaderboard.json")
    message = str(err.value)
    assert says in message and "\n" not in message
    assert message.startswith("runs/x/leaderboard.json")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "leaderboard.json").write_text("{not json")
    with pytest.raises(AutojudgeError, match="unreadable"):
        read_leaderboard(tmp_path)
    with pytest.raises(AutojudgeError, match="not a finished run"):
        read_leaderboard(tmp_path / "nowhere")


def test_the_docs_name_every_field_of_the_contract() -> None:
    import dataclasses

    from autojudge import results

    text = (Path(__file__).parents[2] / "docs" / "results.md").read_text(encoding="utf-8")
    for cls in (results.Leaderboard, results.RunInfo, results.RatingsInfo, results.Board,
                results.BoardRow, results.ModelStats, results.AgreementRow,
                results.ControlledBoard, results.ControlledRow, results.StyleCoefficient):
        assert f"`{cls.__name__}`" in text, cls
        for f in dataclasses.fields(cls):
            if f.name != "extra":
                assert f"`{f.name}`" in text, (cls.__name__, f.name)
