"""The local executor's calls: in order by default, `concurrent_calls` at once when a
plugin declares it (an API judge whose calls share one bounded request pool)."""
from __future__ import annotations

import threading

import pytest

from autojudge.errors import AutojudgeError
from autojudge.executors.local import LocalCompute
from autojudge.sdk import PairwiseJudge, concurrent_calls_of
from autojudge.types import JudgeItem, PairItem, Prompt, Verdict


class Recording(PairwiseJudge):
    """Says A wins; records how many calls ran at once; `fail` names a pair text whose
    call raises."""

    kind = "recording"

    def __init__(self, calls: int, fail: str = ""):
        super().__init__("rec")
        self.concurrent_calls = calls
        self.fail = fail
        self.running = self.peak = 0
        self.lock = threading.Lock()
        self.both = threading.Barrier(2, timeout=5)  # two calls must meet here

    def compare(self, pairs):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started = getattr(self, "started", 0) + 1
            first_two = self.started <= 2
        try:
            if self.concurrent_calls > 1 and first_two:
                try:  # the first two calls wait for each other: proof they overlap
                    self.both.wait()
                except threading.BrokenBarrierError:
                    pass
            if any(p.prompt.text == self.fail for p in pairs):
                raise RuntimeError("endpoint down")
            return [Verdict("model_a") for _ in pairs]
        finally:
            with self.lock:
                self.running -= 1


def batches(n: int, size: int = 2) -> list[list[PairItem]]:
    out = []
    for b in range(n):
        prompt = Prompt(id=f"p{b}", text=f"prompt {b}")
        item = JudgeItem(prompt, object(), f"sha{b}")
        out.append([PairItem(prompt, item, item)] * size)
    return out


def test_a_plugin_by_default_is_called_in_order_one_at_a_time():
    plugin = Recording(calls=1)
    compute = LocalCompute(plugin)
    got = list(compute.map_compare(batches(5)))
    assert compute.parallelism == 1 and plugin.peak == 1
    assert [number for number, _ in got] == [0, 1, 2, 3, 4]


def test_concurrent_calls_overlap_and_every_batch_comes_back():
    plugin = Recording(calls=2)
    compute = LocalCompute(plugin)
    got = dict(compute.map_compare(batches(7)))
    assert compute.parallelism == 2 and plugin.peak == 2  # never more than declared
    assert sorted(got) == list(range(7))
    assert all(v.winner == "model_a" for verdicts in got.values() for v in verdicts)


def test_a_failing_call_among_concurrent_ones_fails_only_its_own_items():
    plugin = Recording(calls=2, fail="prompt 3")
    got = dict(LocalCompute(plugin).map_compare(batches(6)))
    assert sorted(got) == list(range(6))
    assert all(v.failure is not None and v.failure.kind == "judge_error" for v in got[3])
    assert all(v.failure is None for n, verdicts in got.items() if n != 3 for v in verdicts)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_concurrent_calls_is_one_line(bad):
    plugin = Recording(calls=1)
    plugin.concurrent_calls = bad
    with pytest.raises(AutojudgeError, match="concurrent_calls"):
        concurrent_calls_of(plugin)
