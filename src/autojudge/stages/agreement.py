"""Agreement stage: every pair of judges (human included) on their shared battles, plus
the rank correlation of their whole-suite boards (`leaderboard.json` key "agreement")."""
from __future__ import annotations

from typing import Any, Sequence

from autojudge.ratings.agreement import agreement_table, battle_keys
from autojudge.types import Battle


def compute_agreement(battles: Sequence[Battle], boards: Sequence[dict[str, Any]],
                      judges: Sequence[str], rating_cfg: Any,
                      rounds: int | None = None) -> list[dict[str, Any]]:
    """Rows of {judge_a, judge_b, n_shared, agreement, ci_low, ci_high,
    decisive_agreement, kappa, kendall_tau, spearman, ...}; [] with fewer than 2 judges."""
    judges = [j for j in judges if j != "all"]
    if len(judges) < 2:
        return []
    keyed = {}
    for judge in judges:
        mine = [b for b in battles if b.judge == judge]
        keyed[judge] = battle_keys([b.prompt_id for b in mine], [b.seed for b in mine],
                                   [b.model_a for b in mine], [b.model_b for b in mine],
                                   [b.winner for b in mine])
    ratings = {b["judge"]: {r["model"]: r["rating"] for r in b["models"] if r["battles"] > 0}
               for b in boards if b["tag"] is None}
    n = rating_cfg.bootstrap_rounds if rounds is None else rounds
    return agreement_table(keyed, ratings, rounds=n, seed=rating_cfg.seed,
                           confidence=rating_cfg.confidence)
