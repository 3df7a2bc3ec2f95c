"""Agreement stage: every pair of judges (human included) on their shared battles, plus
the rank correlation of their whole-suite boards (`leaderboard.json` key "agreement")."""
from __future__ import annotations

from typing import Any, Sequence

from autojudge.ratings.agreement import agreement_table, battle_keys, rank_correlation
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
    boards_by_judge = {b["judge"]: b for b in boards if b["tag"] is None}
    n = rating_cfg.bootstrap_rounds if rounds is None else rounds
    rows = agreement_table(keyed, {}, rounds=n, seed=rating_cfg.seed,
                           confidence=rating_cfg.confidence)
    for row in rows:  # rank correlation only where both boards compare the same models
        row.update(rank_correlation(*comparable_ratings(boards_by_judge.get(row["judge_a"]),
                                                        boards_by_judge.get(row["judge_b"]))))
    return rows


def comparable_ratings(a: dict[str, Any] | None, b: dict[str, Any] | None
                       ) -> tuple[dict[str, float], dict[str, float]]:
    """The two boards' ratings over the largest set of models that both rate AND that
    sit in one connected component on each board: ratings of models never linked by
    battles are not comparable, so they cannot enter a rank correlation."""
    if a is None or b is None:
        return {}, {}
    rows_a = {r["model"]: r for r in a["models"] if r.get("rating") is not None}
    rows_b = {r["model"]: r for r in b["models"] if r.get("rating") is not None}
    groups: dict[tuple, list[str]] = {}
    for model in sorted(set(rows_a) & set(rows_b)):
        key = (rows_a[model].get("component"), rows_b[model].get("component"))
        groups.setdefault(key, []).append(model)
    if not groups:
        return {}, {}
    best = max(groups.values(), key=len)
    return ({m: rows_a[m]["rating"] for m in best}, {m: rows_b[m]["rating"] for m in best})
