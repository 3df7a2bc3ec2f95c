"""Run outputs on disk: leaderboard.json/csv, the battle log, scores and generations.

Every file is written atomically (temporary file + rename), so a run killed while writing
leaves the previous complete file or none, never half a table that a later run would trust.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from autojudge.results import parse_leaderboard, write_leaderboard
from autojudge.runtime.atomic_files import atomic_write_text
from autojudge.types import Battle, Generation


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(dict(row), default=str) + "\n" for row in rows)
    atomic_write_text(path, text)


def leaderboard_document(run: Mapping[str, Any], boards: Sequence[Mapping[str, Any]],
                         models: Sequence[Mapping[str, Any]],
                         agreement: Sequence[Mapping[str, Any]] = (),
                         style_control: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A `leaderboard.json` document (the contract: `autojudge.results.Leaderboard`),
    checked against the contract as it is built; "agreement" holds one row per pair of
    judges (autojudge.ratings.agreement), [] with fewer than two judges; "style_control"
    one controlled board per judge when `ratings.control` is set."""
    from autojudge.results import leaderboard

    return leaderboard(run, list(boards), list(models), list(agreement),
                       list(style_control)).to_dict()


BOARD_CSV_COLUMNS = ("judge", "tag", "method", "n_battles", "connected", "model", "rank",
                     "rating", "ci_low", "ci_high", "elo", "battles", "wins", "losses",
                     "ties", "win_rate", "separated", "component", "ci_method",
                     "provisional", "unrated_reason")
STYLE_CSV_COLUMNS = ("kind", "judge", "features", "model", "rank", "rating", "ci_low",
                     "ci_high", "raw_rank", "rank_change", "battles", "feature", "elo_per_sd",
                     "sd")
MODEL_CSV_COLUMNS = ("model", "images", "failed", "failure_rate", "latency_p50_s",
                     "latency_p95_s", "cost_usd", "cost_per_image_usd", "queue_wait_p50_s",
                     "queue_wait_p95_s", "inference_p50_s", "inference_p95_s", "nsfw")
# Decimal places written: Elo ratings and bounds to 0.1 (CIs are tens of points wide, so
# more digits are noise), rates to 4, seconds to 4, dollars to 6.
_DIGITS = {"rating": 1, "ci_low": 1, "ci_high": 1, "elo": 1, "win_rate": 4,
           "failure_rate": 4, "latency_p50_s": 4, "latency_p95_s": 4, "queue_wait_p50_s": 4,
           "queue_wait_p95_s": 4, "inference_p50_s": 4, "inference_p95_s": 4,
           "cost_usd": 6, "cost_per_image_usd": 6}


def _rounded(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, _DIGITS[k]) if isinstance(v, float) and k in _DIGITS else v)
            for k, v in row.items()}


def leaderboard_csv(boards: Sequence[Mapping[str, Any]]) -> str:
    """One row per (board, model): ratings, CIs (an empty cell is an open side or no
    rating), ranks and counts, rounded to what the CIs support. Run stats per model
    (latency, cost, failures) are in models.csv (`models_csv`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=BOARD_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for board in boards:
        for row in board["models"]:
            writer.writerow(_rounded({"judge": board["judge"], "tag": board["tag"] or "",
                                      "method": board["method"],
                                      "n_battles": board["n_battles"],
                                      "connected": board["connected"],
                                      **row, "win_rate": win_rate(row)}))
    return buffer.getvalue()


def style_control_csv(boards: Sequence[Mapping[str, Any]]) -> str:
    """style_control.csv: one row per (judge, model) of each controlled board, then one
    per (judge, feature) coefficient (`kind` says which)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STYLE_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for board in boards:
        features = ",".join(board["features"])
        for row in board["rows"]:
            writer.writerow(_rounded({"kind": "model", "judge": board["judge"],
                                      "features": features, **row}))
        for coef in board["coefficients"]:
            writer.writerow(_rounded({"kind": "coefficient", "judge": board["judge"],
                                      "features": features, **coef,
                                      "elo_per_sd": round(coef["elo_per_sd"], 1)}))
    return buffer.getvalue()


def models_csv(models: Sequence[Mapping[str, Any]]) -> str:
    """One row per model: images, failures, latency percentiles, cost."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MODEL_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in models:
        writer.writerow(_rounded(row))
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
        "image": f"images/{re.sub(r'[^A-Za-z0-9._-]+', '_', g.model)}/{image_name(g)}"
        if g.ok else None,
        "latency_s": g.latency_s, "cost_usd": g.cost_usd, "cached": g.cached,
        "failure_kind": g.failure.kind if g.failure else None,
        "failure_message": g.failure.message if g.failure else None, "meta": dict(g.meta),
    } for g in generations]


IMAGE_MODES = ("link", "copy", "none")


def image_name(generation: Generation) -> str:
    """`<prompt_id>_s<seed>.<ext>`, with characters a file name cannot hold replaced."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", generation.prompt.id).strip("._") or "prompt"
    ext = Path(generation.image_path or "").suffix or ".png"
    return f"{safe}_s{generation.seed}{ext}"


def place_images(run_dir: Path, generations: Sequence[Generation], mode: str = "link") -> int:
    """Make the run's images browsable from the run folder: images/<model>/<prompt>_s<seed>
    as symbolic links into the store ("link"), as copies ("copy", for a folder that must
    outlive the store), or not at all ("none"). Returns how many were placed."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"images mode must be one of {IMAGE_MODES}, got {mode!r}")
    if mode == "none":
        return 0
    placed = 0
    for g in generations:
        if not g.ok or not g.image_path or not Path(g.image_path).is_file():
            continue
        dest = run_dir / "images" / re.sub(r"[^A-Za-z0-9._-]+", "_", g.model) / image_name(g)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        if mode == "link":
            os.symlink(os.path.abspath(g.image_path), dest)
        else:
            shutil.copyfile(g.image_path, dest)
        placed += 1
    return placed


def write_run_files(run_dir: Path, document: Mapping[str, Any], battles: Sequence[Battle],
                    generations: Sequence[Generation], scores: Sequence[Mapping[str, Any]],
                    skipped: Sequence[Mapping[str, Any]], images: str = "link"
                    ) -> dict[str, Path]:
    """Write every table of a finished run; leaderboard.json last, as the completion mark."""
    run_dir.mkdir(parents=True, exist_ok=True)
    place_images(run_dir, generations, images)
    paths = {name: run_dir / name for name in (
        "battles.jsonl", "generations.jsonl", "scores.jsonl", "skipped.jsonl",
        "leaderboard.csv", "models.csv", "leaderboard.json")}
    write_jsonl(paths["battles.jsonl"], (b.to_row() for b in battles))
    write_jsonl(paths["generations.jsonl"], generation_rows(generations))
    write_jsonl(paths["scores.jsonl"], scores)
    write_jsonl(paths["skipped.jsonl"], skipped)
    atomic_write_text(paths["leaderboard.csv"], leaderboard_csv(document["boards"]))
    if document.get("style_control"):
        atomic_write_text(run_dir / "style_control.csv",
                          style_control_csv(document["style_control"]))
    atomic_write_text(paths["models.csv"], models_csv(document["models"]))
    write_leaderboard(paths["leaderboard.json"], parse_leaderboard(document))
    return paths
