"""The judge runner: the one place a judge plugin is driven.

Plugins stay small (`judges.base`: a pointwise judge maps images to scores, a pairwise
judge maps pairs to verdicts, exactly as given). Everything around them lives here, once,
for every plugin, built-in or third-party:

- **caching**: each score is keyed by (judge fingerprint, image content, prompt), each
  verdict by (judge fingerprint, prompt, image A, image B); the store is asked first,
  fresh results are committed batch by batch; retryable failures are tried again;
- **pair orientation**: which model's image sits in slot A is drawn per (prompt, seed,
  pair of models) from a hash, so no model sits in slot A because of config order, and a
  re-run draws the same;
- **swap-debiasing** (pairwise, on by default): both orders are asked in one call to the
  plugin; a verdict that does not survive the swap is a tie, and the run reports the
  judge's position-bias rate (`judges.swap_debias`); a swap-debiased verdict cached for
  (B, A) answers (A, B) too;
- **pointwise -> pairwise**: the higher score wins, within `tie_margin` it is a tie, two
  images at the bottom of the score range are "tie (bothbad)";
- **cost metering**: fresh verdicts and scores that carry `raw["cost_usd"]` are summed
  (`spent_usd`), so budgets use what was spent, not an estimate;
- **run stats and per-image rows**: counts of cached/computed/failed work, the
  position-bias summary, the plugin's own `run_stats()` hook if it has one, and one row
  per scored image;
- **failure isolation**: the plugin is only ever called through `stages.isolation`
  (by the compute, wherever it runs), and what comes back is checked again here: a
  raise (`judge_error`), a wrong count or type (`judge_bad_output`) or a call that hangs
  past `RunnerSettings.timeout_s` (`judge_timeout`) fails only the items it touched,
  retried one by one where that can tell them apart; the run goes on, the failed
  battles land in skipped.jsonl and `failure_note()` counts them for the run's notes.

Optional plugin hooks (declared in `judges.base.JudgeHooks`): `attach_store(store)` and
`run_stats()`. Nothing else reaches into a plugin.

Where the plugin's `score` / `compare` run is pluggable (`compute`): by default here,
batch after batch (`executors.local.LocalCompute`); with `executor=ray`, in an actor
pool (`executors.ray`). The runner stays on the driver either way, so caching,
orientation, swap and cost are the same, and every result is committed here.

Example:
    >>> runner = JudgeRunner("ocr", plugin, store, RunnerSettings(tie_margin=0.02))  # doctest: +SKIP
    >>> a, b = runner.orient("sign-1", 0, gen_x, gen_y)                               # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from autojudge import sdk
from autojudge.executors.local import LocalCompute
from autojudge.judges.swap_debias import combine, summarize_verdicts, swap_pair, unswap_winner
from autojudge.stages.cache import (Counts, TimedVerdict, fingerprint_hash, score_from_row,
                                    score_key, score_row, verdict_from_row, verdict_key,
                                    verdict_row)
from autojudge.stages.isolation import COMPARE, SCORE, conform
from autojudge.store.index import Store, now
from autojudge.types import Failure, JudgeItem, PairItem, Prompt, Score, Verdict

RUNNER_KEYS = ("tie_margin", "swap", "call_timeout_s", "k")  # judge config keys that belong to the runner


@dataclass(frozen=True)
class RunnerSettings:
    """How the runner drives one judge.

    Attributes:
        tie_margin: pointwise judges: scores this close are a tie (>= 0).
        swap: pairwise judges: ask both orders and keep only what survives the swap.
        orient: draw the A/B order per (prompt, seed, pair); False keeps the order given.
        timeout_s: seconds one plugin call may take before its items fail as
            "judge_timeout" (retried one by one); None waits as long as it takes. Enforced
            by the runner's own compute and `executors.local`; a Ray worker does not
            enforce it (an abandoned call there would hold the worker).
        k: images per call; above 2 a ranking judge ranks k images of a prompt at once
            (`stages.kwise`), and `swap` asks a second call in another slot order.
    """

    tie_margin: float = 0.0
    swap: bool = True
    orient: bool = True
    timeout_s: float | None = None
    k: int = 2


class JudgeRunner:
    """Drives one judge plugin: see the module docstring for what it owns."""

    def __init__(self, label: str, plugin: Any, store: Store,
                 settings: RunnerSettings = RunnerSettings(), compute: Any = None):
        if settings.tie_margin < 0:
            raise ValueError("tie_margin must be >= 0")
        if settings.timeout_s is not None and not settings.timeout_s > 0:
            raise ValueError("timeout_s must be > 0 (or None: no timeout)")
        self.name = label
        self.plugin = plugin
        self.store = store
        self.settings = settings
        self.pointwise = sdk.is_pointwise(plugin)
        self.batch_size = max(1, int(plugin.batch_size))
        self.counts = Counts()
        #: runs the plugin's batches (`executors.local.LocalCompute` protocol), handed
        #: over by the executor when the runner is built
        self.compute = compute if compute is not None else \
            LocalCompute(plugin, settings.timeout_s)
        self.failures: Counter[str] = Counter()  # failure kind -> items failed this run
        attach = getattr(plugin, "attach_store", None)
        if callable(attach):  # e.g. CLIP judges share image embeddings through the store
            attach(store)
        self._fp = fingerprint_hash(self.fingerprint())
        store.remember_fingerprint(self._fp, self.fingerprint())
        self._scores: dict[str, tuple[JudgeItem, Score, float]] = {}
        self._verdicts: dict[str, TimedVerdict] = {}
        self._spent, self._priced = 0.0, False
        #: `stages.kwise.KwiseRunner.summary()` of a K-wise run (slot bias, flips)
        self.rank_summary: dict[str, Any] | None = None

    # -- identity ------------------------------------------------------------------------

    def fingerprint(self) -> Mapping[str, Any]:
        """The cache identity: the plugin's fingerprint, plus the swap flag for pairwise
        judges (a swap-debiased verdict is a different answer than a one-order one)."""
        fp = dict(self.plugin.fingerprint())
        if self.pointwise or not self.settings.swap:
            return fp
        return {**fp, "params": {**dict(fp.get("params", {})), "swap_debiased": True}}

    @property
    def parallelism(self) -> int:
        """How many batches `compute` runs at once (callers size their calls by it)."""
        return max(1, int(getattr(self.compute, "parallelism", 1)))

    def check(self) -> None:
        self.plugin.check()

    def applies(self, prompt: Prompt) -> bool:
        return bool(self.plugin.applies(prompt))

    def orient(self, prompt_id: str, seed: int, x: Any, y: Any) -> tuple[Any, Any]:
        """(A, B) for two generations (or model labels) of one request: a coin drawn from
        a hash of (prompt, seed, the two model labels in name order), so the slot never
        follows config order and a re-run draws the same."""
        if not self.settings.orient:
            return x, y
        mx, my = (getattr(v, "model", v) for v in (x, y))
        lo, hi = sorted((str(mx), str(my)))
        digest = hashlib.sha256(f"{prompt_id}\x00{seed}\x00{lo}\x00{hi}".encode()).digest()
        first_low = digest[0] & 1 == 0
        return (x, y) if (str(mx) == lo) == first_low else (y, x)

    # -- judging -------------------------------------------------------------------------

    def verdicts(self, pairs: Sequence[PairItem]) -> list[TimedVerdict]:
        """One verdict per pair, in order (from the store where possible)."""
        if not pairs:
            return []
        return self._pointwise_verdicts(pairs) if self.pointwise else \
            self._pairwise_verdicts(pairs)

    def _pointwise_verdicts(self, pairs: Sequence[PairItem]) -> list[TimedVerdict]:
        unique: dict[str, JudgeItem] = {}
        for pair in pairs:
            for item in (pair.a, pair.b):
                unique.setdefault(score_key(self._fp, item), item)
        self._score(list(unique.values()))
        out = []
        for pair in pairs:
            _, sa, ta = self._scores[score_key(self._fp, pair.a)]
            _, sb, tb = self._scores[score_key(self._fp, pair.b)]
            out.append(TimedVerdict(self._decide(sa, sb), max(ta, tb)))
        return out

    def _score(self, items: Sequence[JudgeItem]) -> None:
        """Score images not yet seen this run: store first, then the plugin."""
        todo = [(score_key(self._fp, it), it) for it in items]
        todo = [(k, it) for k, it in dict(todo).items() if k not in self._scores]
        found = self.store.get_many("scores", [k for k, _ in todo])
        self.counts.cached += len(found)
        for key, item in todo:
            if key in found:
                score, stamp = score_from_row(found[key])
                self._scores[key] = (item, score, stamp)
        missing = [(k, it) for k, it in todo if k not in found]
        batches = [missing[start:start + self.batch_size]
                   for start in range(0, len(missing), self.batch_size)]
        for number, scores in self.compute.map_score([[it for _, it in b] for b in batches]):
            batch = batches[number]  # batches may come back in any order
            scores = conform(scores, len(batch), SCORE)
            stamp = now()
            self.store.put_many("scores", [score_row(k, self._fp, it, s, stamp)
                                           for (k, it), s in zip(batch, scores)])
            for (key, item), score in zip(batch, scores):
                self._scores[key] = (item, score, stamp)
                self._count(score.failure)
                self._meter(score)
        for key, item in missing:  # a batch the compute never answered: failed, not lost
            if key not in self._scores:
                self._scores[key] = (item, Score(None, failure=_UNANSWERED), now())
                self._count(_UNANSWERED)

    def _decide(self, a: Score, b: Score) -> Verdict:
        if a.failure or b.failure or a.value is None or b.value is None:
            failure = a.failure or b.failure or Failure("judge_error", "missing score")
            return Verdict(None, a.value, b.value, failure=failure)
        low = self.plugin.score_range[0]
        margin = self.settings.tie_margin
        diff = a.value - b.value
        if abs(diff) <= margin:
            winner = "tie (bothbad)" if a.value <= low and b.value <= low else "tie"
        else:
            winner = "model_a" if diff > 0 else "model_b"
        return Verdict(winner, a.value, b.value,
                       f"{self.name} score {a.value:.4g} vs {b.value:.4g} (tie margin {margin:g})")

    def _pairwise_verdicts(self, pairs: Sequence[PairItem]) -> list[TimedVerdict]:
        keys = [verdict_key(self._fp, p) for p in pairs]
        found = self.store.get_many("verdicts", keys)
        out: dict[str, TimedVerdict] = {k: verdict_from_row(found[k]) for k in found}
        if self.settings.swap:  # a swap-debiased (B, A) verdict answers (A, B) as well
            back = {k: verdict_key(self._fp, swap_pair(p))
                    for k, p in zip(keys, pairs) if k not in out}
            reverse = self.store.get_many("verdicts", list(back.values()))
            for k, rk in back.items():
                if rk in reverse:
                    tv = verdict_from_row(reverse[rk])
                    out[k] = TimedVerdict(flip_verdict(tv.verdict), tv.tstamp)
        missing = [i for i, k in enumerate(keys) if k not in out]
        self.counts.cached += len(set(keys) - {keys[i] for i in missing})
        todo = list({keys[i]: i for i in missing}.values())
        batches = [todo[start:start + self.batch_size]
                   for start in range(0, len(todo), self.batch_size)]
        for number, fresh in self._ask([[pairs[i] for i in b] for b in batches]):
            batch = batches[number]  # batches may come back in any order
            stamp = now()
            self.store.put_many("verdicts", [verdict_row(keys[i], self._fp, pairs[i], v, stamp)
                                             for i, v in zip(batch, fresh)])
            for i, v in zip(batch, fresh):
                out[keys[i]] = TimedVerdict(v, stamp)
                self._count(v.failure)
                self._meter(v)
        for i in todo:  # a batch the compute never answered: failed, not lost
            if keys[i] not in out:
                out[keys[i]] = TimedVerdict(Verdict(None, failure=_UNANSWERED), now())
                self._count(_UNANSWERED)
        result = [out[k] for k in keys]
        self._verdicts.update(zip(keys, result))
        return result

    def _ask(self, batches: list[list[PairItem]]) -> Iterator[tuple[int, list[Verdict]]]:
        """(batch number, the plugin's verdicts) per batch; with swap, both orders in ONE
        call (so a plugin may run all 2N requests concurrently), combined per pair."""
        if not self.settings.swap:
            for number, fresh in self.compute.map_compare(batches):
                yield number, conform(fresh, len(batches[number]), COMPARE)
            return
        calls = [[*pairs, *(swap_pair(p) for p in pairs)] for pairs in batches]
        for number, both in self.compute.map_compare(calls):
            n = len(batches[number])
            both = conform(both, 2 * n, COMPARE)
            yield number, [with_cost(combine(both[i], both[n + i])) for i in range(n)]

    def _count(self, failure: Failure | None) -> None:
        self.counts.computed += 1
        self.counts.failed += failure is not None
        if failure is not None:
            self.failures[failure.kind] += 1

    def _meter(self, v: Verdict | Score) -> None:
        cost = v.raw.get("cost_usd") if isinstance(v.raw, Mapping) else None
        if isinstance(cost, (int, float)):
            self._spent += float(cost)
            self._priced = True

    # -- what the run reports ------------------------------------------------------------

    @property
    def spent_usd(self) -> float | None:
        """USD spent on fresh verdicts this run (cached ones cost nothing); None when the
        judge reports no cost at all."""
        return round(self._spent, 8) if self._priced else None

    def failure_note(self) -> str | None:
        """One line for the run's notes when items failed this run (cached failures were
        reported by the run that made them), e.g. `judge x: 3 items failed (judge_error
        x2, judge_bad_output x1; one item = one image); their battles are in
        skipped.jsonl`; None when none."""
        total = sum(self.failures.values())
        if not total:
            return None
        kinds = ", ".join(f"{kind} x{n}" for kind, n in self.failures.most_common())
        what = "image" if self.pointwise else "pair"  # what one item is
        return (f"judge {self.name}: {total} item{'s' if total != 1 else ''} failed "
                f"({kinds}; one item = one {what}); their battles are in skipped.jsonl")

    def run_stats(self) -> dict[str, Any] | None:
        """Run-level numbers beside the judge's board: the position-bias summary of a
        swap-debiased judge (over every verdict of the run, cached ones too) and the
        plugin's `run_stats()` hook (e.g. CLIP truncations and embedding-cache counts)."""
        stats: dict[str, Any] = {}
        # A remote compute sums its workers' plugin stats; the local one asks the plugin.
        hook = getattr(self.compute, "run_stats", None)
        if callable(hook):
            stats.update(hook() or {})
        if not self.pointwise and self.settings.swap and self._verdicts:
            stats.update(summarize_verdicts([tv.verdict for tv in self._verdicts.values()]))
        if self.rank_summary:
            stats["kwise"] = dict(self.rank_summary)
        if self.spent_usd is not None:
            stats["spent_usd"] = self.spent_usd  # fresh verdicts only: the cache is free
        return stats or None

    def score_rows(self, generations: Sequence[Any]) -> list[dict[str, Any]]:
        """One row per (model, prompt, seed) image this judge scored this run (pointwise)."""
        rows = []
        for g in generations:
            if not g.ok:
                continue
            key = score_key(self._fp, JudgeItem(g.prompt, None, g.image_sha or ""))
            if key not in self._scores:
                continue
            _, score, stamp = self._scores[key]
            rows.append({"judge": self.name, "model": g.model, "prompt_id": g.prompt.id,
                         "seed": g.seed, "image_sha256": g.image_sha, "score": score.value,
                         "raw": dict(score.raw),
                         "failure_kind": score.failure.kind if score.failure else None,
                         "tstamp": stamp})
        return rows


#: the failure of an item whose batch the compute never gave back
_UNANSWERED = Failure("judge_bad_output", "the judge's compute returned no answer for "
                      "this item's batch", retryable=True)


def flip_verdict(v: Verdict) -> Verdict:
    """The same judgement seen from the other side: winner, scores and orders swapped."""
    raw = dict(v.raw)
    orders = raw.get("orders")
    if isinstance(orders, Mapping) and {"ab", "ba"} <= set(orders):
        raw["orders"] = {"ab": orders["ba"], "ba": orders["ab"]}
    return Verdict(unswap_winner(v.winner), v.score_b, v.score_a, v.rationale, raw, v.failure)


def with_cost(v: Verdict) -> Verdict:
    """A combined verdict's cost is the sum of its two orders' costs (when reported)."""
    orders = v.raw.get("orders") if isinstance(v.raw, Mapping) else None
    if not isinstance(orders, Mapping):
        return v
    costs = [o.get("cost_usd") for o in orders.values() if isinstance(o, Mapping)]
    if all(c is None for c in costs):
        return v
    total = round(sum(float(c or 0.0) for c in costs), 8)
    return Verdict(v.winner, v.score_a, v.score_b, v.rationale,
                   {**dict(v.raw), "cost_usd": total}, v.failure)
