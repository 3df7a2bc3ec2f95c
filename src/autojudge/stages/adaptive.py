"""Judge stage with the adaptive schedule: schedule -> judge a batch -> refit -> repeat.

The pool is exactly the all-pairs plan (every pair of models on every applicable
request); `autojudge.ratings.scheduling.AdaptiveScheduler` picks batches from it until every
model's CI is narrower than `battles.target_ci_width`, or `battles.max_battles` /
`battles.max_cost_usd` is spent (measured from the judge when it reports its cost, as the
VLM judge does; else battles x `battles.cost_per_battle_usd`), or the pool is exhausted; why it stopped goes into
leaderboard.json (`run.schedule[judge]`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from autojudge.experiment.schema import BattlesConfig
from autojudge.ratings.bradley_terry import winner_to_score
from autojudge.ratings.scheduling import AdaptiveScheduler, ScheduleConfig
from autojudge.stages.cache import Advance
from autojudge.stages.judge import JudgeOutcome, run_judge
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
                       config: ScheduleConfig) -> tuple[JudgeOutcome, dict[str, Any]]:
    """Adaptive judging of one judge; returns its outcome and the schedule's record."""
    prompt_codes: dict[str, int] = {}
    req_prompt = np.array([prompt_codes.setdefault(p.id, len(prompt_codes))
                           for p, _ in requests], dtype=np.int64)
    n_pairs = len(models) * (len(models) - 1) // 2
    applies = np.array([bool(judge.applies(p)) for p, _ in requests], dtype=bool)
    available = np.repeat(applies[:, None], n_pairs, axis=1)
    scheduler = AdaptiveScheduler(len(models), len(prompt_codes), 1, config, available,
                                  req_prompt)
    code = {m: k for k, m in enumerate(models)}
    outcome = JudgeOutcome(judge.name)
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
                                       np.array(score), np.array(prompt, np.int64))
        if not picks:
            break
        rounds += 1
        plan = []
        for req, pair in picks:
            i, j = scheduler.pairs[pair]
            p, seed = requests[req]
            plan.append((p, seed, models[i], models[j]))
        part = run_judge(judge, models, generations, requests, store, failed_image,
                         advance, plan=plan)
        outcome.battles.extend(part.battles)
        outcome.skipped.extend(part.skipped)
        if part.battles:
            s = winner_to_score([b.winner for b in part.battles])
            for b, v in zip(part.battles, s.tolist()):
                ia.append(code[b.model_a])
                ib.append(code[b.model_b])
                score.append(v)
                prompt.append(prompt_codes[b.prompt_id])
    pool = int(available.sum())
    width = status.ci_width
    info = {"schedule": "adaptive", "stop_reason": status.reason,
            "n_scheduled": scheduler.scheduled, "n_battles": len(outcome.battles),
            "n_pool": pool, "fraction_of_all_pairs": round(scheduler.scheduled / pool, 4)
            if pool else None, "refits": rounds + 1,
            "target_ci_width": config.target_ci_width,
            "max_ci_width": None if not np.isfinite(width).all() else
            round(float(width.max()), 2),
            "max_battles": config.max_battles, "max_cost_usd": config.max_cost_usd,
            "cost_usd": round(scheduler.spent(), 6),
            "cost_measured": judge.spent_usd is not None}
    return outcome, info
