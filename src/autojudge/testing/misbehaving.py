"""The "misbehaving plugin" contract: every runner survives a plugin that breaks its own.

A plugin may raise, answer too few, answer the wrong type, or hang. A runner passes this
contract when each of those fails only the items it touched, typed, and every other item
keeps its answer. Mix a driver class into a pytest class named `Test...`:

    from autojudge.testing.misbehaving import JudgeRunnerContract

    class TestMyComputeSurvivesBadJudges(JudgeRunnerContract):
        def compute_for(self, plugin, timeout_s):
            return MyCompute(plugin, timeout_s)     # your executor's compute

Drivers shipped: `GeneratorRunnerContract` (stages.generate.GeneratorRunner),
`JudgeRunnerContract` (pointwise, stages.runner.JudgeRunner) and
`PairwiseJudgeRunnerContract` (pairwise, swap-debiased). A driver for another runner
subclasses `MisbehavingPluginContract` and implements `outcomes`.

The plugin doubles decide what to do from the keys of a call (`Misbehaving`): a call
holding a key in `hangs` blocks, in `raises` raises (`raises={"*"}`: every call raises
the same error), in `short` answers one too few; a key in `junk` gets a string in place
of its answer.
"""
from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

IDS = tuple(f"p{i}" for i in range(6))
#: the longest a hanging call blocks if a test forgets to release it
_HANG_CAP_S = 120.0


class Misbehaving:
    """Answers calls by their keys, misbehaving as told (see the module docstring).

    Attributes:
        calls: the keys of every call, in order.
        release: set it to let hanging calls return (tests do, when they end).
    """

    def __init__(self, ok: Callable[[str], Any], raises: Collection[str] = (),
                 short: Collection[str] = (), junk: Collection[str] = (),
                 hangs: Collection[str] = (), batch_size: int = 64):
        self.ok = ok
        self.raises, self.short, self.junk, self.hangs = (
            set(raises), set(short), set(junk), set(hangs))
        self.batch_size = batch_size
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def answer(self, keys: Sequence[str]) -> list[Any]:
        keys = list(keys)
        self.calls.append(keys)
        if self.hangs & set(keys):
            self.release.wait(_HANG_CAP_S)
        if "*" in self.raises:  # broken whatever it is asked: the same error every call
            raise ConnectionError("service unavailable")
        bad = [k for k in keys if k in self.raises]
        if bad:
            raise ValueError(f"cannot handle {bad[0]}\n(a second line, as in a traceback)")
        answers = ["not an answer" if k in self.junk else self.ok(k) for k in keys]
        return answers[:-1] if self.short & set(keys) else answers


class _Plugin:
    """What every double shares: identity, no checks, applies everywhere."""

    kind = "misbehaving"
    version = 1
    score_range = (0.0, 1.0)
    cacheable = True

    def __init__(self, behaviour: Misbehaving):
        self.behaviour = behaviour
        self.name = "misbehaving"
        self.batch_size = behaviour.batch_size

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "params": {}}

    def check(self) -> None:
        pass

    def applies(self, prompt: Any) -> bool:
        return True


class MisbehavingGenerator(_Plugin):
    """A generator double: keys are prompt ids; a good answer is a tiny PNG."""

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        return self.behaviour.answer([r.prompt.id for r in requests])


class MisbehavingPointwiseJudge(_Plugin):
    """A pointwise judge double: keys are image hashes."""

    def score(self, items: Sequence[Any]) -> list[Any]:
        return self.behaviour.answer([it.image_sha for it in items])


class MisbehavingPairwiseJudge(_Plugin):
    """A pairwise judge double: a pair's key is its image that is not a reference (so
    both orders of a swap-debiased call behave alike)."""

    def compare(self, pairs: Sequence[Any]) -> list[Any]:
        return self.behaviour.answer([_pair_key(p) for p in pairs])


def _pair_key(pair: Any) -> str:
    return pair.b.image_sha if pair.a.image_sha.startswith("ref-") else pair.a.image_sha


def png(key: str) -> bytes:
    """A 4x4 PNG whose colour follows `key` (different keys, different bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (sum(key.encode()) % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


class MisbehavingPluginContract:
    """The contract's tests; a driver says how to run a `Misbehaving` through its runner.

    Attributes:
        error_kind / bad_output_kind / timeout_kind: the failure kinds the runner gives a
            raise, a wrong count or type, and a hang.
        timeout_s: the per-call timeout the hang test runs with (a setting, not a
            measurement: only the hanging call ever comes near it).
    """

    error_kind = "judge_error"
    bad_output_kind = "judge_bad_output"
    timeout_kind = "judge_timeout"
    timeout_s = 2.0

    def outcomes(self, behaviour: Misbehaving, tmp_path: Path,
                 timeout_s: float | None = None) -> Mapping[str, Any]:
        """Run every key of `IDS` through the runner under test with a plugin that
        behaves as `behaviour` says; key -> its `Failure`, or None when it was answered."""
        raise NotImplementedError

    def ok_answer(self, key: str) -> Any:
        """What the plugin double answers for a well-behaved key."""
        raise NotImplementedError

    def _run(self, tmp_path: Path, timeout_s: float | None = None, **misbehaviour: Any
             ) -> tuple[Misbehaving, dict[str, str | None]]:
        behaviour = Misbehaving(self.ok_answer, **misbehaviour)
        self.ok_answer("warm-up")  # imports (PIL) happen here, not inside a timed call
        try:
            got = self.outcomes(behaviour, tmp_path, timeout_s)
        finally:
            behaviour.release.set()  # no abandoned call outlives its test
        assert set(got) == set(IDS), f"every item has an outcome, got {sorted(got)}"
        return behaviour, {k: (f.kind if f is not None else None) for k, f in got.items()}

    def test_a_well_behaved_plugin_is_called_once(self, tmp_path: Path) -> None:
        behaviour, got = self._run(tmp_path)
        assert got == dict.fromkeys(IDS) and len(behaviour.calls) == 1

    def test_a_raise_fails_only_the_item_that_raises(self, tmp_path: Path) -> None:
        behaviour, got = self._run(tmp_path, raises={"p2"})
        assert got == {**dict.fromkeys(IDS), "p2": self.error_kind}
        assert ["p2"] in behaviour.calls  # asked alone after its batch failed

    def test_a_raise_is_a_one_line_retryable_failure(self, tmp_path: Path) -> None:
        behaviour = Misbehaving(self.ok_answer, raises={"p4"})
        failure = self.outcomes(behaviour, tmp_path)["p4"]
        assert "cannot handle p4" in failure.message and "\n" not in failure.message
        assert failure.retryable  # a later run asks again

    def test_too_few_answers_fail_only_the_item_that_lost_its_answer(self, tmp_path: Path
                                                                      ) -> None:
        _, got = self._run(tmp_path, short={"p3"})
        assert got == {**dict.fromkeys(IDS), "p3": self.bad_output_kind}

    def test_a_wrong_type_fails_only_its_item_without_a_retry(self, tmp_path: Path) -> None:
        behaviour, got = self._run(tmp_path, junk={"p1"})
        assert got == {**dict.fromkeys(IDS), "p1": self.bad_output_kind}
        assert len(behaviour.calls) == 1

    def test_a_hang_past_the_timeout_fails_only_the_item_that_hangs(self, tmp_path: Path
                                                                     ) -> None:
        _, got = self._run(tmp_path, timeout_s=self.timeout_s, hangs={"p5"})
        assert got == {**dict.fromkeys(IDS), "p5": self.timeout_kind}

    def test_every_misbehaviour_in_one_run_across_batches(self, tmp_path: Path) -> None:
        _, got = self._run(tmp_path, raises={"p0"}, short={"p2"}, junk={"p4"}, batch_size=2)
        assert got == {"p0": self.error_kind, "p1": None, "p2": self.bad_output_kind,
                       "p3": None, "p4": self.bad_output_kind, "p5": None}

    def test_a_plugin_broken_for_everything_is_not_called_once_per_item(
            self, tmp_path: Path) -> None:
        from autojudge.stages.isolation import SYSTEMIC_AFTER

        behaviour, got = self._run(tmp_path, raises={"*"})
        assert got == dict.fromkeys(IDS, self.error_kind)
        assert len(behaviour.calls) == 1 + SYSTEMIC_AFTER  # the batch, then a few singles


class GeneratorRunnerContract(MisbehavingPluginContract):
    """The contract for `stages.generate.GeneratorRunner` (override `dispatch_for` to run
    it through another executor's dispatch)."""

    error_kind = bad_output_kind = "generator_error"
    timeout_kind = "generator_timeout"

    def dispatch_for(self, plugin: Any, timeout_s: float | None) -> Any:
        """The dispatch to hand the runner; None: the runner's own (local) one."""
        return None

    def ok_answer(self, key: str) -> Any:
        from autojudge.types import GenOutput

        return GenOutput(png(key), 0.01)

    def outcomes(self, behaviour: Misbehaving, tmp_path: Path,
                 timeout_s: float | None = None) -> Mapping[str, Any]:
        from autojudge.stages.generate import GeneratorRunner, GeneratorSettings
        from autojudge.store.index import Store
        from autojudge.types import GenRequest, Prompt

        plugin = MisbehavingGenerator(behaviour)
        with Store(tmp_path / "store") as store:
            runner = GeneratorRunner("misbehaving", plugin, store,
                                     GeneratorSettings(timeout_s=timeout_s),
                                     self.dispatch_for(plugin, timeout_s))
            generations, _ = runner.run([GenRequest(Prompt(k, f"prompt {k}"), 0)
                                         for k in IDS])
        return {g.prompt.id: g.failure for g in generations}


class JudgeRunnerContract(MisbehavingPluginContract):
    """The contract for `stages.runner.JudgeRunner` driving a pointwise judge (override
    `compute_for` to run it through another executor's compute)."""

    swap = True

    def compute_for(self, plugin: Any, timeout_s: float | None) -> Any:
        """The compute to hand the runner; None: the runner's own (local) one."""
        return None

    def plugin_for(self, behaviour: Misbehaving) -> Any:
        return MisbehavingPointwiseJudge(behaviour)

    def ok_answer(self, key: str) -> Any:
        from autojudge.types import Score

        return Score(0.5, {"key": key})

    def outcomes(self, behaviour: Misbehaving, tmp_path: Path,
                 timeout_s: float | None = None) -> Mapping[str, Any]:
        from autojudge.stages.runner import JudgeRunner, RunnerSettings
        from autojudge.store.index import Store
        from autojudge.types import JudgeItem, PairItem, Prompt

        def item(prompt: Prompt, sha: str) -> JudgeItem:
            return JudgeItem(prompt, None, sha, loader=lambda: f"pixels of {sha}")

        plugin = self.plugin_for(behaviour)
        prompts = [Prompt(k, f"prompt {k}") for k in IDS]
        pairs = [PairItem(p, item(p, p.id), item(p, f"ref-{p.id}")) for p in prompts]
        with Store(tmp_path / "store") as store:
            runner = JudgeRunner("misbehaving", plugin, store,
                                 RunnerSettings(swap=self.swap, orient=False,
                                                timeout_s=timeout_s),
                                 self.compute_for(plugin, timeout_s))
            timed = runner.verdicts(pairs)
        return {p.id: tv.verdict.failure for p, tv in zip(prompts, timed)}


class PairwiseJudgeRunnerContract(JudgeRunnerContract):
    """The contract for `stages.runner.JudgeRunner` driving a pairwise judge, both
    orders asked in one call (swap-debiased)."""

    def plugin_for(self, behaviour: Misbehaving) -> Any:
        return MisbehavingPairwiseJudge(behaviour)

    def ok_answer(self, key: str) -> Any:
        from autojudge.types import Verdict

        return Verdict("model_a", rationale=f"{key} looks better")
