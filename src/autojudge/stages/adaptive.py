"""Judge stage with the adaptive schedule: schedule -> judge a batch -> refit -> repeat.

The pool is exactly the all-pairs plan (every pair of models on every applicable
request); `autojudge.ratings.scheduling.AdaptiveScheduler` picks batches from it until every
model's CI is narrower than `battles.target_ci_width`, or `battles.max_battles` /
`battles.max_cost_usd` is spent (measured from the judge when it reports its cost, as the
VLM judge does; else battles x `battles.cost_per_battle_usd`), or the pool is exhausted; why it stopped goes into
leaderboard.json (`run.schedule[judge]`).

A judge that ranks k > 2 images per call (`judge.<label>.k`) is scheduled in groups
(`AdaptiveScheduler.next_groups`): all its models when there are at most k, else groups
grown around the model with the widest CI; then a battle (for `max_battles`, `batch` and
`cost_per_battle_usd`) is one ranking.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from autojudge.experiment.schema import BattlesConfig
from autojudge.ratings.bradley_terry import winner_to_score
from autojudge.ratings.scheduling import AdaptiveScheduler, ScheduleConfig
from autojudge.stages.cache import Advance
from autojudge.battles.rankings import ranking_pairs
from autojudge.stages.judge import JudgeOutcome, run_judge
from autojudge.stages.kwise import KwiseRunner, run_kwise_judge
from autojudge.store.index import Store
from autojudge.types import Generation, Prompt


def schedule_config(battles_cfg: BattlesConfig, judge: Any, rating_cfg: Any) -> ScheduleConfig:
    """ScheduleConfig from the typed `battles` section. Spend is measured by the judge
    runner when the judge reports costs; `battles.cost_per_battle_usd` (null: 0, no
    limit) is the estimate for judges that report none."""
    return ScheduleConfig(
        target_ci_width=battles_cfg.target_ci_width, max_battles=battles_cfg.max_battles,
        max_cost_usd=battles_cfg.max_cost_usd,
        cost_per_battle_usd=battles_cfg.cost_per_battle_usd or 0.0, batch=battles_cfg.batch,
        bootstrap_rounds=battles_cfg.bootstrap_rounds,
        confidence=float(rating_cfg.confidence), prior=float(rating_cfg.prior),
        seed=int(rating_cfg.seed))


def run_judge_adaptive(judge: Any, models: Sequence[str], generations: Sequence[Generation],
                       requests: Sequence[tuple[Prompt, int]], store: Store,
                       failed_image: str, advance: Advance,
                       config: ScheduleConfig, k: int = 2) -> tuple[JudgeOutcome, dict[str, Any]]:
    """Adaptive judging of one judge; returns its outcome and the schedule's record.
    With k > 2 (a judge that ranks k images per call) the scheduler picks groups and a
    battle is one ranking; the rankings' pairs (`battles.rankings.ranking_pairs`) feed
    the refits."""
    prompt_codes: dict[str, int] = {}
    req_prompt = np.array([prompt_codes.setdefault(p.id, len(prompt_codes))
                           for p, _ in requests], dtype=np.int64)
    n_pairs = len(models) * (len(models) - 1) // 2
    applies = np.array([bool(judge.applies(p)) for p, _ in requests], dtype=bool)
    available = np.repeat(applies[:, None], n_pairs, axis=1)
    scheduler = AdaptiveScheduler(len(models), len(prompt_codes), 1, config, available,
                                  req_prompt)
    code = {m: i for i, m in enumerate(models)}
    outcome = JudgeOutcome(judge.name)
    ranker = KwiseRunner(judge, k) if k > 2 else None
    ia: list[int] = []
    ib: list[int] = []
    score: list[float] = []
    prompt: list[int] = []
    rounds = 0
    start_cost = judge.spent_usd or 0.0
    while True:
        if judge.spent_usd is not None:  # the judge reports what it spent: use it
            scheduler.spent_usd = judge.spent_usd - start_cost
        picks, status = scheduler.step(np.array(ia, np.int64), np.array(ib, np.int64),
                                       np.array(score), np.array(prompt, np.int64), k=k)
        if not picks:
            break
        rounds += 1
        if ranker is not None:
            plan = [(*requests[req], [models[i] for i in group]) for req, group in picks]
            part = run_kwise_judge(judge, k, models, generations, requests, store, advance,
                                   plan=plan, ranker=ranker)
            pairs = [(a, b, w, row.prompt_id) for row in part.battles
                     for a, b, w in ranking_pairs(list(row.models), [list(r) for r in row.ranks])]
        else:
            plan = [(*requests[req], *(models[i] for i in scheduler.pairs[pair]))
                    for req, pair in picks]
            part = run_judge(judge, models, generations, requests, store, failed_image,
                             advance, plan=plan)
            pairs = [(b.model_a, b.model_b, b.winner, b.prompt_id) for b in part.battles]
        outcome.battles.extend(part.battles)
        outcome.skipped.extend(part.skipped)
        if pairs:
            for (a, b, _, pid), v in zip(pairs, winner_to_score([w for *_, w, _ in pairs])):
                ia.append(code[a])
                ib.append(code[b])
                score.append(float(v))
                prompt.append(prompt_codes[pid])
    return outcome, _record(scheduler, status, config, judge, outcome, available, rounds, k)


def _record(scheduler: AdaptiveScheduler, status: Any, config: ScheduleConfig, judge: Any,
            outcome: JudgeOutcome, available: np.ndarray, rounds: int, k: int
            ) -> dict[str, Any]:
    """What the schedule did and why it stopped (leaderboard.json's `run.schedule`)."""
    pool = int(available.sum())
    judged_pairs = pool - int(scheduler.open.sum())
    width = status.ci_width
    info = {"schedule": "adaptive", "stop_reason": status.reason,
            "n_scheduled": scheduler.scheduled, "n_battles": len(outcome.battles),
            "n_pool": pool, "fraction_of_all_pairs": round(judged_pairs / pool, 4)
            if pool else None, "refits": rounds + 1,
            "target_ci_width": config.target_ci_width,
            "max_ci_width": None if not np.isfinite(width).all() else
            round(float(width.max()), 2),
            "max_battles": config.max_battles, "max_cost_usd": config.max_cost_usd,
            "cost_usd": round(scheduler.spent(), 6),
            "cost_measured": judge.spent_usd is not None}
    if k > 2:  # a battle is one ranking of up to k models
        info["k"] = k
    return info
