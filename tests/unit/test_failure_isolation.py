"""One bad request fails alone: the generate stage isolates a member that makes a third-party
plugin raise (or fail its whole batch), and keeps every other member's image."""
from __future__ import annotations

import io

import pytest

from autojudge.stages.generate import run_generation
from autojudge.stages.isolation import SYSTEMIC_AFTER, guarded_generate
from autojudge.store.index import Store
from autojudge.types import Failure, GenOutput, GenRequest, Prompt

REQUESTS = [GenRequest(Prompt(id=f"p{i}", text=f"prompt {i}"), 0) for i in range(6)]


def png(text: str) -> bytes:
    from PIL import Image

    shade = sum(text.encode()) % 256
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (shade, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


class Plugin:
    """A third-party generator whose `generate` misbehaves when `bad` ids are in a batch.

    mode "raise": raises for the whole call; "catch_all": returns the same
    generator_error for every member (as a plugin that wraps its batch in try/except);
    "short": returns one output too few; "junk": returns a string in place of an output.
    """

    cacheable = True

    def __init__(self, bad=("p2",), mode: str = "raise", batch_size: int = 6):
        self.bad, self.mode, self.batch_size = set(bad), mode, batch_size
        self.calls: list[list[str]] = []

    def fingerprint(self) -> dict:
        return {"kind": "plugin", "version": 1, "params": {"mode": self.mode}}

    def check(self) -> None:
        pass

    def generate(self, requests):
        ids = [r.prompt.id for r in requests]
        self.calls.append(ids)
        if "*" in self.bad:  # broken whatever it is asked: the same error every call
            raise ConnectionError("service unavailable")
        bad = [i for i in ids if i in self.bad]
        if bad and self.mode == "raise":
            raise ValueError(f"cannot handle {bad[0]}\n(traceback-like second line)")
        if bad and self.mode == "catch_all":
            failure = Failure("generator_error", f"batch failed because of {bad[0]}")
            return [GenOutput(None, 0.0, failure=failure) for _ in requests]
        if bad and self.mode == "short":
            return [GenOutput(png(i), 0.01) for i in ids[:-1]]
        if bad and self.mode == "junk":
            return ["oops" if i in bad else GenOutput(png(i), 0.01) for i in ids]
        return [GenOutput(png(i), 0.01) for i in ids]


def outcome(outputs):
    return [out.failure.kind if out.failure else "ok" for out in outputs]


@pytest.mark.parametrize("mode", ["raise", "catch_all", "short"])
def test_stage_fails_only_the_member_that_breaks_the_batch(tmp_path, mode):
    plugin = Plugin(bad=("p2",), mode=mode)
    generations, counts = run_generation("plug", plugin, REQUESTS, Store(tmp_path))
    assert [g.ok for g in generations] == [True, True, False, True, True, True]
    bad = generations[2]
    assert bad.failure.kind == "generator_error" and bad.image_sha is None
    assert "\n" not in bad.failure.message
    if mode == "raise":
        assert bad.failure.message == ("ValueError: cannot handle p2 (traceback-like second "
                                       "line)")
        assert bad.failure.retryable  # a later run tries it again
    for g in generations:
        if g.ok:
            with open(g.image_path, "rb") as handle:
                assert handle.read() == png(g.prompt.id)
    assert counts.computed == 6 and counts.failed == 1
    # one batch call, then one call per member
    assert plugin.calls == [[r.prompt.id for r in REQUESTS]] + [[r.prompt.id] for r in REQUESTS]


def test_a_non_output_fails_only_its_member_without_a_retry():
    plugin = Plugin(bad=("p1",), mode="junk")
    outputs = guarded_generate(plugin, REQUESTS[:3])
    assert outcome(outputs) == ["ok", "generator_error", "ok"]
    assert "returned a str, not a GenOutput" in outputs[1].failure.message
    assert len(plugin.calls) == 1


def test_good_and_partly_failed_batches_are_not_retried():
    plugin = Plugin(bad=())
    assert outcome(guarded_generate(plugin, REQUESTS)) == ["ok"] * 6
    assert len(plugin.calls) == 1

    class Typed(Plugin):
        def generate(self, requests):
            self.calls.append([r.prompt.id for r in requests])
            return [GenOutput(None, 0.0, failure=Failure("missing_file", f"no {r.prompt.id}"))
                    for r in requests]

    typed = Typed()
    outputs = guarded_generate(typed, REQUESTS)
    assert outcome(outputs) == ["missing_file"] * 6 and len(typed.calls) == 1


def test_several_bad_members_each_fail_alone():
    plugin = Plugin(bad=("p0", "p4"), mode="raise")
    outputs = guarded_generate(plugin, REQUESTS)
    assert outcome(outputs) == ["generator_error", "ok", "ok", "ok", "generator_error", "ok"]
    assert "cannot handle p0" in outputs[0].failure.message
    assert "cannot handle p4" in outputs[4].failure.message


def test_a_generator_broken_for_everything_is_not_called_once_per_request():
    plugin = Plugin(bad=("*",), mode="raise", batch_size=64)
    requests = [GenRequest(Prompt(id=f"q{i}", text="x"), 0) for i in range(64)]
    outputs = guarded_generate(plugin, requests)
    assert outcome(outputs) == ["generator_error"] * 64
    assert {o.failure.message for o in outputs} == {"ConnectionError: service unavailable"}
    assert len(plugin.calls) == 1 + SYSTEMIC_AFTER  # the batch, then a few singles


def test_members_that_each_fail_their_own_way_are_all_tried():
    ids = [r.prompt.id for r in REQUESTS]
    plugin = Plugin(bad=ids, mode="raise")
    outputs = guarded_generate(plugin, REQUESTS)
    assert [o.failure.message for o in outputs] == [
        f"ValueError: cannot handle {i} (traceback-like second line)" for i in ids]
    assert len(plugin.calls) == 1 + len(ids)


def test_a_single_request_batch_is_called_once():
    plugin = Plugin(bad=("p0",), mode="raise")
    outputs = guarded_generate(plugin, REQUESTS[:1])
    assert outcome(outputs) == ["generator_error"] and len(plugin.calls) == 1
    assert outputs[0].latency_s >= 0


def test_folder_batch_with_a_looping_symlink_keeps_the_rest(tmp_path):
    """The reported case end to end: real folder generator, real stage, real store."""
    import os

    from PIL import Image

    from autojudge.generators.folder import FolderGenerator

    root = tmp_path / "model"
    root.mkdir()
    for request in REQUESTS:
        Image.new("RGB", (4, 4), "red").save(root / f"{request.prompt.id}.png")
    (root / "p3.png").unlink()
    os.symlink(root / "loop.png", root / "p3.png")
    os.symlink(root / "p3.png", root / "loop.png")
    generator = FolderGenerator("imported", FolderGenerator.Config(path=str(root)))
    generations, counts = run_generation("imported", generator, REQUESTS,
                                         Store(tmp_path / "store"))
    assert [g.prompt.id for g in generations if not g.ok] == ["p3"]
    assert generations[3].failure.kind == "unreadable_file"
    assert "p3.png" in generations[3].failure.message
    assert counts.failed == 1
