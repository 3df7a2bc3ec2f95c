"""The contract every judge plugin passes: pointwise (`PointwiseJudgeContract`) and
pairwise (`PairwiseJudgeContract`). Import them from `autojudge.testing` (needs pytest).

A test class inherits one mixin, names the plugin and supplies sample inputs:

    class TestOCR(PointwiseJudgeContract):
        plugin_cls = OCRJudge
        import_module = "autojudge.judges.ocr"
        fingerprint_changes = [{"min_confidence": 0.9}]
        fingerprint_invariant = [{"batch_size": 1}]

        def sample_items(self):
            return [JudgeItem(prompt, image, sha), ...]

Everything `PluginContract` documents (plugin_cls, plugin_name, import_module,
forbidden_imports, fingerprint_changes / _invariant, deterministic, default_params /
plugin_params, make_plugin) applies here too. Judges that load a model should override the
`make_plugin` fixture to share one loaded model (scope="module") between instances.

    sample_items()     JudgeItems the judge applies to (pointwise); or override the
                       `judge_items` fixture
    sample_pairs()     PairItems (pairwise); or override the `judge_pairs` fixture
    other_prompts()    prompts the judge must say it does NOT apply to (optional)
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

import pytest

from autojudge.testing.generator_contract import PluginContract


def score_key(score: Any) -> tuple[Any, ...]:
    """What must match between two runs of an item: value (to 1e-6), failure kind, raw."""
    value = None if score.value is None else round(float(score.value), 6)
    raw = json.dumps(dict(score.raw), sort_keys=True, default=str)
    return value, (score.failure.kind if score.failure else None), raw


def verdict_key(v: Any) -> tuple[Any, ...]:
    def r(x: Any) -> Any:
        return None if x is None else round(float(x), 6)

    return (v.winner, r(v.score_a), r(v.score_b),
            v.failure.kind if v.failure else None)


def runner_for(plugin: Any, tmp_path: Any) -> Any:
    """The plugin as a run drives it: `stages.runner.JudgeRunner` on a fresh store, in
    the order given (no A/B draw), swap-debiased when pairwise."""
    from autojudge.stages.runner import JudgeRunner, RunnerSettings
    from autojudge.store.index import Store

    return JudgeRunner(plugin.name, plugin, Store(tmp_path / "runner-store"),
                       RunnerSettings(orient=False))


class _JudgeContract(PluginContract):
    """Shared by pointwise and pairwise judges."""

    def runner_pairs(self, judge_inputs: list[Any]) -> list[Any]:
        """Pairs to drive through the runner (pairwise: the samples as they are)."""
        return list(judge_inputs)

    def test_runner_caches_every_answer(self, make_plugin: Callable[..., Any],
                                        judge_inputs: list[Any], tmp_path: Any) -> None:
        """Through the runner: a second run on the same store computes nothing and gives
        the same verdicts; every verdict is one of the Arena winners or a typed failure."""
        from autojudge.types import WINNERS

        pairs = self.runner_pairs(judge_inputs)
        first = runner_for(make_plugin(), tmp_path)
        out = [tv.verdict for tv in first.verdicts(pairs)]
        assert len(out) == len(pairs) and first.counts.computed >= 1
        for v in out:
            assert (v.winner is None) == (v.failure is not None) and \
                (v.winner is None or v.winner in WINNERS), v
        again = runner_for(make_plugin(), tmp_path)
        replay = [tv.verdict for tv in again.verdicts(pairs)]
        assert again.counts.computed == 0 and again.counts.cached >= 1
        assert [verdict_key(v) for v in replay] == [verdict_key(v) for v in out]

    def other_prompts(self) -> list[Any]:
        return []

    def test_name_is_the_label(self, plugin: Any) -> None:
        assert plugin.name == self.plugin_name
        assert isinstance(plugin.batch_size, int) and plugin.batch_size >= 1

    def test_judge_hooks_have_valid_values(self, plugin: Any) -> None:
        """The judge hooks the core reads (autojudge.sdk): pointwise or pairwise as its
        contract says, a `needs` sentence, known validation families, an existing card."""
        from autojudge.experiment.validation import FAMILIES
        from autojudge.sdk import (concurrent_calls_of, is_pointwise, judge_card,
                                   validation_families_of)

        assert is_pointwise(plugin) == isinstance(self, PointwiseJudgeContract)
        assert concurrent_calls_of(plugin) >= 1
        assert isinstance(getattr(plugin, "needs", ""), str)
        assert set(validation_families_of(plugin, FAMILIES)) <= set(FAMILIES)
        card = judge_card(plugin)
        assert card is None or card.is_file(), f"judge card {card} does not exist"

    def test_does_not_apply_to_other_prompts(self, plugin: Any) -> None:
        for prompt in self.other_prompts():
            assert plugin.applies(prompt) is False, prompt

    @staticmethod
    def check_raw_and_failure(out: Any) -> None:
        json.dumps(dict(out.raw), sort_keys=True)  # raw is stored and audited as JSON
        if out.failure is not None:
            assert out.failure.kind and out.failure.message
            assert "\n" not in out.failure.message.strip(), "failure messages are one line"


class PointwiseJudgeContract(_JudgeContract):
    """Contract of `autojudge.judges.base.PointwiseJudge` plugins."""

    def sample_items(self) -> list[Any]:
        raise NotImplementedError("a PointwiseJudgeContract test class defines sample_items()")

    @pytest.fixture
    def judge_items(self) -> list[Any]:
        return self.sample_items()

    @pytest.fixture
    def judge_inputs(self, judge_items: list[Any]) -> list[Any]:
        return judge_items

    def runner_pairs(self, judge_inputs: list[Any]) -> list[Any]:
        """Every sample item against the next one (the runner compares by score)."""
        from autojudge.types import PairItem

        return [PairItem(a.prompt, a, b) for a, b in zip(judge_inputs, judge_inputs[1:])
                if a.prompt == b.prompt] or \
            [PairItem(judge_inputs[0].prompt, judge_inputs[0], judge_inputs[0])]

    @pytest.fixture
    def outputs(self, plugin: Any, judge_items: list[Any]) -> list[Any]:
        return plugin.score(judge_items)

    def test_implements_pointwise_protocol(self, plugin: Any) -> None:
        from autojudge.judges.base import PointwiseJudge

        assert isinstance(plugin, PointwiseJudge)
        low, high = plugin.score_range
        assert math.isfinite(low) and math.isfinite(high) and low < high

    def test_sample_items_apply(self, plugin: Any, judge_items: list[Any]) -> None:
        assert len(judge_items) >= 2, "give at least two sample items"
        for item in judge_items:
            assert plugin.applies(item.prompt) is True, item.prompt

    def test_one_score_per_item_within_range(self, plugin: Any, judge_items: list[Any],
                                             outputs: list[Any]) -> None:
        """One Score per item; value in score_range, or None with a failure; raw is JSON."""
        from autojudge.types import Score

        assert isinstance(outputs, list) and len(outputs) == len(judge_items)
        low, high = plugin.score_range
        for s in outputs:
            assert isinstance(s, Score)
            assert (s.value is None) == (s.failure is not None), s
            if s.value is not None:
                v = s.value
                assert isinstance(v, float) and math.isfinite(v) and low <= v <= high, s
            self.check_raw_and_failure(s)
        assert any(s.value is not None for s in outputs), "at least one sample should score"

    def test_empty_batch(self, plugin: Any) -> None:
        assert plugin.score([]) == []

    def test_scores_follow_item_order(self, plugin: Any, judge_items: list[Any],
                                      outputs: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        backward = plugin.score(list(reversed(judge_items)))
        assert [score_key(s) for s in backward] == [score_key(s) for s in reversed(outputs)]

    def test_batch_equals_one_by_one(self, plugin: Any, judge_items: list[Any],
                                     outputs: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        single = [plugin.score([item])[0] for item in judge_items]
        assert [score_key(s) for s in single] == [score_key(s) for s in outputs]

    def test_deterministic(self, make_plugin: Callable[..., Any], judge_items: list[Any],
                           outputs: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        again = make_plugin().score(judge_items)
        assert [score_key(s) for s in again] == [score_key(s) for s in outputs]


class PairwiseJudgeContract(_JudgeContract):
    """Contract of `autojudge.judges.base.PairwiseJudge` plugins."""

    def sample_pairs(self) -> list[Any]:
        raise NotImplementedError("a PairwiseJudgeContract test class defines sample_pairs()")

    @pytest.fixture
    def judge_pairs(self) -> list[Any]:
        return self.sample_pairs()

    @pytest.fixture
    def judge_inputs(self, judge_pairs: list[Any]) -> list[Any]:
        return judge_pairs

    @pytest.fixture
    def outputs(self, plugin: Any, judge_pairs: list[Any]) -> list[Any]:
        return plugin.compare(judge_pairs)

    def test_implements_pairwise_protocol(self, plugin: Any) -> None:
        from autojudge.judges.base import PairwiseJudge

        assert isinstance(plugin, PairwiseJudge)

    def test_sample_pairs_apply(self, plugin: Any, judge_pairs: list[Any]) -> None:
        assert len(judge_pairs) >= 2, "give at least two sample pairs"
        for pair in judge_pairs:
            assert plugin.applies(pair.prompt) is True, pair.prompt
            assert pair.a.prompt == pair.prompt == pair.b.prompt

    def test_one_verdict_per_pair(self, judge_pairs: list[Any], outputs: list[Any]) -> None:
        from autojudge.types import WINNERS, Verdict

        assert isinstance(outputs, list) and len(outputs) == len(judge_pairs)
        for v in outputs:
            assert isinstance(v, Verdict)
            assert (v.winner is None) == (v.failure is not None), v
            if v.winner is not None:
                assert v.winner in WINNERS
            for side in (v.score_a, v.score_b):
                assert side is None or math.isfinite(float(side)), v
            self.check_raw_and_failure(v)
        assert any(v.winner is not None for v in outputs), "at least one pair should be judged"

    def test_empty_batch(self, plugin: Any) -> None:
        assert plugin.compare([]) == []

    def test_verdicts_follow_pair_order(self, plugin: Any, judge_pairs: list[Any],
                                        outputs: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        backward = plugin.compare(list(reversed(judge_pairs)))
        assert [verdict_key(v) for v in backward] == [verdict_key(v) for v in reversed(outputs)]

    def test_batch_equals_one_by_one(self, plugin: Any, judge_pairs: list[Any],
                                     outputs: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        single = [plugin.compare([p])[0] for p in judge_pairs]
        assert [verdict_key(v) for v in single] == [verdict_key(v) for v in outputs]

    def test_concurrent_calls_equal_one_after_another(self, plugin: Any,
                                                      judge_pairs: list[Any],
                                                      outputs: list[Any]) -> None:
        """A plugin declaring `concurrent_calls` > 1 is called from that many threads at
        once by the local executor: the calls must not disturb each other."""
        from concurrent.futures import ThreadPoolExecutor

        from autojudge.sdk import concurrent_calls_of

        calls = concurrent_calls_of(plugin)
        if calls == 1 or not self.deterministic:
            pytest.skip("called one call at a time" if calls == 1 else "not deterministic")
        with ThreadPoolExecutor(calls) as pool:
            answers = list(pool.map(plugin.compare, [judge_pairs] * (2 * calls)))
        for got in answers:
            assert [verdict_key(v) for v in got] == [verdict_key(v) for v in outputs]

    def test_deterministic(self, make_plugin: Callable[..., Any], judge_pairs: list[Any],
                           outputs: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        again = make_plugin().compare(judge_pairs)
        assert [verdict_key(v) for v in again] == [verdict_key(v) for v in outputs]

    def test_through_the_runner_swapping_images_flips_the_verdict(
            self, plugin: Any, judge_pairs: list[Any], tmp_path: Any) -> None:
        """As a run drives it (the runner, swap-debiased): swapping a and b swaps the
        winner (ties stay ties) and the two scores; the swapped pairs come from the
        cache (a swap-debiased verdict answers both orders)."""
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        from autojudge.types import PairItem

        runner = runner_for(plugin, tmp_path)
        outputs = [tv.verdict for tv in runner.verdicts(judge_pairs)]
        computed = runner.counts.computed
        flip = {"model_a": "model_b", "model_b": "model_a"}
        swapped = [tv.verdict for tv in
                   runner.verdicts([PairItem(p.prompt, p.b, p.a) for p in judge_pairs])]
        assert runner.counts.computed == computed, "the swapped pairs are cached"
        decisive = 0
        for v, s in zip(outputs, swapped):
            if v.winner is None:
                continue
            assert s.winner == flip.get(v.winner, v.winner), (v, s)
            assert verdict_key(s)[1:3] == verdict_key(v)[2:0:-1], (v, s)
            decisive += v.winner in flip
        assert decisive >= 1, "give at least one sample pair with a clear winner"
