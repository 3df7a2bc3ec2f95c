"""K-wise judging (`judge.<label>.k`, k > 2): one call ranks k images of one prompt.

The runner's K-wise counterpart of pairwise judging, for a plugin with a `rank(groups)`
method (`autojudge.sdk`: the VLM judge has one). What lives here, as for pairs:

- **groups**: all models of a (prompt, seed) when there are at most k; otherwise a
  permutation drawn from a hash of (prompt, seed) is cut into groups of k (the last one
  topped up from the start), so every model is judged on every prompt and every pair of
  models meets on some prompts;
- **slot order**: which image sits in which slot is drawn from a hash of (prompt, seed,
  the group's models), never config order, and a re-run draws the same;
- **reordering** (the K-wise swap-debiasing, on with `swap`): a second call shows the
  same images in reverse slot order, so every pair's left-to-right order flips (a
  rotation would keep the pairs within each half in order, and a judge that favours
  early slots would decide them by position); a pair the two calls order differently
  is a tie (autojudge.ratings.rankings.consensus_pairs); the share of each
  slot among the picked-best images is the judge's position bias per slot;
- **caching** by (judge fingerprint, prompt, the images in slot order) in the store's
  `rankings` table; **failure isolation** through `stages.isolation.guarded_rank`; cost
  metered from `raw["cost_usd"]` like verdicts.

The battle log gets one K-wise row per group (`autojudge.types.RankingBattle`: models in
the first call's slot order, each call's ranks in that order); boards use the pairs the
row orders.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autojudge.stages.cache import Advance, no_progress
from autojudge.stages.isolation import RANK, conform
from autojudge.store.index import now
from autojudge.types import (Failure, Generation, JudgeItem, Prompt, RankingBattle, RankItem,
                             RankVerdict, stable_hash)

_UNANSWERED = Failure("judge_bad_output", "the judge's compute returned no answer for "
                      "this group", retryable=True)


def _rng(*parts: Any) -> np.random.Generator:
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def plan_groups(models: Sequence[str], k: int, prompt_id: str, seed: int
                ) -> list[tuple[str, ...]]:
    """The groups of at most k models judged on one (prompt, seed), in name order each."""
    models = sorted(models)
    if len(models) <= k:
        return [tuple(models)]
    order = [models[i] for i in _rng("groups", prompt_id, seed).permutation(len(models))]
    groups = []
    for start in range(0, len(order), k):
        chunk = order[start:start + k]
        chunk += [m for m in order if m not in chunk][:k - len(chunk)]
        groups.append(tuple(sorted(chunk)))
    return groups


def slot_orders(prompt_id: str, seed: int, models: Sequence[str]
                ) -> tuple[list[int], list[int]]:
    """(first call's slot order, second call's): indices into `models`; the second is
    the first reversed, so every pair is shown the other way round."""
    k = len(models)
    first = [int(i) for i in _rng("slots", prompt_id, seed, *sorted(models)).permutation(k)]
    return first, first[::-1]


@dataclass(frozen=True)
class GroupResult:
    """Both calls' ranks, in the first call's slot order, or a failure."""

    ranks: tuple[tuple[int | None, ...], ...] | None
    rationale: str
    raw: dict[str, Any]
    failure: Failure | None
    tstamp: float


class KwiseRunner:
    """Drives `runner.plugin.rank` for one judge (a `stages.runner.JudgeRunner`)."""

    def __init__(self, runner: Any, k: int):
        self.runner, self.k = runner, k
        self.reorder = bool(runner.settings.swap)
        hook = getattr(runner.plugin, "rank_fingerprint", None)  # sdk.JudgeHooks
        self._rank_fp = stable_hash(dict(hook()) if callable(hook) else {})
        self.best_slots = np.zeros(k, dtype=np.int64)  # picked-best count per slot
        self.pairs_seen = self.pairs_flipped = 0

    def key(self, prompt: Prompt, items: Sequence[JudgeItem]) -> str:
        # "reversed": the second call's slot order (a rotation before; not reused)
        reorder = "reversed" if self.reorder else False
        return stable_hash([self.runner._fp, self._rank_fp, reorder, prompt.content(),
                            *(it.image_sha for it in items)])

    def rank(self, groups: Sequence[tuple[Prompt, list[JudgeItem]]]) -> list[GroupResult]:
        """One result per (prompt, items in the first call's slot order) group: from the
        store where it has it, else from the plugin."""
        store, fp = self.runner.store, self.runner._fp
        keys = [self.key(p, items) for p, items in groups]
        found = store.get_many("rankings", keys)
        out = {k: _from_row(found[k]) for k in found}
        self.runner.counts.cached += len(set(keys) & set(found))
        todo = list({k: i for i, k in enumerate(keys) if k not in out}.values())
        size = self.runner.batch_size
        batches = [todo[s:s + size] for s in range(0, len(todo), size)]
        calls = [self._calls([groups[i] for i in b]) for b in batches]
        for number, answers in self.runner.compute.map_rank(calls):
            batch = batches[number]
            answers = conform(answers, len(calls[number]), RANK)
            stamp = now()
            results = self._combine([groups[i] for i in batch], answers, stamp)
            store.put_many("rankings", [_row(keys[i], fp, groups[i][1], r)
                                        for i, r in zip(batch, results)])
            for i, result in zip(batch, results):
                out[keys[i]] = result
                self.runner._count(result.failure)
                self.runner._meter(RankVerdict(None, raw=result.raw))
        for i in todo:
            if keys[i] not in out:
                out[keys[i]] = GroupResult(None, "", {}, _UNANSWERED, now())
                self.runner._count(_UNANSWERED)
        results = [out[k] for k in keys]
        for result in results:
            self._tally(result)
        return results

    def _calls(self, groups: Sequence[tuple]) -> list[RankItem]:
        """Every group's first call, then (reordering) every group's reversed call: one
        plugin call holds both, so a plugin may send them all concurrently."""
        first = [RankItem(p, tuple(items)) for p, items in groups]
        if not self.reorder:
            return first
        return first + [RankItem(p, tuple(items[::-1])) for p, items in groups]

    def _combine(self, groups: Sequence[tuple], answers: list[RankVerdict], stamp: float
                 ) -> list[GroupResult]:
        n = len(groups)
        results = []
        for g, (_, items) in enumerate(groups):
            one = answers[g]
            two = answers[n + g] if self.reorder else None
            failure = one.failure or (two.failure if two is not None else None)
            cost = sum(float(a.raw.get("cost_usd") or 0.0) for a in (one, two)
                       if a is not None and isinstance(a.raw, dict))
            raw: dict[str, Any] = {"calls": [dict(one.raw)] + ([dict(two.raw)] if two else [])}
            if cost:
                raw["cost_usd"] = round(cost, 8)
            if failure is not None:
                results.append(GroupResult(None, "", raw, failure, stamp))
                continue
            ranks = [tuple(one.ranks)]
            if two is not None:  # back from the reversed slots to the first call's order
                ranks.append(tuple(two.ranks[::-1]))
            results.append(GroupResult(tuple(ranks), one.rationale, raw, None, stamp))
        return results

    def _tally(self, result: GroupResult) -> None:
        """Slot of the picked best per call, and the pairs the reordering flipped."""
        if result.ranks is None:
            return
        k = len(result.ranks[0])
        for call, ranks in enumerate(result.ranks):
            best = [i for i, r in enumerate(ranks) if r == 1]
            if len(best) == 1 and k == self.k:
                slot = best[0] if call == 0 else k - 1 - best[0]
                self.best_slots[slot] += 1
        if len(result.ranks) == 2:
            a, b = result.ranks
            for i in range(k):
                for j in range(i + 1, k):
                    if a[i] is None and a[j] is None or b[i] is None and b[j] is None:
                        continue
                    self.pairs_seen += 1
                    self.pairs_flipped += _order(a[i], a[j]) != _order(b[i], b[j])

    def summary(self) -> dict[str, Any]:
        """The judge's position bias per slot and how often the reordering flipped a
        pair, over every group of the run (cached ones too)."""
        calls = int(self.best_slots.sum())
        out: dict[str, Any] = {"k": self.k, "ranking_calls_with_one_best": calls}
        if calls:
            out["best_share_by_slot"] = [round(float(c) / calls, 4) for c in self.best_slots]
            out["best_share_expected"] = round(1.0 / self.k, 4)
        if self.pairs_seen:
            out["reorder_flip_rate"] = round(self.pairs_flipped / self.pairs_seen, 4)
        return out


def _order(x: int | None, y: int | None) -> int:
    x = float("inf") if x is None else x
    y = float("inf") if y is None else y
    return (x < y) - (x > y)


def _row(key: str, fp: str, items: Sequence[JudgeItem], r: GroupResult) -> dict[str, Any]:
    from autojudge.store.index import failure_columns

    return {"key": key, "fingerprint": fp, "images": json.dumps([it.image_sha for it in items]),
            "ranks": None if r.ranks is None else json.dumps([list(x) for x in r.ranks]),
            "rationale": r.rationale, "raw": json.dumps(r.raw, default=str),
            **failure_columns(r.failure), "created": r.tstamp}


def _from_row(row: Any) -> GroupResult:
    v = row.values
    ranks = None if v["ranks"] is None else tuple(tuple(x) for x in json.loads(v["ranks"]))
    return GroupResult(ranks, v["rationale"], json.loads(v["raw"]), row.failure, v["created"])


def run_kwise_judge(judge: Any, k: int, models: Sequence[str],
                    generations: Sequence[Generation], requests: Sequence[tuple[Prompt, int]],
                    store: Any, advance: Advance = no_progress,
                    plan: Sequence[tuple[Prompt, int, Sequence[str]]] | None = None,
                    ranker: KwiseRunner | None = None) -> Any:
    """K-wise battles of `judge` (a JudgeRunner whose plugin ranks): on every applicable
    (prompt, seed), or only the (prompt, seed, models) groups of `plan` (the adaptive
    schedule's, whose rounds share one `ranker` so the slot bias counts them all); a
    `stages.judge.JudgeOutcome` of RankingBattle rows."""
    from autojudge.stages.judge import JudgeOutcome, _item

    kwise = ranker or KwiseRunner(judge, k)
    by_request: dict[tuple[str, int], dict[str, Generation]] = {}
    for g in generations:
        by_request.setdefault((g.prompt.id, g.seed), {})[g.model] = g
    outcome = JudgeOutcome(judge.name)
    units = [(p, seed, models) for p, seed in requests if judge.applies(p)] \
        if plan is None else plan
    groups, contexts, damaged = [], [], {}
    for prompt, seed, members in units:
        gens = by_request[(prompt.id, seed)]
        ok = _usable(judge.name, store, prompt, seed, members, gens, damaged, outcome)
        split = plan_groups(ok, k, prompt.id, seed) if plan is None else [tuple(sorted(ok))]
        for group in split if len(ok) >= 2 else []:
            first, _ = slot_orders(prompt.id, seed, group)
            shown = [group[i] for i in first]
            groups.append((prompt, [_item(store, gens[m]) for m in shown]))
            contexts.append((prompt, seed, tuple(shown)))
    per_call = max(1, int(judge.batch_size))
    for start in range(0, len(groups), per_call):
        before = judge.counts.computed
        results = kwise.rank(groups[start:start + per_call])
        for context, result in zip(contexts[start:start + per_call], results):
            _record(judge.name, context, result, outcome)
        done = len(results)
        advance(done, from_store=done if judge.counts.computed == before else 0)
    judge.rank_summary = kwise.summary()
    return outcome


def _usable(name: str, store: Any, prompt: Prompt, seed: int, members: Sequence[str],
            gens: dict[str, Generation], damaged: dict, outcome: Any) -> list[str]:
    """The members whose image can be judged; each other one's pairs with the members
    are skipped rows with its failure."""
    from autojudge.stages.judge import _check_image, _skip_row

    ok = [m for m in members if gens[m].ok and _check_image(store, gens[m], damaged) is None]
    for m in members:
        if m not in ok:
            failure = gens[m].failure or damaged.get(gens[m].image_sha) or \
                Failure("missing_image", "no image")
            for other in (x for x in members if x != m):
                outcome.skipped.append(_skip_row(name, prompt, seed, m, other, failure))
    return ok


def _record(name: str, context: tuple, result: GroupResult, outcome: Any) -> None:
    """A group's ranking row, or its pairs as skipped rows with the failure."""
    from autojudge.stages.judge import _skip_row

    prompt, seed, shown = context
    if result.failure is not None or result.ranks is None:
        failure = result.failure or Failure("judge_error", "no ranking")
        for i, a in enumerate(shown):
            for b in shown[i + 1:]:
                outcome.skipped.append(_skip_row(name, prompt, seed, a, b, failure))
        return
    outcome.battles.append(RankingBattle(shown, result.ranks, name, prompt.id, seed,
                                         prompt.tags, result.rationale, result.tstamp))


def count_groups(models: Sequence[str], k: int, requests: Sequence[tuple[Prompt, int]],
                 applies: Any) -> int:
    """How many rankings a K-wise judge asks for (for the progress bar)."""
    per_request = 1 if len(models) <= k else -(-len(models) // k)
    return per_request * sum(1 for prompt, _ in requests if applies(prompt))
