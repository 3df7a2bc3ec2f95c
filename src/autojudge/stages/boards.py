"""Rate stage: battles -> boards (per judge, per tag, overall) and per-model run stats."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autojudge.types import Battle, Generation


@dataclass(frozen=True)
class BoardSpec:
    """Which boards to build and how to rate them."""

    rating_config: Any  # autojudge.ratings.RatingConfig
    per_tag_min_prompts: int = 5
    min_battles: int = 0  # fewer battles: the model's row says "provisional": true


def build_boards(battles: Sequence[Battle], models: Sequence[str], judges: Sequence[str],
                 spec: BoardSpec) -> list[dict[str, Any]]:
    """One board per judge (whole suite, then each tag with enough prompts), then the
    overall board `judge: "all"` pooling every judge's battles (always present, so tools
    can rely on it; with one judge it equals that judge's board).

    Example:
        >>> boards = build_boards(battles, ["a", "b"], ["ocr"], BoardSpec(RatingConfig()))  # doctest: +SKIP
        >>> boards[0]["judge"], boards[0]["tag"]                                            # doctest: +SKIP
        ('ocr', None)
    """
    boards = []
    groups = [(judge, [b for b in battles if b.judge == judge]) for judge in judges]
    groups.append(("all", list(battles)))
    for judge, subset in groups:
        boards.append(_board(judge, None, subset, models, spec))
        for tag in _tags_with_enough_prompts(subset, spec.per_tag_min_prompts):
            tagged = [b for b in subset if tag in b.tags]
            boards.append(_board(judge, tag, tagged, models, spec))
    return boards


def _tags_with_enough_prompts(battles: Sequence[Battle], min_prompts: int) -> list[str]:
    prompts_per_tag: dict[str, set[str]] = {}
    for battle in battles:
        for tag in battle.tags:
            prompts_per_tag.setdefault(tag, set()).add(battle.prompt_id)
    return sorted(t for t, ids in prompts_per_tag.items() if len(ids) >= max(1, min_prompts))


def _board(judge: str, tag: str | None, battles: Sequence[Battle], models: Sequence[str],
           spec: BoardSpec) -> dict[str, Any]:
    from autojudge.ratings import rate_battles

    rows = rate_battles(
        np.array([b.model_a for b in battles], dtype=object),
        np.array([b.model_b for b in battles], dtype=object),
        np.array([b.winner for b in battles], dtype=object),
        np.array([b.prompt_id for b in battles], dtype=object),
        config=spec.rating_config, models=list(models))
    for row in rows:
        row["provisional"] = row["battles"] < spec.min_battles
    return {"judge": judge, "tag": tag, "method": "bt", "n_battles": len(battles),
            "n_prompts": len({b.prompt_id for b in battles}), "models": rows}


def model_stats(generations: Sequence[Generation], models: Sequence[str]) -> list[dict[str, Any]]:
    """Per model: images, failures (by kind), latency percentiles and cost."""
    out = []
    for model in models:
        gens = [g for g in generations if g.model == model]
        ok = [g for g in gens if g.ok]
        latencies = np.array([g.latency_s for g in ok], dtype=float)
        cost = float(sum(g.cost_usd for g in gens))
        failures = Counter(g.failure.kind for g in gens if g.failure is not None)
        out.append({
            "model": model,
            "images": len(ok),
            "failed": len(gens) - len(ok),
            "failure_rate": (len(gens) - len(ok)) / len(gens) if gens else 0.0,
            "failures": dict(sorted(failures.items())),
            "latency_p50_s": _percentile(latencies, 50),
            "latency_p95_s": _percentile(latencies, 95),
            "cost_usd": round(cost, 6),
            "cost_per_image_usd": round(cost / len(ok), 6) if ok else None,
            **_meta_stats(gens),
        })
    return out


def _meta_stats(gens: Sequence[Generation]) -> dict[str, Any]:
    """Percentiles of queue wait / inference time and the NSFW count, for generators
    whose GenOutput.meta reports them (hosted APIs such as fal); None where no image of
    the model reports them (same keys for every model, so tables stay rectangular)."""
    stats: dict[str, Any] = {}
    for key, label in (("queue_wait_s", "queue_wait"), ("inference_time_s", "inference")):
        values = np.array([float(g.meta[key]) for g in gens
                           if isinstance(g.meta.get(key), (int, float))], dtype=float)
        stats[f"{label}_p50_s"] = _percentile(values, 50)
        stats[f"{label}_p95_s"] = _percentile(values, 95)
    known = any("nsfw" in g.meta for g in gens)
    stats["nsfw"] = sum(1 for g in gens if g.meta.get("nsfw")) if known else None
    return stats


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 6) if values.size else None
