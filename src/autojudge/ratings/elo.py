"""Online Elo in battle order, as Chatbot Arena's `compute_elo` (K=4, base 10, scale 400).

Online Elo depends on battle order and forgets early battles, so it is reported beside
the Bradley-Terry rating, never instead of it.

Example:
    >>> r = online_elo(["a"], ["b"], ["model_a"])
    >>> round(r["a"], 6), round(r["b"], 6)
    (1002.0, 998.0)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from autojudge.ratings.bradley_terry import Battles, encode_battles


def elo_codes(battles: Battles, *, k: float = 4.0, base: float = 10.0, scale: float = 400.0,
              init_rating: float = 1000.0) -> np.ndarray:
    """Online Elo ratings over encoded battles, one float per model.

    Self-battles are skipped: their two updates cancel exactly in the Arena formula.
    Weighted battles (`battles.weight`) update with K times their weight.
    """
    rating = [float(init_rating)] * battles.n_models
    real = battles.ia != battles.ib
    ia, ib, score = battles.ia[real].tolist(), battles.ib[real].tolist(), \
        battles.score[real].tolist()
    c = math.log(base) / scale  # base ** (x / scale) == exp(x * c), and exp is faster
    exp = math.exp
    # A plain-Python loop over lists: the recursion is sequential, and Python floats
    # are several times faster than numpy scalars here.
    if battles.weight is None:
        for a, b, sa in zip(ia, ib, score):
            ra, rb = rating[a], rating[b]
            delta = k * (sa - 1.0 / (1.0 + exp((rb - ra) * c)))
            rating[a] = ra + delta
            rating[b] = rb - delta
    else:
        for a, b, sa, w in zip(ia, ib, score, battles.weight[real].tolist()):
            ra, rb = rating[a], rating[b]
            delta = k * w * (sa - 1.0 / (1.0 + exp((rb - ra) * c)))
            rating[a] = ra + delta
            rating[b] = rb - delta
    return np.asarray(rating, dtype=np.float64)


def online_elo(model_a: Sequence[str] | np.ndarray, model_b: Sequence[str] | np.ndarray,
               winner: Sequence[str] | np.ndarray, *, k: float = 4.0, base: float = 10.0,
               scale: float = 400.0, init_rating: float = 1000.0,
               models: Sequence[str] | None = None) -> dict[str, float]:
    """Online Elo ratings for raw battle columns, updated in the order given.

    Each battle moves A by K * (S_A - E_A) and B by the opposite amount, with
    E_A = 1 / (1 + base ** ((R_B - R_A) / scale)) and S_A = 1, 0, or 0.5 for a tie.
    Ratings therefore always average `init_rating`.

    Args:
        model_a, model_b, winner: battle columns (Arena convention).
        k: update size.
        base, scale, init_rating: rating scale.
        models: extra models to include with no battles.

    Returns:
        {model: rating}.
    """
    battles = encode_battles(model_a, model_b, winner, models)
    r = elo_codes(battles, k=k, base=base, scale=scale, init_rating=init_rating)
    return {name: float(v) for name, v in zip(battles.names, r)}
