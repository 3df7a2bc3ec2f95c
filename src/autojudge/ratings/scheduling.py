"""Adaptive battle scheduling: judge next where it shrinks rating uncertainty most.

Pure logic (numpy, explicit seed, no I/O). The pool is every (request, model pair) the
all-pairs schedule would judge; a request is one (prompt, seed). Each step:

1. `assess`: fit Bradley-Terry on the battles so far and bootstrap it over prompts
   (`bootstrap_rounds`, few: it runs inside the loop) for every model's CI width.
2. Stop when every CI is at most `target_ci_width` (and no model is separated, i.e.
   has never won or never lost, whose CI the prior would make falsely narrow), or the
   battle budget (`max_battles`) or cost budget (`max_cost_usd`) is spent, or the pool is
   exhausted. The reason is recorded.
3. `next_batch`: pick `batch` pairs greedily, aimed at the stopping rule (minimax: the
   widest CI decides when to stop). With the fitted strengths, the Fisher information of
   the battles so far is H = sum_ij n_ij p_ij (1 - p_ij) x_ij x_ij' + prior I
   (x_ij = e_i - e_j), and one more battle of (i, j) lowers the (mean-centred) model
   variance of model k by w (C x)_k^2 / (1 + w x' H^-1 x) with w = p (1 - p), C the
   centred covariance. Each model's predicted CI variance is f_k (C H^-1 C)_kk, where
   f_k = (bootstrap width / model width)^2 carries what the model misses (prompt
   effects, ties), shrunk to the median ratio because a few-round bootstrap is noisy.
   The gain of a pair sums the reductions weighted by f_k (var_k / max var)^focus, i.e.
   greedy descent on sum_k var_k^(focus + 1), a smooth maximum: close pairs (large
   p(1-p)) come first, and the models whose predicted CI is widest (in an even pool the
   extremes, which have neighbours on one side only) get the battles. After each pick
   H^-1 and the predicted variances are updated (Sherman-Morrison), so one batch spreads
   over pairs. Before any battle (nothing to aim at) focus is 0. The request for a
   chosen pair is the one whose prompt has seen the fewest battles of the two models
   (fresh prompts carry independent information under prompt effects), ties broken at
   random.

Example:
    >>> sched = AdaptiveScheduler(n_models=3, n_prompts=4, seeds=1,
    ...                           config=ScheduleConfig(batch=2, bootstrap_rounds=20))
    >>> picks, status = sched.step(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0, int))
    >>> len(picks), status.reason is None
    (2, True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy.special import expit

from autojudge.experiment.schema import BattlesConfig, RatingsConfig, Schedule
from autojudge.experiment.rules import check_rules
from autojudge.errors import AutojudgeError
from autojudge.ratings.bootstrap import bootstrap_strengths, percentile_interval
from autojudge.ratings.bradley_terry import (DEFAULT_PRIOR, ELO_PER_NAT, Battles,
                                             aggregate_matchups, fit_strengths)
from autojudge.ratings.simulate import all_pairs
from autojudge.ratings.structure import battle_graph

STOP_REASONS = ("target_ci_width", "max_battles", "max_cost_usd", "exhausted")
_TO_ELO = ELO_PER_NAT
_MAX_GROUPS = 5000  # up to this many groups of k are all scored; beyond, grown greedily
_Z95 = 1.959964  # the width scale only: the median ratio absorbs any other level


_BATTLES = BattlesConfig()  # the run settings' defaults and rules: their one home


@dataclass(frozen=True)
class ScheduleConfig:
    """Adaptive scheduling settings (`battles.*` in the run config, whose defaults and
    rules (`config.BattlesConfig`) these are; `stages.adaptive` builds one from them).

    Attributes:
        target_ci_width: stop when every model's CI (at `confidence`) is at most this wide
            (Elo points, high - low).
        max_battles: stop after this many scheduled battles (None: no limit).
        max_cost_usd: stop when scheduled battles x `cost_per_battle_usd` reaches this.
        cost_per_battle_usd: what one judged battle costs.
        batch: battles scheduled between refits.
        bootstrap_rounds: bootstrap rounds of each in-loop refit (few: it runs often).
        confidence: CI level.
        prior: BT prior precision.
        seed: seed of the bootstrap and of tie-breaking.
        min_prompts: the target counts as reached only with battles on at least this many
            prompts (a bootstrap over very few prompts has no spread to trust).
        focus: how hard picks aim at the models with the widest predicted CI (the
            power q of (var_k / max var)^q in the pick weights; 0: sum of variances).
    """

    target_ci_width: float = _BATTLES.target_ci_width
    max_battles: int | None = _BATTLES.max_battles
    max_cost_usd: float | None = _BATTLES.max_cost_usd
    cost_per_battle_usd: float = 0.0  # battles.cost_per_battle_usd null: none reported
    batch: int = _BATTLES.batch
    bootstrap_rounds: int = _BATTLES.bootstrap_rounds
    confidence: float = RatingsConfig.confidence
    prior: float = DEFAULT_PRIOR
    seed: int = 0
    min_prompts: int = 10
    focus: float = 4.0

    def validate(self) -> None:
        """The rules declared on the `battles` and `ratings` settings (pre-flight checks
        the same ones, so a run never gets here with a value they refuse)."""
        battles = BattlesConfig(
            schedule=Schedule.adaptive, target_ci_width=self.target_ci_width,
            max_battles=self.max_battles, max_cost_usd=self.max_cost_usd,
            cost_per_battle_usd=self.cost_per_battle_usd, batch=self.batch,
            bootstrap_rounds=self.bootstrap_rounds)
        ratings = RatingsConfig(confidence=self.confidence, prior=self.prior)
        problems = [*check_rules(battles, BattlesConfig, "battles."),
                    *check_rules(ratings, RatingsConfig, "ratings.")]
        if self.focus < 0:
            problems.append(f"focus={self.focus!r}: must be >= 0")
        if problems:
            raise AutojudgeError(f"adaptive schedule: {problems[0]}")


@dataclass
class Status:
    """Where the schedule stands after an assessment."""

    n_battles: int
    ci_width: np.ndarray
    ratings: np.ndarray
    reason: str | None = None
    n_prompts: int = 0
    history: list = field(default_factory=list)

    @property
    def max_ci_width(self) -> float:
        return float(self.ci_width.max()) if self.ci_width.size else 0.0


class AdaptiveScheduler:
    """Chooses (request, pair) battles from the all-pairs pool, batch by batch.

    Requests are indexed prompt-major: request r is (prompt r // seeds, seed r % seeds),
    unless `request_prompt` gives each request's prompt code explicitly.
    Pair p is `all_pairs(n_models)[p]` (model codes, model_a < model_b in run order);
    `available[r, p]` False leaves a battle out of the pool (a judge that does not apply).
    """

    def __init__(self, n_models: int, n_prompts: int, seeds: int = 1,
                 config: ScheduleConfig = ScheduleConfig(),
                 available: np.ndarray | None = None,
                 request_prompt: np.ndarray | None = None):
        config.validate()
        self.config = config
        self.m = n_models
        self.n_prompts = n_prompts
        self.seeds = seeds
        self.pairs = all_pairs(n_models)
        self.req_prompt = (np.arange(n_prompts * seeds) // seeds if request_prompt is None
                           else np.asarray(request_prompt, dtype=np.int64))
        self.n_requests = len(self.req_prompt)
        # open[r, p]: battle (request r, pair p) not yet scheduled (and applicable).
        self.open = np.ones((self.n_requests, len(self.pairs)), dtype=bool) \
            if available is None else np.asarray(available, dtype=bool).copy()
        self.scheduled = 0
        self.rng = np.random.default_rng(config.seed)
        self.tiebreak = self.rng.random(self.n_requests)
        self.per_prompt = np.zeros((n_prompts, n_models))  # battles per (prompt, model)
        self.spent_usd: float | None = None  # measured spend, set by the caller if known

    # -- assessment -----------------------------------------------------------------
    def assess(self, ia: np.ndarray, ib: np.ndarray, score: np.ndarray,
               prompt: np.ndarray) -> Status:
        """Fit + bootstrap the battles so far and decide whether to stop."""
        cfg = self.config
        battles = Battles(tuple(range(self.m)), np.asarray(ia, np.int64),
                          np.asarray(ib, np.int64), np.asarray(score, np.float64))
        to_elo = ELO_PER_NAT
        mu = aggregate_matchups(battles)
        s = fit_strengths(mu[0].i, mu[0].j, mu[0].eff_i, mu[0].eff_j, self.m, cfg.prior)
        width = np.full(self.m, np.inf)
        if len(battles.ia):
            _, clusters = np.unique(np.asarray(prompt), return_inverse=True)
            boot = bootstrap_strengths(battles, clusters, rounds=cfg.bootstrap_rounds,
                                       seed=cfg.seed + self.scheduled, prior=cfg.prior,
                                       start=s, matchups=mu)
            boot = (boot - boot.mean(axis=1, keepdims=True)) * to_elo
            low, high = percentile_interval(boot, cfg.confidence)
            width = high - low
            # prior-made precision (a separated model) or no common scale (models not yet
            # linked by battles): such a width says nothing, so the CI is not done
            graph = battle_graph(battles, mu[0])
            if not graph.connected or (graph.component < 0).any():
                width[:] = np.inf
            else:
                width[[graph.separated(k) for k in range(self.m)]] = np.inf
        status = Status(len(battles.ia), width, (s - s.mean()) * to_elo + 1000.0)
        status.n_prompts = int(len(np.unique(prompt))) if len(battles.ia) else 0
        status.reason = self._stop_reason(status)
        self._last = (s, mu[0])
        return status

    def _stop_reason(self, status: Status) -> str | None:
        cfg = self.config
        if status.n_prompts >= cfg.min_prompts and \
                bool(np.all(status.ci_width <= cfg.target_ci_width)):
            return "target_ci_width"
        if cfg.max_battles is not None and self.scheduled >= cfg.max_battles:
            return "max_battles"
        if cfg.max_cost_usd is not None and self.spent() > 0 and \
                self.spent() >= cfg.max_cost_usd - 1e-12:
            return "max_cost_usd"
        if not self.open.any():
            return "exhausted"
        return None

    def spent(self) -> float:
        """Money spent so far: `spent_usd` when the caller measures it (a judge that
        reports its cost), else scheduled battles x `cost_per_battle_usd`."""
        if self.spent_usd is not None:
            return float(self.spent_usd)
        return self.scheduled * self.config.cost_per_battle_usd

    # -- selection ------------------------------------------------------------------
    def _budget_left(self) -> int:
        cfg = self.config
        left = int(self.open.sum())
        if cfg.max_battles is not None:
            left = min(left, cfg.max_battles - self.scheduled)
        if cfg.max_cost_usd is not None and cfg.cost_per_battle_usd > 0:
            left = min(left, int(math.floor(cfg.max_cost_usd / cfg.cost_per_battle_usd
                                            + 1e-9)) - self.scheduled)
        return max(0, left)

    def _predicted(self, status: Status) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(strengths, H^-1 of the battles so far, each model's factor from model to
        bootstrap CI variance, focus: 0 before any battle, nothing to aim at)."""
        s, mu = self._last
        sigma = np.linalg.inv(_information(s, mu, self.m, self.config.prior))
        infl = _inflation(status.ci_width, _centred_var(sigma))
        return s, sigma, infl, self.config.focus if len(mu.i) else 0.0

    def next_batch(self, status: Status) -> list[tuple[int, int]]:
        """Up to `batch` (request, pair) picks; marks them scheduled."""
        n = min(self.config.batch, self._budget_left())
        if n <= 0:
            return []
        s, sigma, infl, focus = self._predicted(status)
        centre = np.eye(self.m) - 1.0 / self.m
        pi, pj = self.pairs[:, 0], self.pairs[:, 1]
        cols = np.arange(len(pi))
        pp = expit(s[pi] - s[pj])
        wpair = pp * (1 - pp)
        avail = self.open.sum(axis=0).astype(np.int64)
        picks = []
        for _ in range(n):
            # Predicted CI variances; weights = gradient of sum_k var_k^(focus + 1).
            var = infl * np.diag(centre @ sigma @ centre)
            weight = infl * (var / var.max()) ** focus
            # (Sigma x) for every pair at once: columns i minus columns j.
            sx = sigma[:, pi] - sigma[:, pj]                      # M x P
            quad = sx[pi, cols] - sx[pj, cols]
            csx = centre @ sx
            gain = wpair * (weight[:, None] * csx ** 2).sum(axis=0) / (1 + wpair * quad)
            gain[avail == 0] = -np.inf
            best = int(np.argmax(gain))
            if not np.isfinite(gain[best]):
                break
            req = self._pick_request(best)
            picks.append((req, best))
            avail[best] -= 1
            x = sx[:, best]
            sigma = sigma - wpair[best] * np.outer(x, x) / (1 + wpair[best] * quad[best])
        return picks

    def _pick_request(self, pair: int) -> int:
        i, j = self.pairs[pair]
        cand = np.flatnonzero(self.open[:, pair])
        prompt = self.req_prompt[cand]
        load = self.per_prompt[prompt, i] + self.per_prompt[prompt, j]
        best = cand[np.lexsort((self.tiebreak[cand], load))[0]]
        self.open[best, pair] = False
        self.per_prompt[self.req_prompt[best], [i, j]] += 1
        self.scheduled += 1
        return int(best)

    def next_groups(self, status: Status, k: int) -> list[tuple[int, tuple[int, ...]]]:
        """Up to `batch` (request, models) groups for a judge that ranks k images per
        call (a battle is then one ranking): each group is seeded by the model whose
        predicted CI is widest and grown one model at a time by the one whose pairs with
        the group most lower sum_k var_k^(focus + 1) (the rank breaking's pairs counted
        as independent battles); with at most k models every group is all of them. The
        request is one where none of the group's pairs was judged, the least loaded; its
        pairs leave the pool. Where there are at most `_MAX_GROUPS` groups of k, every
        one is scored by the same sum and the best that fits a request is taken."""
        n = min(self.config.batch, self._budget_left())
        if n <= 0:
            return []
        s, sigma, infl, focus = self._predicted(status)
        index = np.full((self.m, self.m), -1, dtype=np.int64)
        index[self.pairs[:, 0], self.pairs[:, 1]] = np.arange(len(self.pairs))
        index[self.pairs[:, 1], self.pairs[:, 0]] = np.arange(len(self.pairs))

        def cost(sig: np.ndarray) -> float:
            var = infl * _centred_var(sig)
            return float(((var / var.max()) ** (focus + 1)).sum())

        picks: list[tuple[int, tuple[int, ...]]] = []
        size = min(k, self.m)
        every = math.comb(self.m, size) <= _MAX_GROUPS
        for _ in range(n):
            if every:  # few enough to score every group of `size`
                group, fits = self._best_group(sigma, s, infl, focus, index, size, cost)
            else:
                group, fits = self._grow_group(sigma, s, infl * _centred_var(sigma), index,
                                               cost, k)
            if group is None:
                break
            picks.append((self._take_group(group, fits, index), tuple(group)))
            for a, b in combinations(group, 2):
                sigma = _rank_one(sigma, s, a, b)
        return picks

    def _best_group(self, sigma: np.ndarray, s: np.ndarray, infl: np.ndarray, focus: float,
                    index: np.ndarray, size: int, cost: Any
                    ) -> tuple[list[int] | None, np.ndarray]:
        """Every group of `size` scored at once (H^-1 after its pairs, all groups in one
        batched inverse); the best that fits some request, else the greedy grower's
        smaller group for what is left."""
        groups = np.array(list(combinations(range(self.m), size)), dtype=np.int64)
        h = np.linalg.inv(sigma)
        add = np.zeros((len(groups), self.m, self.m))
        rows = np.arange(len(groups))
        for a, b in combinations(range(size), 2):
            i, j = groups[:, a], groups[:, b]
            p = expit(s[i] - s[j])
            w = p * (1.0 - p)
            for x, y, sign in ((i, i, 1.0), (j, j, 1.0), (i, j, -1.0), (j, i, -1.0)):
                add[rows, x, y] += sign * w
        sig = np.linalg.inv(h[None] + add)
        row_mean = sig.mean(axis=2)
        var = infl * (np.diagonal(sig, axis1=1, axis2=2) - 2.0 * row_mean
                      + row_mean.mean(axis=1, keepdims=True))
        score = ((var / var.max()) ** (focus + 1)).sum(axis=1)
        pairs = [index[groups[:, a], groups[:, b]] for a, b in combinations(range(size), 2)]
        pairs = np.stack(pairs, axis=1)
        for g in np.argsort(score, kind="stable"):
            fits = self.open[:, pairs[g]].all(axis=1)
            if fits.any():
                return [int(x) for x in groups[g]], fits
        return self._grow_group(sigma, s, infl * _centred_var(sigma), index, cost, size)

    def _grow_group(self, sigma: np.ndarray, s: np.ndarray, var: np.ndarray,
                    index: np.ndarray, cost, k: int) -> tuple[list[int] | None, np.ndarray]:
        """The group to ask next and the requests where all of its pairs are open."""
        for seed in np.argsort(-var, kind="stable"):
            group, fits = [int(seed)], np.ones(self.n_requests, dtype=bool)
            trial_sigma = sigma
            while len(group) < min(k, self.m):
                best, best_cost, best_fits = None, np.inf, None
                for c in range(self.m):
                    if c in group:
                        continue
                    ok = fits & self.open[:, index[c, group]].all(axis=1)
                    if not ok.any():
                        continue
                    trial = trial_sigma
                    for g in group:
                        trial = _rank_one(trial, s, c, g)
                    value = cost(trial)
                    if value < best_cost:
                        best, best_cost, best_fits = c, value, ok
                if best is None:
                    break
                for g in group:
                    trial_sigma = _rank_one(trial_sigma, s, best, g)
                group.append(best)
                fits = best_fits
            if len(group) >= 2:
                return sorted(group), fits
        return None, np.zeros(0, dtype=bool)

    def _take_group(self, group: list[int], fits: np.ndarray, index: np.ndarray) -> int:
        """The least-loaded request where the group fits; its pairs leave the pool."""
        cand = np.flatnonzero(fits)
        load = self.per_prompt[self.req_prompt[cand]][:, group].sum(axis=1)
        best = int(cand[np.lexsort((self.tiebreak[cand], load))[0]])
        for a, b in combinations(group, 2):
            self.open[best, index[a, b]] = False
        self.per_prompt[self.req_prompt[best], group] += 1
        self.scheduled += 1
        return best

    def step(self, ia: np.ndarray, ib: np.ndarray, score: np.ndarray,
             prompt: np.ndarray, k: int = 2) -> tuple[list[tuple[int, Any]], Status]:
        """Assess, then (unless stopping) pick the next batch: (request, pair) picks, or
        with k > 2 (request, models) groups (`next_groups`). Empty picks = stop."""
        status = self.assess(ia, ib, score, prompt)
        if status.reason is not None:
            return [], status
        picks: list = self.next_batch(status) if k <= 2 else self.next_groups(status, k)
        if not picks:
            status.reason = self._stop_reason(status) or "exhausted"
        return picks, status


def _centred_var(sigma: np.ndarray) -> np.ndarray:
    """diag(C sigma C) with C = I - 11'/m (variances of mean-centred strengths), O(m^2)."""
    row = sigma.mean(axis=1)
    return np.diag(sigma) - 2.0 * row + row.mean()


def _rank_one(sigma: np.ndarray, s: np.ndarray, i: int, j: int) -> np.ndarray:
    """H^-1 after one more battle of (i, j) at strengths s (Sherman-Morrison)."""
    p = float(expit(s[i] - s[j]))
    w = p * (1.0 - p)
    x = sigma[:, i] - sigma[:, j]
    return sigma - w * np.outer(x, x) / (1.0 + w * (x[i] - x[j]))


def _information(s: np.ndarray, mu, m: int, prior: float) -> np.ndarray:
    """BT Fisher information sum_ij n_ij p_ij (1 - p_ij) x_ij x_ij' + prior I at `s`."""
    h = np.eye(m) * prior
    if len(mu.i):
        p = expit(s[mu.i] - s[mu.j])
        w = (mu.eff_i + mu.eff_j) * p * (1 - p)
        np.add.at(h, (mu.i, mu.i), w)
        np.add.at(h, (mu.j, mu.j), w)
        np.add.at(h, (mu.i, mu.j), -w)
        np.add.at(h, (mu.j, mu.i), -w)
    return h


def _inflation(ci_width: np.ndarray, model_var: np.ndarray) -> np.ndarray:
    """Per-model factor turning model (Fisher) variance into bootstrap CI variance.

    The ratio r_k = bootstrap width / model width carries what the model misses (prompt
    effects, ties); a 100-round bootstrap width is noisy, so r_k is shrunk to the median
    ratio g (geometric mean of r_k and g), and models without a finite width get g.
    """
    model_width = 2.0 * _Z95 * np.sqrt(np.maximum(model_var, 1e-300)) * _TO_ELO
    ratio = ci_width / model_width
    ok = np.isfinite(ratio) & (ratio > 0)
    g = float(np.median(ratio[ok])) if ok.any() else 1.0
    return np.where(ok, np.abs(ratio) * g, g * g)


def simulate_schedule(score_table: np.ndarray, n_models: int, n_prompts: int, seeds: int,
                      config: ScheduleConfig, adaptive: bool = True,
                      check_every: int | None = None) -> Status:
    """Run a schedule against pre-drawn outcomes `score_table[request, pair]`.

    adaptive=False is the all-pairs baseline: requests in order, every pair, assessed after
    every `check_every` battles (default: after every request), stopping by the same rule.
    Returns the final Status (n_battles, reason, widths).
    """
    pairs = all_pairs(n_models)
    sched = AdaptiveScheduler(n_models, n_prompts, seeds, config)
    ia: list[int] = []
    ib: list[int] = []
    sc: list[float] = []
    pr: list[int] = []

    def arrays():
        return (np.array(ia, np.int64), np.array(ib, np.int64), np.array(sc),
                np.array(pr, np.int64))

    if adaptive:
        while True:
            picks, status = sched.step(*arrays())
            if not picks:
                return status
            for req, pair in picks:
                ia.append(int(pairs[pair, 0])); ib.append(int(pairs[pair, 1]))
                sc.append(float(score_table[req, pair])); pr.append(req // seeds)
    step = check_every or len(pairs)
    order = [(r, p) for r in range(n_prompts * seeds) for p in range(len(pairs))]
    for start in range(0, len(order), step):
        for req, pair in order[start:start + step]:
            ia.append(int(pairs[pair, 0])); ib.append(int(pairs[pair, 1]))
            sc.append(float(score_table[req, pair])); pr.append(req // seeds)
            sched.open[req, pair] = False
        sched.scheduled = len(ia)
        status = sched.assess(*arrays())
        if status.reason is not None:
            return status
    return sched.assess(*arrays())
