"""Caching and pointwise->pairwise wrappers: compute once, decide ties, never drop failures."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from autojudge.judges.adapters import CachedPairwise, CachedPointwise, PointwiseAsPairwise
from autojudge.store import Store
from autojudge.types import Failure, JudgeItem, PairItem, Prompt, Score, Verdict

PROMPT = Prompt("p1", "a red square", ("colors",), "colors", expected_text="HI")


@dataclass
class TableJudge:
    """Scores an image by looking its sha up in a table; records every call."""

    table: dict
    name: str = "table"
    score_range: tuple = (0.0, 1.0)
    batch_size: int = 4
    version: int = 1

    def __post_init__(self) -> None:
        self.calls: list[list[str]] = []

    def fingerprint(self):
        return {"kind": "table", "version": self.version}

    def check(self) -> None:
        pass

    def applies(self, prompt: Prompt) -> bool:
        return True

    def score(self, items):
        self.calls.append([i.image_sha for i in items])
        out = []
        for item in items:
            assert item.image is not None, "wrappers must materialise images"
            value = self.table[item.image_sha]
            out.append(Score(None, failure=Failure("judge_error", "boom")) if value is None
                       else Score(value, {"seen": item.image}))
        return out


def item(sha: str) -> JudgeItem:
    return JudgeItem(PROMPT, None, sha, loader=lambda: f"pixels-of-{sha}")


def test_cached_pointwise_computes_each_image_once(tmp_path: Path) -> None:
    judge = TableJudge({"a": 0.9, "b": 0.1})
    scorer = CachedPointwise(judge, Store(tmp_path))
    first = scorer.score([item("a"), item("b")])
    assert [s.value for s in first] == [0.9, 0.1]
    again = CachedPointwise(judge, Store(tmp_path))
    assert [s.value for s in again.score([item("b"), item("a")])] == [0.1, 0.9]
    assert judge.calls == [["a", "b"]]
    assert again.counts.cached == 2 and again.counts.computed == 0


def test_fingerprint_change_invalidates_cache(tmp_path: Path) -> None:
    judge = TableJudge({"a": 0.9})
    CachedPointwise(judge, Store(tmp_path)).score([item("a")])
    judge.version = 2
    CachedPointwise(judge, Store(tmp_path)).score([item("a")])
    assert judge.calls == [["a"], ["a"]]


@pytest.mark.parametrize("a,b,margin,winner", [
    (0.9, 0.1, 0.0, "model_a"), (0.1, 0.9, 0.0, "model_b"), (0.50, 0.52, 0.05, "tie"),
    (0.0, 0.0, 0.0, "tie (bothbad)"), (0.5, 0.5, 0.0, "tie")])
def test_pointwise_as_pairwise_decides(tmp_path: Path, a, b, margin, winner) -> None:
    judge = PointwiseAsPairwise(CachedPointwise(TableJudge({"a": a, "b": b}), Store(tmp_path)),
                                tie_margin=margin)
    (verdict,) = judge.compare([PairItem(PROMPT, item("a"), item("b"))])
    assert verdict.winner == winner
    assert (verdict.score_a, verdict.score_b) == (a, b)


def test_swapping_the_pair_flips_the_verdict(tmp_path: Path) -> None:
    judge = PointwiseAsPairwise(CachedPointwise(TableJudge({"a": 0.8, "b": 0.2}), Store(tmp_path)))
    ab, ba = judge.compare([PairItem(PROMPT, item("a"), item("b")),
                            PairItem(PROMPT, item("b"), item("a"))])
    assert (ab.winner, ba.winner) == ("model_a", "model_b")


def test_failed_score_gives_a_failed_verdict_not_a_win(tmp_path: Path) -> None:
    judge = PointwiseAsPairwise(CachedPointwise(TableJudge({"a": None, "b": 0.2}), Store(tmp_path)))
    (verdict,) = judge.compare([PairItem(PROMPT, item("a"), item("b"))])
    assert verdict.winner is None and verdict.failure.kind == "judge_error"


def test_each_image_scored_once_across_pairs(tmp_path: Path) -> None:
    inner = TableJudge({"a": 0.1, "b": 0.2, "c": 0.3})
    judge = PointwiseAsPairwise(CachedPointwise(inner, Store(tmp_path)))
    judge.compare([PairItem(PROMPT, item(x), item(y)) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))])
    assert sorted(sha for call in inner.calls for sha in call) == ["a", "b", "c"]


@dataclass
class FlakyPairwise:
    name: str = "flaky"
    batch_size: int = 2

    def __post_init__(self) -> None:
        self.calls = 0

    def fingerprint(self):
        return {"kind": "flaky", "version": 1}

    def check(self) -> None:
        pass

    def applies(self, prompt):
        return True

    def compare(self, pairs):
        self.calls += 1
        if self.calls == 1:
            return [Verdict(None, failure=Failure("http_429", "rate limited", retryable=True))
                    for _ in pairs]
        return [Verdict("model_a", rationale="left is better", raw={"answer": "A"}) for _ in pairs]


def test_cached_pairwise_retries_retryable_failures_and_keeps_answers(tmp_path: Path) -> None:
    inner = FlakyPairwise()
    pair = PairItem(PROMPT, item("a"), item("b"))
    first = CachedPairwise(inner, Store(tmp_path)).compare([pair])
    assert first[0].failure.kind == "http_429"
    second = CachedPairwise(inner, Store(tmp_path)).compare([pair])
    assert second[0].winner == "model_a"
    third_judge = CachedPairwise(inner, Store(tmp_path))
    third = third_judge.compare([pair])
    assert third[0].raw == {"answer": "A"} and inner.calls == 2
    assert third_judge.counts.cached == 1
