"""The judge runner: caching, pointwise->pairwise, pair orientation, swap-debias, cost
metering; compute once, decide ties, never drop failures, never favour a slot."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
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


def runner(plugin, tmp_path: Path, **settings) -> JudgeRunner:
    return JudgeRunner(plugin.name, plugin, Store(tmp_path),
                       RunnerSettings(**{"orient": False, **settings}))


def judged(r: JudgeRunner, pairs) -> list[Verdict]:
    return [tv.verdict for tv in r.verdicts(pairs)]


def test_scores_are_computed_once_and_cached(tmp_path: Path) -> None:
    judge = TableJudge({"a": 0.9, "b": 0.1})
    first = judged(runner(judge, tmp_path), [PairItem(PROMPT, item("a"), item("b"))])
    assert (first[0].score_a, first[0].score_b) == (0.9, 0.1)
    again = runner(judge, tmp_path)
    assert judged(again, [PairItem(PROMPT, item("b"), item("a"))])[0].winner == "model_b"
    assert judge.calls == [["a", "b"]]
    assert again.counts.cached == 2 and again.counts.computed == 0


def test_fingerprint_change_invalidates_cache(tmp_path: Path) -> None:
    judge = TableJudge({"a": 0.9, "b": 0.3})
    pair = [PairItem(PROMPT, item("a"), item("b"))]
    judged(runner(judge, tmp_path), pair)
    judge.version = 2
    judged(runner(judge, tmp_path), pair)
    assert judge.calls == [["a", "b"], ["a", "b"]]


@pytest.mark.parametrize("a,b,margin,winner", [
    (0.9, 0.1, 0.0, "model_a"), (0.1, 0.9, 0.0, "model_b"), (0.50, 0.52, 0.05, "tie"),
    (0.0, 0.0, 0.0, "tie (bothbad)"), (0.5, 0.5, 0.0, "tie")])
def test_pointwise_as_pairwise_decides(tmp_path: Path, a, b, margin, winner) -> None:
    r = runner(TableJudge({"a": a, "b": b}), tmp_path, tie_margin=margin)
    (verdict,) = judged(r, [PairItem(PROMPT, item("a"), item("b"))])
    assert verdict.winner == winner
    assert (verdict.score_a, verdict.score_b) == (a, b)


def test_swapping_the_pair_flips_the_verdict(tmp_path: Path) -> None:
    r = runner(TableJudge({"a": 0.8, "b": 0.2}), tmp_path)
    ab, ba = judged(r, [PairItem(PROMPT, item("a"), item("b")),
                        PairItem(PROMPT, item("b"), item("a"))])
    assert (ab.winner, ba.winner) == ("model_a", "model_b")


def test_failed_score_gives_a_failed_verdict_not_a_win(tmp_path: Path) -> None:
    r = runner(TableJudge({"a": None, "b": 0.2}), tmp_path)
    (verdict,) = judged(r, [PairItem(PROMPT, item("a"), item("b"))])
    assert verdict.winner is None and verdict.failure.kind == "judge_error"


def test_each_image_scored_once_across_pairs(tmp_path: Path) -> None:
    inner = TableJudge({"a": 0.1, "b": 0.2, "c": 0.3})
    judged(runner(inner, tmp_path),
           [PairItem(PROMPT, item(x), item(y)) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))])
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


def test_retryable_failures_are_asked_again_and_answers_kept(tmp_path: Path) -> None:
    inner = FlakyPairwise()
    pair = PairItem(PROMPT, item("a"), item("b"))
    first = judged(runner(inner, tmp_path, swap=False), [pair])
    assert first[0].failure.kind == "http_429"
    second = judged(runner(inner, tmp_path, swap=False), [pair])
    assert second[0].winner == "model_a"
    third_runner = runner(inner, tmp_path, swap=False)
    third = judged(third_runner, [pair])
    assert third[0].raw == {"answer": "A"} and inner.calls == 2
    assert third_runner.counts.cached == 1


@dataclass
class SlotA:
    """A pairwise judge with pure position bias: it always picks the image in slot A."""

    name: str = "slot_a"
    batch_size: int = 8

    def __post_init__(self) -> None:
        self.asked = 0

    def fingerprint(self):
        return {"kind": "slot_a", "version": 1}

    def check(self) -> None:
        pass

    def applies(self, prompt):
        return True

    def compare(self, pairs):
        self.asked += len(pairs)
        return [Verdict("model_a", raw={"cost_usd": 0.001}) for _ in pairs]


def test_swap_debias_turns_position_bias_into_ties_and_reports_it(tmp_path: Path) -> None:
    judge = SlotA()
    r = runner(judge, tmp_path)
    out = judged(r, [PairItem(PROMPT, item("a"), item("b")), PairItem(PROMPT, item("c"), item("d"))])
    assert [v.winner for v in out] == ["tie", "tie"] and judge.asked == 4  # both orders
    stats = r.run_stats()
    assert stats["position_bias_rate"] == 1.0 and stats["bias_slots"] == {"first": 2}
    assert r.spent_usd == pytest.approx(0.004)  # two orders per pair, metered
    # a swap-debiased verdict answers the other order too: nothing is asked again
    back = runner(judge, tmp_path)
    assert [v.winner for v in judged(back, [PairItem(PROMPT, item("b"), item("a"))])] == ["tie"]
    assert judge.asked == 4 and back.counts.cached == 1 and back.spent_usd is None


def test_orientation_is_drawn_per_request_and_stable(tmp_path: Path) -> None:
    r = JudgeRunner("slot_a", SlotA(), Store(tmp_path), RunnerSettings(swap=False))
    draws = [r.orient(f"p{k}", 0, "alpha", "beta") for k in range(400)]
    first_alpha = sum(a == "alpha" for a, _ in draws)
    assert 160 < first_alpha < 240  # a fair coin, not config order
    assert draws == [r.orient(f"p{k}", 0, "alpha", "beta") for k in range(400)]
    # the draw depends on the pair, not on which side it was given
    assert all(r.orient(f"p{k}", 0, "beta", "alpha") == d for k, d in enumerate(draws))


def test_slot_a_judge_rates_identical_models_equally(tmp_path: Path) -> None:
    """A judge that always prefers slot A, no swap: with the A/B draw, two models with the
    same images get equal ratings (their CIs overlap 1000); in config order the first
    model would win every battle."""
    import io

    from PIL import Image

    from autojudge.ratings import RatingConfig, rate_battles
    from autojudge.stages.judge import run_judge
    from autojudge.types import Generation

    prompts = [Prompt(f"p{k}", f"prompt {k}") for k in range(200)]
    store = Store(tmp_path)
    gens = []
    for k, p in enumerate(prompts):  # both models made exactly the same image
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (k, k, k)).save(buf, format="PNG")
        sha, ext = store.put_blob(buf.getvalue())
        gens += [Generation(model, p, 0, sha, str(store.blob_path(sha, ext)), 0.1, 0.0)
                 for model in ("first", "second")]
    r = JudgeRunner("slot_a", SlotA(), store, RunnerSettings(swap=False))
    outcome = run_judge(r, ["first", "second"], gens, [(p, 0) for p in prompts], store)
    rows = {row["model"]: row for row in rate_battles(
        [b.model_a for b in outcome.battles], [b.model_b for b in outcome.battles],
        [b.winner for b in outcome.battles], [b.prompt_id for b in outcome.battles],
        config=RatingConfig(bootstrap_rounds=200))}
    assert 70 < rows["first"]["wins"] < 130
    for row in rows.values():
        assert row["ci_low"] < 1000.0 < row["ci_high"] and row["rank"] == 1
