"""One leaderboard from a battle log: BT rating, bootstrap CI, CI-aware rank, Elo, counts.

`rate_battles` is what the pipeline, `python -m autojudge.rate` and the gate call; its
per-model dict keys are the board contract in DESIGN.md.

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
from autojudge.ratings.bootstrap import bootstrap_strengths, cluster_codes, percentile_interval
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, Battles, aggregate_matchups,
                                             anchor_index, encode_battles, fit_strengths,
                                             strengths_to_ratings)
from autojudge.ratings.elo import elo_codes

BOARD_KEYS = ("model", "rating", "ci_low", "ci_high", "rank", "elo", "battles", "wins",
              "losses", "ties", "separated")


@dataclass(frozen=True)
class RatingConfig:
    """How to rate a battle log.

    Attributes:
        bootstrap_rounds: cluster-bootstrap rounds for the CI; 0 gives ci = rating.
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
            (self.prior > 0 and math.isfinite(self.prior), "prior must be positive"),
            (self.base > 1 and math.isfinite(self.base), "base must be > 1"),
            (self.scale > 0 and math.isfinite(self.scale), "scale must be positive"),
            (math.isfinite(self.init_rating), "init_rating must be finite"),
            (self.elo_k >= 0 and math.isfinite(self.elo_k), "elo_k must be >= 0"),
        ]
        for ok, why in checks:
            if not ok:
                raise AutojudgeError(f"bad rating config: {why} (got {self})")


def ci_rank(ci_low: Sequence[float] | np.ndarray, ci_high: Sequence[float] | np.ndarray
            ) -> np.ndarray:
    """Chatbot Arena's CI-aware rank: 1 + number of models whose ci_low > this ci_high.

    Example:
        >>> ci_rank([10, 5, 0], [12, 11, 4]).tolist()
        [1, 1, 3]
    """
    low = np.asarray(ci_low, dtype=np.float64)
    high = np.asarray(ci_high, dtype=np.float64)
    return 1 + (low[None, :] > high[:, None]).sum(axis=1)


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
                 models: Sequence[str] | None = None) -> list[dict]:
    """Rate a battle log: one JSON-ready dict per model, best rating first.

    Args:
        model_a, model_b, winner: equal-length battle columns (Arena convention).
        clusters: cluster id per battle (prompt_id) for the bootstrap; None treats every
            battle as its own cluster; a missing id (None/NaN) is a cluster alone.
        config: rating settings.
        models: models to list even without battles (they rate at `init_rating` with a
            zero-width CI and 0 battles). Self-battles carry no information and are
            ignored everywhere (fit, Elo, counts).

    Returns:
        dicts with keys model, rating, ci_low, ci_high, rank, elo, battles, wins,
        losses, ties, separated (see `_separated`); sorted by rating (then name).

    Raises:
        AutojudgeError: unknown winner values, unequal lengths, unknown anchor, bad config.
    """
    config.validate()
    battles = encode_battles(model_a, model_b, winner, models)
    if battles.n_models == 0:
        return []
    anchor = anchor_index(battles.names, config.anchor)
    codes = cluster_codes(clusters, len(battles.ia))
    scale = dict(base=config.base, scale=config.scale, init_rating=config.init_rating,
                 anchor=anchor)
    matchups = aggregate_matchups(battles)
    mu = matchups[0]
    strengths = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models, config.prior)
    rating = strengths_to_ratings(strengths, **scale)
    low, high = rating, rating
    if config.bootstrap_rounds > 0 and len(battles.ia) > 0:
        boot = bootstrap_strengths(battles, codes, rounds=config.bootstrap_rounds,
                                   seed=config.seed, prior=config.prior, start=strengths,
                                   matchups=matchups)
        low, high = percentile_interval(strengths_to_ratings(boot, **scale),
                                        config.confidence)
    elo = elo_codes(battles, k=config.elo_k, base=config.base, scale=config.scale,
                    init_rating=config.init_rating)
    if anchor is not None:
        elo = elo - elo[anchor] + config.init_rating
    return _rows(battles, rating, low, high, elo)


def _rows(battles: Battles, rating: np.ndarray, low: np.ndarray, high: np.ndarray,
          elo: np.ndarray) -> list[dict]:
    """Assemble the sorted per-model dicts with plain Python number types."""
    rank = ci_rank(low, high)
    stats = model_stats(battles)
    order = sorted(range(battles.n_models), key=lambda k: (-rating[k], battles.names[k]))
    return [{
        "model": battles.names[k],
        "rating": float(rating[k]),
        "ci_low": float(low[k]),
        "ci_high": float(high[k]),
        "rank": int(rank[k]),
        "elo": float(elo[k]),
        "battles": int(stats["battles"][k]),
        "wins": int(stats["wins"][k]),
        "losses": int(stats["losses"][k]),
        "ties": int(stats["ties"][k]),
        "separated": bool(_separated(stats, k)),
    } for k in order]


def _separated(stats: dict[str, np.ndarray], k: int) -> bool:
    """Never won, or never lost, a decisive battle: the data only bound the rating from
    one side, so its value (and a bootstrap CI that every resample agrees on) is set by
    the prior. Reports flag such models instead of showing false precision."""
    wins, losses = stats["wins"][k], stats["losses"][k]
    return bool(wins + losses > 0 and (wins == 0 or losses == 0))
