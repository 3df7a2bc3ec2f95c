"""Rate stage: battles -> boards (per judge, per tag, overall) and per-model run stats."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from autojudge.experiment.schema import RatingsConfig, ReportConfig
from autojudge.types import Battle, Generation

HUMAN = "human"


@dataclass(frozen=True)
class BoardSpec:
    """Which boards to build and how to rate them.

    Attributes:
        rating_config: an `autojudge.ratings.RatingConfig`.
        per_tag_min_prompts: per-tag boards only for tags with this many prompts.
        min_battles: fewer battles: the model's row says "provisional": true.
        overall_weighting: how the overall board (`judge: "all"`) pools judges: "equal"
            (every judge's battles weigh the same in total, however many it made) or
            "battles" (raw pooling: a judge counts as much as the battles it made).
        overall_includes_human: pool human votes into the overall board too (they
            always get their own board).
        store: an open `Store` whose `derived` table keeps each board's ratings by
            their inputs (`cached_ratings`); None: always rated anew.
    """

    rating_config: Any
    per_tag_min_prompts: int = ReportConfig.per_tag_min_prompts
    min_battles: int = ReportConfig.min_battles
    overall_weighting: str = RatingsConfig.overall_weighting.value
    overall_includes_human: bool = RatingsConfig.overall_includes_human
    store: Any = None


@dataclass(frozen=True)
class RunFacts:
    """What the run knows beyond battles, to say why a model has no rating."""

    generations: Sequence[Generation] = ()
    skipped: Sequence[Mapping[str, Any]] = ()
    applicable: Mapping[str, int] = field(default_factory=dict)  # judge -> requests judged


def build_boards(battles: Sequence[Battle], models: Sequence[str], judges: Sequence[str],
                 spec: BoardSpec, facts: RunFacts = RunFacts()) -> list[dict[str, Any]]:
    """One board per judge (whole suite, then each tag with enough prompts), then the
    overall board `judge: "all"` (always present, so tools can rely on it), defined by
    `spec.overall_*` and described in its `definition`.

    Example:
        >>> boards = build_boards(battles, ["a", "b"], ["ocr"], BoardSpec(RatingConfig()))  # doctest: +SKIP
        >>> boards[0]["judge"], boards[0]["tag"]                                            # doctest: +SKIP
        ('ocr', None)
    """
    boards = []
    overall_judges = [j for j in judges if j != HUMAN or spec.overall_includes_human]
    groups = [(judge, [b for b in battles if b.judge == judge]) for judge in judges]
    groups.append(("all", [b for b in battles if b.judge in overall_judges]))
    for judge, subset in groups:
        for tag in (None, *_tags_with_enough_prompts(subset, spec.per_tag_min_prompts)):
            tagged = subset if tag is None else [b for b in subset if tag in b.tags]
            board = _board(judge, tag, tagged, models, spec, facts)
            if judge == "all":
                board["definition"] = _overall_definition(tagged, overall_judges, spec)
            boards.append(board)
    return boards


def overall_weights(battles: Sequence[Battle], weighting: str) -> np.ndarray | None:
    """Per-battle weights of the overall board: with "equal", judge j's battles weigh
    N / (J * n_j) each, so every judge contributes N / J in total (N battles, J judges);
    None (unweighted) for "battles" or a single judge."""
    counts = Counter(b.judge for b in battles)
    if weighting == "battles" or len(counts) <= 1:
        return None
    share = len(battles) / len(counts)
    return np.array([share / counts[b.judge] for b in battles], dtype=np.float64)


def _overall_definition(battles: Sequence[Battle], judges: Sequence[str],
                        spec: BoardSpec) -> dict[str, Any]:
    used = sorted({b.judge for b in battles})
    excluded = [j for j in (HUMAN,) if not spec.overall_includes_human]
    if spec.overall_weighting == "equal":
        text = ("Bradley-Terry on the pooled battles of the judges listed, each judge "
                "weighted equally: judge j's battles weigh N / (J n_j), so a judge counts "
                "the same however many battles it made")
    else:
        text = ("Bradley-Terry on the pooled battles of the judges listed, unweighted: a "
                "judge counts as much as the battles it made")
    if excluded:
        text += "; human votes have their own board and are not pooled here"
    return {"judges": used, "weighting": spec.overall_weighting,
            "includes_human": spec.overall_includes_human,
            "battles_per_judge": dict(sorted(Counter(b.judge for b in battles).items())),
            "text": text}


def _tags_with_enough_prompts(battles: Sequence[Battle], min_prompts: int) -> list[str]:
    prompts_per_tag: dict[str, set[str]] = {}
    for battle in battles:
        for tag in battle.tags:
            prompts_per_tag.setdefault(tag, set()).add(battle.prompt_id)
    return sorted(t for t, ids in prompts_per_tag.items() if len(ids) >= max(1, min_prompts))


def _board(judge: str, tag: str | None, battles: Sequence[Battle], models: Sequence[str],
           spec: BoardSpec, facts: RunFacts) -> dict[str, Any]:
    from autojudge.ratings import board_structure

    weight = overall_weights(battles, spec.overall_weighting) if judge == "all" else None
    columns = [[getattr(b, c) for b in battles]
               for c in ("model_a", "model_b", "winner", "prompt_id")]
    rows = cached_ratings(spec.store, columns, spec.rating_config, list(models), weight)
    for row in rows:
        row["provisional"] = row["rating"] is not None and row["battles"] < spec.min_battles
        if row["rating"] is None:
            row["unrated_reason"] = unrated_reason(row["model"], judge, facts)
    return {"judge": judge, "tag": tag, "method": "bt", "n_battles": len(battles),
            "n_prompts": len({b.prompt_id for b in battles}), **board_structure(rows),
            "models": rows}


@lru_cache(maxsize=1)
def ratings_version() -> str:
    """What a board's numbers depend on besides its battles and settings: the rating
    code and the numerical libraries it runs on."""
    from pathlib import Path

    import scipy

    import autojudge.ratings as ratings

    digest = hashlib.sha256(f"{np.__version__} {scipy.__version__}".encode())
    for path in sorted(Path(ratings.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_ratings(store: Any, columns: list[list[str]], config: Any, models: list[str],
                   weight: np.ndarray | None) -> list[dict[str, Any]]:
    """`ratings.rate_battles` rows of one board, from the store's `derived` table when
    the same battles were rated with the same settings and code before (a warm re-run
    rates nothing: the bootstrap is seeded, so the rows are the same), else rated and
    kept there. A store that cannot be read or written only costs the rating."""
    from autojudge.errors import AutojudgeError
    from autojudge.ratings import rate_battles
    from autojudge.types import stable_hash

    key = stable_hash(["board-ratings", ratings_version(), columns, repr(config), models,
                       None if weight is None else weight.tolist()])
    try:
        found = store.get_payloads("derived", [key]).get(key) if store is not None else None
    except AutojudgeError:
        found, store = None, None
    if found is not None:
        return json.loads(found)
    rows = rate_battles(*(np.array(c, dtype=object) for c in columns), config=config,
                        models=models, weight=weight)
    text = json.dumps(rows, default=_plain)
    if store is not None:
        try:
            store.put_payloads("derived", {key: text})
        except AutojudgeError:
            pass
    return json.loads(text)  # the same types whether rated now or read back


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (json's fallback)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def unrated_reason(model: str, judge: str, facts: RunFacts) -> str:
    """Why `model` has no battles on `judge`'s board, in words a user can act on."""
    gens = [g for g in facts.generations if g.model == model]
    if gens and not any(g.ok for g in gens):
        kinds = Counter(g.failure.kind for g in gens if g.failure is not None)
        return (f"all {len(gens)} images failed ("
                + ", ".join(f"{k} x{n}" for k, n in kinds.most_common(3)) + ")")
    if judge != "all" and facts.applicable.get(judge, 1) == 0:
        return f"judge {judge} applies to no prompt of the suite"
    skipped = [r for r in facts.skipped if (judge == "all" or r.get("judge") == judge)
               and model in (r.get("model_a"), r.get("model_b"))]
    if skipped:
        kinds = Counter(str(r.get("failure_kind")) for r in skipped)
        return (f"no battles: all {len(skipped)} of its pairs were skipped ("
                + ", ".join(f"{k} x{n}" for k, n in kinds.most_common(3)) + ")")
    return "no battles"


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
