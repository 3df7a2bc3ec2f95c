"""One leaderboard from a battle log: BT rating, honest CI, CI-aware rank, Elo, counts.

`rate_battles` is what the pipeline, `python -m autojudge.rate` and the arena call; its
per-model dict keys are the board contract (autojudge.results.BoardRow). What it will not
claim:

- no rating, CI, rank or Elo for a model without battles (`unrated_reason` says why);
- no comparison across connected components of the battle graph: each component is
  centred on its own and ranked on its own (`component`);
- no bound the data did not give: a separated model (never lost, or never won, against
  part of its component) has the open side of its CI None and `separated` True, and a
  bootstrap without spread is replaced by the likelihood interval (`ci_method`); see
  `autojudge.ratings.intervals`.

Example:
    >>> rows = rate_battles(["a", "a", "b"], ["b", "b", "a"], ["model_a", "model_a", "tie"],
    ...                     config=RatingConfig(bootstrap_rounds=50))
    >>> [r["model"] for r in rows], rows[0]["wins"], rows[0]["ties"]
    (['a', 'b'], 2, 1)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autojudge.errors import AutojudgeError
from autojudge.ratings.bootstrap import bootstrap_strengths, cluster_codes
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, Battles, aggregate_matchups,
                                             anchor_index, encode_battles, fit_strengths)
from autojudge.ratings.elo import elo_codes
from autojudge.ratings.intervals import (centre_by_component, ci_rank, elo_factor,
                                         model_intervals, pairwise_above)
from autojudge.ratings.structure import BattleGraph, battle_graph

BOARD_KEYS = ("model", "rating", "ci_low", "ci_high", "rank", "elo", "battles", "wins",
              "losses", "ties", "separated", "component", "ci_method", "unrated_reason")
# The smallest prior precision accepted: below it a separated model's strength runs to
# hundreds of nats and the Newton system is singular in floating point.
MIN_PRIOR = 1e-6


@dataclass(frozen=True)
class RatingConfig:
    """How to rate a battle log.

    Attributes:
        bootstrap_rounds: cluster-bootstrap rounds for the CI; 0 computes no CI (and
            so no rank).
        seed: seed of the bootstrap's `np.random.default_rng`.
        confidence: CI level (0.95 -> 2.5th and 97.5th percentiles).
        prior: Gaussian prior precision on natural-log BT strengths (see
            `autojudge.ratings.bradley_terry.DEFAULT_PRIOR` for why 0.1).
        anchor: model pinned to `init_rating`; None pins the mean rating instead.
        base, scale, init_rating: Elo scale (Chatbot Arena: 10, 400, 1000).
        elo_k: K factor of the online Elo shown beside BT.
    """

    bootstrap_rounds: int = 1000
    seed: int = 0
    confidence: float = 0.95
    prior: float = DEFAULT_PRIOR
    anchor: str | None = None
    base: float = 10.0
    scale: float = 400.0
    init_rating: float = 1000.0
    elo_k: float = 4.0

    def validate(self) -> None:
        """Raise AutojudgeError naming the first bad setting."""
        checks = [
            (self.bootstrap_rounds >= 0, "bootstrap_rounds must be >= 0"),
            (0.0 < self.confidence < 1.0, "confidence must be between 0 and 1"),
            (MIN_PRIOR <= self.prior <= 1e6,
             f"prior must be between {MIN_PRIOR:g} and 1e6 (default {DEFAULT_PRIOR:g})"),
            (self.base > 1 and math.isfinite(self.base), "base must be > 1"),
            (self.scale > 0 and math.isfinite(self.scale), "scale must be positive"),
            (math.isfinite(self.init_rating), "init_rating must be finite"),
            (self.elo_k >= 0 and math.isfinite(self.elo_k), "elo_k must be >= 0"),
        ]
        for ok, why in checks:
            if not ok:
                raise AutojudgeError(f"bad rating setting: {why}")


def model_stats(battles: Battles) -> dict[str, np.ndarray]:
    """Battles, wins, losses and ties (both tie kinds) per model code.

    Self-battles (model_a == model_b) are ignored here as in the fits.
    """
    m = battles.n_models
    sa = battles.score
    real = battles.ia != battles.ib

    def count(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
        return (np.bincount(battles.ia[mask_a & real], minlength=m)
                + np.bincount(battles.ib[mask_b & real], minlength=m))

    tie = sa == 0.5
    return {
        "battles": count(real, real),
        "wins": count(sa == 1.0, sa == 0.0),
        "losses": count(sa == 0.0, sa == 1.0),
        "ties": count(tie, tie),
    }


def rate_battles(model_a: Sequence[str] | np.ndarray, model_b: Sequence[str] | np.ndarray,
                 winner: Sequence[str] | np.ndarray,
                 clusters: Sequence[Any] | np.ndarray | None = None, *,
                 config: RatingConfig = RatingConfig(),
                 models: Sequence[str] | None = None,
                 weight: Sequence[float] | np.ndarray | None = None) -> list[dict]:
    """Rate a battle log: one JSON-ready dict per model.

    Args:
        model_a, model_b, winner: equal-length battle columns (Arena convention).
        clusters: cluster id per battle (prompt_id) for the bootstrap; None treats every
            battle as its own cluster; a missing id (None/NaN) is a cluster alone.
        config: rating settings.
        models: models to list even without battles (they come back unrated).
        weight: optional weight per battle (fits and bootstrap; counts stay counts).
            Self-battles carry no information and are ignored everywhere.

    Returns:
        dicts with `BOARD_KEYS`, sorted by component, then rating (best first); unrated
        models last.

    Raises:
        AutojudgeError: unknown winner values, unequal lengths, unknown or unrated
            anchor, bad config.
    """
    config.validate()
    battles = encode_battles(model_a, model_b, winner, models, weight)
    return rate_encoded(battles, cluster_codes(clusters, len(battles.ia)), config)


def rate_encoded(battles: Battles, codes: np.ndarray | None, config: RatingConfig
                 ) -> list[dict]:
    """`rate_battles` on already encoded battles and dense cluster codes (or None)."""
    config.validate()
    if battles.n_models == 0:
        return []
    matchups = aggregate_matchups(battles)
    mu = matchups[0]
    graph = battle_graph(battles, mu)
    anchor = _rated_anchor(battles, graph, config.anchor)
    to_elo = elo_factor(config.base, config.scale)
    strengths = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models, config.prior)
    centre = dict(graph=graph, to_elo=to_elo, init_rating=config.init_rating, anchor=anchor)
    rating = centre_by_component(strengths, **centre)
    boot = None
    if config.bootstrap_rounds > 0:
        boot = np.zeros((0, battles.n_models))
        if graph.n_components:
            s = bootstrap_strengths(battles, codes, rounds=config.bootstrap_rounds,
                                    seed=config.seed, prior=config.prior, start=strengths,
                                    matchups=matchups)
            boot = centre_by_component(s, **centre)
    low, high, method = model_intervals(battles, codes, graph, strengths, rating, boot,
                                        confidence=config.confidence, to_elo=to_elo,
                                        anchor=anchor)
    elo = _component_elo(battles, graph, config, anchor)
    rank: list[int | None] = [None] * battles.n_models
    if config.bootstrap_rounds > 0:
        above = pairwise_above(battles, codes, graph, strengths, low, high,
                               confidence=config.confidence)
        rank = ci_rank(low, high, graph.component, above)
    return _rows(battles, graph, rating, low, high, method, elo, rank)


def _rated_anchor(battles: Battles, graph: BattleGraph, anchor: str | None) -> int | None:
    index = anchor_index(battles.names, anchor)
    if index is not None and graph.component[index] < 0:
        raise AutojudgeError(f"anchor model {anchor!r} has no battles, so it cannot pin the "
                             "scale; choose a rated model as the anchor")
    return index


def _component_elo(battles: Battles, graph: BattleGraph, config: RatingConfig,
                   anchor: int | None) -> np.ndarray:
    """Online Elo; updates never cross components, so each component already averages
    `init_rating`; the anchor's component is shifted to put the anchor there."""
    elo = elo_codes(battles, k=config.elo_k, base=config.base, scale=config.scale,
                    init_rating=config.init_rating)
    if anchor is not None:
        members = graph.members(graph.component[anchor])
        elo[members] += config.init_rating - elo[anchor]
    return elo


def _rows(battles: Battles, graph: BattleGraph, rating: np.ndarray, low: list, high: list,
          method: list, elo: np.ndarray, rank: list) -> list[dict]:
    """Assemble the sorted per-model dicts with plain Python number types."""
    stats = model_stats(battles)

    def order(k: int) -> tuple:
        comp = int(graph.component[k])
        return (comp < 0, comp, -rating[k] if comp >= 0 else 0.0, battles.names[k])

    rows = []
    for k in sorted(range(battles.n_models), key=order):
        rated = graph.component[k] >= 0
        rows.append({
            "model": battles.names[k],
            "rating": float(rating[k]) if rated else None,
            "ci_low": low[k], "ci_high": high[k], "rank": rank[k],
            "elo": float(elo[k]) if rated else None,
            "battles": int(stats["battles"][k]), "wins": int(stats["wins"][k]),
            "losses": int(stats["losses"][k]), "ties": int(stats["ties"][k]),
            "separated": bool(rated and graph.separated(k)),
            "component": int(graph.component[k]) if rated else None,
            "ci_method": method[k],
            "unrated_reason": None if rated else "no battles",
        })
    return rows


def board_structure(rows: Sequence[dict]) -> dict[str, Any]:
    """Board-level keys from its rows: `connected` (all rated models linked by battles),
    `n_components`, `n_rated`, `n_unrated`."""
    comps = {r["component"] for r in rows if r.get("component") is not None}
    rated = sum(1 for r in rows if r.get("rating") is not None)
    return {"connected": len(comps) <= 1, "n_components": len(comps), "n_rated": rated,
            "n_unrated": len(rows) - rated}
