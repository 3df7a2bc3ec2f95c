"""Run outputs on disk: leaderboard.json/csv, the battle log, scores and generations.

Every file is written atomically (temporary file + rename), so a run killed while writing
leaves the previous complete file or none, never half a table that a later run would trust.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from autojudge.ratings.boards import BOARD_KEYS
from autojudge.store import atomic_write_text
from autojudge.types import Battle, Generation

LEADERBOARD_SCHEMA = 1
BOARD_MODEL_KEYS = BOARD_KEYS


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(dict(row), default=str) + "\n" for row in rows)
    atomic_write_text(path, text)


def leaderboard_document(run: Mapping[str, Any], boards: Sequence[Mapping[str, Any]],
                         models: Sequence[Mapping[str, Any]],
                         agreement: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The `leaderboard.json` contract (DESIGN.md), schema 1; "agreement" holds one row
    per pair of judges (autojudge.ratings.agreement), [] with fewer than two judges."""
    return {"schema": LEADERBOARD_SCHEMA, "run": dict(run), "boards": list(boards),
            "models": list(models), "agreement": [dict(a) for a in agreement]}


def leaderboard_csv(boards: Sequence[Mapping[str, Any]], models: Sequence[Mapping[str, Any]]) -> str:
    """One row per (board, model), with the model's run stats alongside."""
    stats = {m["model"]: m for m in models}
    buffer = io.StringIO()
    columns = ["judge", "tag", "method", "n_battles", *BOARD_MODEL_KEYS, "provisional",
               "win_rate",
               "images", "failed", "latency_p50_s", "latency_p95_s", "cost_usd",
               "cost_per_image_usd", "queue_wait_p50_s", "queue_wait_p95_s",
               "inference_p50_s", "inference_p95_s", "nsfw"]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for board in boards:
        for row in board["models"]:
            extra = stats.get(row["model"], {})
            writer.writerow({"judge": board["judge"], "tag": board["tag"] or "",
                             "method": board["method"], "n_battles": board["n_battles"],
                             **row, "win_rate": win_rate(row), **{k: v for k, v in extra.items()
                                                                  if k != "model"}})
    return buffer.getvalue()


def win_rate(row: Mapping[str, Any]) -> float | None:
    """Wins plus half the ties, over battles (None with no battles)."""
    if not row.get("battles"):
        return None
    return round((row["wins"] + 0.5 * row["ties"]) / row["battles"], 4)


def generation_rows(generations: Sequence[Generation]) -> list[dict[str, Any]]:
    return [{
        "model": g.model, "prompt_id": g.prompt.id, "seed": g.seed, "status":
        "ok" if g.ok else "failed", "image_sha256": g.image_sha, "image_path": g.image_path,
        "latency_s": g.latency_s, "cost_usd": g.cost_usd, "cached": g.cached,
        "failure_kind": g.failure.kind if g.failure else None,
        "failure_message": g.failure.message if g.failure else None, "meta": dict(g.meta),
    } for g in generations]


def write_run_files(run_dir: Path, document: Mapping[str, Any], battles: Sequence[Battle],
                    generations: Sequence[Generation], scores: Sequence[Mapping[str, Any]],
                    skipped: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """Write every table of a finished run; leaderboard.json last, as the completion mark."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: run_dir / name for name in (
        "battles.jsonl", "generations.jsonl", "scores.jsonl", "skipped.jsonl",
        "leaderboard.csv", "leaderboard.json")}
    write_jsonl(paths["battles.jsonl"], (b.to_row() for b in battles))
    write_jsonl(paths["generations.jsonl"], generation_rows(generations))
    write_jsonl(paths["scores.jsonl"], scores)
    write_jsonl(paths["skipped.jsonl"], skipped)
    atomic_write_text(paths["leaderboard.csv"],
                      leaderboard_csv(document["boards"], document["models"]))
    atomic_write_text(paths["leaderboard.json"], json.dumps(document, indent=2, default=str) + "\n")
    return paths
