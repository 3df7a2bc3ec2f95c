"""The local executor (the default): every batch runs in this process, one after another
(or a few at once on threads, for a plugin that declares `concurrent_calls` > 1: an API
judge whose calls share one bounded request pool, so the next call's requests start while
the last call waits for its slowest).

It is also the reference the Ray executor must match: the same batches, the same
plugin calls, the same decoded images, committed by the same driver code.

Example:
    >>> compute = LocalCompute(plugin)                           # doctest: +SKIP
    >>> for number, scores in compute.map_score([[item_a, item_b]]):  # doctest: +SKIP
    ...     ...
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

from autojudge.sdk import concurrent_calls_of
from autojudge.stages.isolation import guarded_compare, guarded_rank, guarded_score
from autojudge.types import JudgeItem, PairItem, RankItem


class LocalCompute:
    """Runs a judge plugin's batches here (what `JudgeRunner` uses by default): in order,
    or `concurrent_calls` at a time on threads.

    The compute protocol (shared with `executors.ray.RayCompute`):
        parallelism: how many batches run at once (callers size their calls by it).
        map_score(batches) / map_compare(batches): (batch number, results) per batch,
            in any order; items come unmaterialized and each compute decodes them. The
            plugin is called through `stages.isolation` (a raise, a wrong count or type,
            a hang past `timeout_s` fail only the items they touched), never bare.
        run_stats(): the plugin's run-level numbers, or None.
    """

    def __init__(self, plugin: Any, timeout_s: float | None = None):
        self.plugin = plugin
        self.timeout_s = timeout_s  # per plugin call (`stages.isolation`); None: no limit
        #: calls at once: the plugin's `concurrent_calls` (1: in order, on this thread)
        self.parallelism = concurrent_calls_of(plugin)

    def map_score(self, batches: Sequence[Sequence[JudgeItem]]
                  ) -> Iterator[tuple[int, list[Any]]]:
        return self._map(batches, lambda items: guarded_score(
            self.plugin, [it.materialized() for it in items], self.timeout_s))

    def map_compare(self, batches: Sequence[Sequence[PairItem]]
                    ) -> Iterator[tuple[int, list[Any]]]:
        return self._map(batches, lambda pairs: guarded_compare(
            self.plugin, materialized_pairs(pairs), self.timeout_s))

    def map_rank(self, batches: Sequence[Sequence[RankItem]]
                 ) -> Iterator[tuple[int, list[Any]]]:
        def one(groups: Sequence[RankItem]) -> list[Any]:
            memo: dict[int, JudgeItem] = {}
            decoded = [RankItem(g.prompt, tuple(
                memo.setdefault(id(it), it.materialized()) for it in g.items))
                for g in groups]
            return guarded_rank(self.plugin, decoded, self.timeout_s)

        return self._map(batches, one)

    def _map(self, batches: Sequence[Any], call: Callable[[Any], list[Any]]
             ) -> Iterator[tuple[int, list[Any]]]:
        """(number, call(batch)) per batch; images are decoded inside `call`, so at most
        `parallelism` batches are held decoded at once."""
        if self.parallelism == 1:
            for number, batch in enumerate(batches):
                yield number, call(batch)
            return
        with ThreadPoolExecutor(max_workers=self.parallelism,
                                thread_name_prefix="local-calls") as pool:
            waiting = iter(enumerate(batches))
            running: dict[Future, int] = {}

            def top_up() -> None:
                for number, batch in waiting:
                    running[pool.submit(call, batch)] = number
                    if len(running) >= self.parallelism:
                        return

            top_up()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:  # the guards turn a plugin's raise into failures
                    number = running.pop(future)
                    top_up()
                    yield number, future.result()

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
