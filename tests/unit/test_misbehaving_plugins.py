"""Every runner passes the misbehaving-plugin contract (`autojudge.testing.misbehaving`):
a plugin that raises, answers too few, answers the wrong type or hangs past its timeout
fails only the items it touched, typed, and every other item keeps its answer."""
from __future__ import annotations

from pathlib import Path

import pytest

from autojudge.executors.local import LocalExecutor
from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
from autojudge.testing.misbehaving import (GeneratorRunnerContract, JudgeRunnerContract,
                                           Misbehaving, MisbehavingPointwiseJudge,
                                           PairwiseJudgeRunnerContract)
from autojudge.types import JudgeItem, PairItem, Prompt, Score


class TestGeneratorRunner(GeneratorRunnerContract):
    pass


class TestPointwiseJudgeRunner(JudgeRunnerContract):
    pass


class TestPointwiseJudgeRunnerOnTheLocalExecutor(JudgeRunnerContract):
    """The compute the local executor hands the runner keeps the contract too."""

    def compute_for(self, plugin, timeout_s):
        return LocalExecutor().judge_compute("misbehaving", plugin, timeout_s)


class TestPairwiseJudgeRunnerSwapDebiased(PairwiseJudgeRunnerContract):
    pass


class TestPairwiseJudgeRunnerOneOrder(PairwiseJudgeRunnerContract):
    swap = False


class Unanswering:
    """A compute that loses a batch (as a remote one could): it never yields it."""

    parallelism = 1

    def __init__(self, plugin):
        self.plugin = plugin

    def map_score(self, batches):
        for number, items in enumerate(batches):
            if number == 0:
                continue
            yield number, [Score(0.5) for _ in items][:-1]  # and one too few here

    def run_stats(self):
        return None


def test_a_compute_that_loses_or_shortens_batches_fails_their_items(tmp_path: Path) -> None:
    """Answers that crossed a process boundary are checked again on the driver: no bare
    KeyError on a hash, every item has an outcome."""
    plugin = MisbehavingPointwiseJudge(Misbehaving(lambda k: Score(0.5), batch_size=2))
    prompts = [Prompt(f"p{i}", "x") for i in range(2)]
    pairs = [PairItem(p, JudgeItem(p, "img", f"a{p.id}"), JudgeItem(p, "img", f"b{p.id}"))
             for p in prompts]
    with Store(tmp_path) as store:
        runner = JudgeRunner("lossy", plugin, store, RunnerSettings(orient=False),
                             Unanswering(plugin))
        verdicts = [tv.verdict for tv in runner.verdicts(pairs)]
    assert [v.failure.kind for v in verdicts] == ["judge_bad_output"] * 2
    assert "no answer" in verdicts[0].failure.message
    assert "returned 1 scores for 2 images" in verdicts[1].failure.message
    assert runner.failures == {"judge_bad_output": 4} and runner.counts.failed == 4
    assert runner.failure_note().startswith(
        "judge lossy: 4 items failed (judge_bad_output x4; one item = one image)")


def test_a_judge_with_no_failures_has_no_note(tmp_path: Path) -> None:
    plugin = MisbehavingPointwiseJudge(Misbehaving(lambda k: Score(0.5)))
    p = Prompt("p", "x")
    with Store(tmp_path) as store:
        runner = JudgeRunner("fine", plugin, store, RunnerSettings(orient=False))
        runner.verdicts([PairItem(p, JudgeItem(p, "i", "a"), JudgeItem(p, "i", "b"))])
    assert runner.failure_note() is None


def test_a_judges_stop_error_still_stops_the_run(tmp_path: Path) -> None:
    """`AutojudgeError` is a plugin's deliberate one-line stop (its engine cannot start),
    not a misbehaviour: it is not turned into item failures."""
    from autojudge.errors import AutojudgeError

    class Stopping(MisbehavingPointwiseJudge):
        def score(self, items):
            raise AutojudgeError("judge 'x': could not start its engine; reinstall it")

    p = Prompt("p", "x")
    with Store(tmp_path) as store:
        runner = JudgeRunner("x", Stopping(Misbehaving(lambda k: None)), store,
                             RunnerSettings(orient=False))
        with pytest.raises(AutojudgeError, match="could not start"):
            runner.verdicts([PairItem(p, JudgeItem(p, "i", "a"), JudgeItem(p, "i", "b"))])


@pytest.mark.parametrize("timeout_s", [0.0, -1.0])
def test_a_timeout_must_be_positive(tmp_path: Path, timeout_s: float) -> None:
    from autojudge.stages.generate import GeneratorSettings

    with pytest.raises(ValueError, match="timeout_s"):
        GeneratorSettings(timeout_s=timeout_s)
    with pytest.raises(ValueError, match="timeout_s"):
        JudgeRunner("x", MisbehavingPointwiseJudge(Misbehaving(lambda k: None)),
                    Store(tmp_path), RunnerSettings(timeout_s=timeout_s))


def test_a_ray_worker_calls_its_plugin_through_the_same_guard() -> None:
    """The worker (run in-process here: it is a plain class) fails only the items its
    plugin broke, for generation and judging alike, as the local compute does."""
    from autojudge.executors.ray_worker import PluginSpec, PluginWorker
    from autojudge.testing.misbehaving import MisbehavingGenerator, png
    from autojudge.types import GenOutput, GenRequest

    def hosting(plugin, group: str) -> tuple[PluginWorker, PluginSpec]:
        worker, spec = PluginWorker(), PluginSpec(group, "misbehaving", object, {})
        worker.key, worker.plugin = spec.key, plugin  # as `_use` leaves a built plugin
        return worker, spec

    prompts = [Prompt(f"p{i}", "x") for i in range(3)]
    worker, spec = hosting(MisbehavingGenerator(Misbehaving(
        lambda k: GenOutput(png(k), 0.0), raises={"p1"})), "model")
    outputs = worker.generate(spec, [GenRequest(p, 0) for p in prompts])
    assert [o.failure.kind if o.failure else None for o in outputs] == [
        None, "generator_error", None]

    worker, spec = hosting(MisbehavingPointwiseJudge(Misbehaving(
        lambda k: Score(0.5), short={"p2"}, junk={"p0"})), "judge")
    wire = [{"prompt": p, "sha": p.id, "ext": "png", "data": png(p.id)} for p in prompts]
    scores, _ = worker.score(spec, wire)
    assert [s.failure.kind if s.failure else None for s in scores] == [
        "judge_bad_output", None, "judge_bad_output"]


def test_a_ray_worker_enforces_the_judges_call_timeout() -> None:
    """`judge.<label>.call_timeout_s` travels with the plugin's spec to its worker, where a
    call past it fails only the item that hangs, as on the driver."""
    from autojudge.executors.ray_worker import PluginSpec, PluginWorker
    from autojudge.testing.misbehaving import png

    behaviour = Misbehaving(lambda k: Score(0.5), hangs={"p1"})
    worker = PluginWorker()
    spec = PluginSpec("judge", "misbehaving", object, {}, call_timeout_s=0.5)
    worker.key, worker.plugin = spec.key, MisbehavingPointwiseJudge(behaviour)
    prompts = [Prompt(f"p{i}", "x") for i in range(3)]
    wire = [{"prompt": p, "sha": p.id, "ext": "png", "data": png(p.id)} for p in prompts]
    try:
        scores, _ = worker.score(spec, wire)
    finally:
        behaviour.release.set()
    assert [s.failure.kind if s.failure else None for s in scores] == [
        None, "judge_timeout", None]


def test_call_timeout_s_is_a_judge_config_key_that_reaches_the_runners_compute(
        tmp_path: Path) -> None:
    from autojudge.errors import AutojudgeError
    from autojudge.experiment import build

    seen = {}

    def compute_for(label, plugin, timeout_s):
        seen[label] = timeout_s
        return LocalExecutor().judge_compute(label, plugin, timeout_s)

    with Store(tmp_path) as store:
        runners = build.build_judges({"ocr": {"kind": "ocr", "call_timeout_s": 30}}, store,
                                   compute_for)
        assert runners["ocr"].settings.timeout_s == 30.0 and seen == {"ocr": 30.0}
        assert build.build_judges({"ocr": {"kind": "ocr"}}, store)["ocr"].settings.timeout_s \
            is None
        for bad in (0, -5, "soon", True, float("inf")):
            with pytest.raises(AutojudgeError, match="judge.ocr.call_timeout_s: must be"):
                build.build_judges({"ocr": {"kind": "ocr", "call_timeout_s": bad}}, store)
