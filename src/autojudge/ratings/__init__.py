"""Ratings from battle logs: Bradley-Terry (headline), online Elo, clustered bootstrap CIs.

Pure numpy/scipy, no I/O, explicit seeds. Scale as Chatbot Arena: base 10, scale 400,
mean 1000 (or an anchor model at 1000); ties count half a win.

Example:
    >>> from autojudge.ratings import RatingConfig, rate_battles
    >>> rows = rate_battles(["a", "b"], ["b", "c"], ["model_a", "model_a"],
    ...                     config=RatingConfig(bootstrap_rounds=0))
    >>> [r["model"] for r in rows]
    ['a', 'b', 'c']
"""
from autojudge.ratings.boards import (BOARD_KEYS, RatingConfig, board_structure, model_stats,
                                      rate_battles, rate_encoded)
from autojudge.ratings.intervals import ci_rank
from autojudge.ratings.bootstrap import BootstrapResult, bootstrap_bt, percentile_interval
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, aggregate_matchups, encode_battles,
                                             fit_bt, fit_strengths, strengths_to_ratings,
                                             winner_to_score)
from autojudge.ratings.elo import online_elo

__all__ = [
    "BOARD_KEYS", "DEFAULT_PRIOR", "BootstrapResult", "RatingConfig", "aggregate_matchups",
    "board_structure",
    "bootstrap_bt", "ci_rank", "encode_battles", "fit_bt", "fit_strengths", "model_stats",
    "online_elo", "percentile_interval", "rate_battles", "rate_encoded",
    "strengths_to_ratings",
    "winner_to_score",
]
