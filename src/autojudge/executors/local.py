"""The local executor (the default): every batch runs in this process, one after another.

It is also the reference the Ray executor must match: the same batches, the same
plugin calls, the same decoded images, committed by the same driver code.

Example:
    >>> compute = LocalCompute(plugin)                           # doctest: +SKIP
    >>> for number, scores in compute.map_score([[item_a, item_b]]):  # doctest: +SKIP
    ...     ...
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from autojudge.stages.isolation import guarded_compare, guarded_rank, guarded_score
from autojudge.types import JudgeItem, PairItem, RankItem


class LocalCompute:
    """Runs a judge plugin's batches here, in order (what `JudgeRunner` uses by default).

    The compute protocol (shared with `executors.ray.RayCompute`):
        parallelism: how many batches run at once (callers size their calls by it).
        map_score(batches) / map_compare(batches): (batch number, results) per batch,
            in any order; items come unmaterialized and each compute decodes them. The
            plugin is called through `stages.isolation` (a raise, a wrong count or type,
            a hang past `timeout_s` fail only the items they touched), never bare.
        run_stats(): the plugin's run-level numbers, or None.
    """

    parallelism = 1

    def __init__(self, plugin: Any, timeout_s: float | None = None):
        self.plugin = plugin
        self.timeout_s = timeout_s  # per plugin call (`stages.isolation`); None: no limit

    def map_score(self, batches: Sequence[Sequence[JudgeItem]]
                  ) -> Iterator[tuple[int, list[Any]]]:
        for number, items in enumerate(batches):  # decoded one batch at a time
            yield number, guarded_score(self.plugin, [it.materialized() for it in items],
                                        self.timeout_s)

    def map_compare(self, batches: Sequence[Sequence[PairItem]]
                    ) -> Iterator[tuple[int, list[Any]]]:
        for number, pairs in enumerate(batches):
            yield number, guarded_compare(self.plugin, materialized_pairs(pairs),
                                          self.timeout_s)

    def map_rank(self, batches: Sequence[Sequence[RankItem]]
                 ) -> Iterator[tuple[int, list[Any]]]:
        for number, groups in enumerate(batches):
            memo: dict[int, JudgeItem] = {}
            decoded = [RankItem(g.prompt, tuple(
                memo.setdefault(id(it), it.materialized()) for it in g.items))
                for g in groups]
            yield number, guarded_rank(self.plugin, decoded, self.timeout_s)

    def run_stats(self) -> Any:
        hook = getattr(self.plugin, "run_stats", None)
        return hook() if callable(hook) else None


def materialized_pairs(pairs: Sequence[PairItem]) -> list[PairItem]:
    """Pairs with decoded images, each item decoded once (a swap-debiased call holds
    every item twice, in both orders)."""
    memo: dict[int, JudgeItem] = {}

    def one(item: JudgeItem) -> JudgeItem:
        if id(item) not in memo:
            memo[id(item)] = item.materialized()
        return memo[id(item)]

    return [PairItem(p.prompt, one(p.a), one(p.b)) for p in pairs]


class LocalExecutor:
    """executor=local: generation and judging in this process (no workers to manage)."""

    name = "local"

    def generation_dispatch(self, label: str, generator: Any) -> Any:
        """None: `stages.generate.run_generation` runs batches here by itself."""
        return None

    def judge_compute(self, label: str, plugin: Any, timeout_s: float | None = None) -> Any:
        return LocalCompute(plugin, timeout_s)

    def release(self, group: str, label: str) -> None:
        """Nothing to free: plugins live as long as the run."""

    def close(self) -> None:
        """Nothing to shut down."""
