"""The plugin SDK (autojudge.sdk): what a plugin author relies on, for SDK plugins and for
plugins that only have the protocol's attributes."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO

from autojudge.errors import AutojudgeError
from autojudge.experiment import build
from autojudge.sdk import (Generator, PairwiseJudge, PluginCache, PointwiseJudge, RequestMatch,
                           cheap_to_remake, is_pointwise, placement_of, pool_resources_of,
                           validation_families_of)
from autojudge.sdk.registry import GENERATORS, JUDGES, Registry
from autojudge.types import GenOutput, GenRequest, Prompt, Score


class Gray(PointwiseJudge):
    kind = "gray_test"
    score_range = (0.0, 1.0)
    non_semantic = ("batch_size", "device")

    @dataclass
    class Config:
        gamma: float = 1.0
        device: str = "cpu"
        batch_size: int = 4

    def score(self, items):
        return [Score(0.5) for _ in items]


class Plain(Generator):
    kind = "plain_test"

    def generate(self, requests):
        return [GenOutput(image=None, latency_s=0.0) for _ in requests]


def test_fingerprint_is_the_config_minus_non_semantic_fields() -> None:
    judge = Gray("g", Gray.Config(gamma=2.0, device="cuda", batch_size=16))
    assert judge.fingerprint() == {"kind": "gray_test", "version": 1,
                                   "params": {"gamma": 2.0}}
    assert judge.fingerprint() == Gray("h", Gray.Config(gamma=2.0)).fingerprint()
    assert judge.batch_size == 16
    assert repr(judge).startswith("Gray(name='g', config=")
    assert "gamma=2.0, device='cuda', batch_size=16)" in repr(judge)


def test_a_plugin_without_config_fingerprints_empty_params() -> None:
    gen = Plain("p")
    assert gen.config is None and gen.batch_size == 1
    assert gen.fingerprint() == {"kind": "plain_test", "version": 1, "params": {}}


@pytest.mark.parametrize("size", [0, -3])
def test_batch_size_below_one_is_one_line(size: int) -> None:
    with pytest.raises(AutojudgeError) as info:
        Gray("g", Gray.Config(batch_size=size))
    assert str(info.value) == f"judge 'g': batch_size must be >= 1, got {size}"


def test_builtin_batch_size_below_one_is_refused_at_build() -> None:
    for group, registry, kind in (("model", GENERATORS, "fal"), ("judge", JUDGES, "ocr"),
                                  ("judge", JUDGES, "preservation")):
        with pytest.raises(AutojudgeError, match="batch_size must be >= 1"):
            build.build_plugin(registry, group, "x", {"kind": kind, "batch_size": 0})


def test_a_misspelled_non_semantic_field_fails_at_class_definition() -> None:
    with pytest.raises(TypeError, match="batch_sise"):
        class Typo(PointwiseJudge):  # noqa: F841
            kind = "typo"
            non_semantic = ("batch_sise",)

            @dataclass
            class Config:
                batch_size: int = 1


def test_a_bad_placement_fails_at_class_definition() -> None:
    with pytest.raises(TypeError, match="placement"):
        class Nowhere(Generator):  # noqa: F841
            placement = "cloud"


def test_hooks_have_defaults_for_sdk_and_protocol_only_plugins() -> None:
    class ProtocolOnly:  # a third-party judge that never heard of the SDK
        def compare(self, pairs):
            return []

    for plugin in (Plain("p"), ProtocolOnly()):
        assert placement_of(plugin) == "pool" and pool_resources_of(plugin) == {}
        assert cheap_to_remake(plugin) is False
    assert is_pointwise(Gray) and is_pointwise(Gray("g"))
    assert not is_pointwise(ProtocolOnly()) and not is_pointwise(PairwiseJudge)
    assert validation_families_of(ProtocolOnly(), ("a", "b")) == ("a", "b")
    match = Plain("p").matching_requests([GenRequest(Prompt(id="x", text="t"), 0)] * 3)
    assert (match.requests, match.matched) == (3, 3)
    assert RequestMatch(4, 1, "name them x.png").summary("m") == \
        "model.m: 1 of 4 requests can be served (name them x.png)"


def test_builtin_hooks_replace_kind_names_in_core() -> None:
    assert placement_of(GENERATORS.get("folder")) == "driver"
    assert pool_resources_of(GENERATORS.get("fal")) == {"actors": 1}
    assert all(cheap_to_remake(GENERATORS.get(k)) for k in ("blank", "noise", "typeset",
                                                             "folder"))
    assert not cheap_to_remake(GENERATORS.get("fal"))
    assert not cheap_to_remake(GENERATORS.get("diffusers"))
    vlm = build.build_plugin(JUDGES, "judge", "v", {"kind": "vlm", "criterion":
                                                  "prompt_alignment"})
    assert validation_families_of(vlm, ()) == ("alignment",)
    assert not is_pointwise(vlm) and is_pointwise(JUDGES.get("ocr"))


def test_ray_resources_come_from_the_plugin_under_the_settings() -> None:
    from autojudge.executors.ray import RaySettings

    fal = pool_resources_of(GENERATORS.get("fal"))
    s = RaySettings.from_config({})
    assert s.for_label("flux", "fal", fal)["actors"] == 1
    s = RaySettings.from_config({"kind_resources": {"fal": {"actors": 3}},
                                 "resources": {"flux": {"actors": 2}}})
    assert s.for_label("other", "fal", fal)["actors"] == 3
    assert s.for_label("flux", "fal", fal)["actors"] == 2


def test_plugin_cache_is_the_narrow_store_view(tmp_path: Path) -> None:
    import numpy as np

    from autojudge.store.index import Store

    store = Store(tmp_path / "store")
    judge = Gray("g")
    judge.attach_store(store)  # what the runner calls
    assert isinstance(judge.cache, PluginCache)
    assert not hasattr(judge.cache, "put_many") and not hasattr(judge.cache, "get_many")
    judge.cache.put_embeddings("ns", {"sha1": np.ones(3, dtype=np.float32)})
    assert list(store.get_embeddings("ns", ["sha1"])) == ["sha1"]
    assert judge.cache.get_embeddings("other", ["sha1"]) == {}
    store.close()


def test_register_refuses_a_builtin_name_in_one_line() -> None:
    with pytest.raises(AutojudgeError) as info:
        GENERATORS.register("folder")(Plain)
    message = str(info.value)
    assert message.startswith("plugin name 'folder' is taken by "
                              "autojudge.generators.folder:FolderGenerator (built-in generator)")
    assert "\n" not in message
    assert GENERATORS.get("folder").__name__ == "FolderGenerator"


def test_register_refuses_a_name_another_class_holds() -> None:
    registry = Registry("judge", "autojudge.test_no_such_group", {})
    registry.register("mine")(Gray)
    registry.register("mine")(Gray)  # the same class again (a re-import) is fine
    with pytest.raises(AutojudgeError, match="plugin name 'mine' is taken by .*:Gray"):
        registry.register("mine")(Plain)
    assert registry.get("mine") is Gray


class _EntryPoint:
    def __init__(self, name: str, value: str, dist: str):
        self.name, self.value = name, value
        self.dist = type("Dist", (), {"name": dist})()


def test_an_entry_point_reusing_a_builtin_name_is_refused(monkeypatch) -> None:
    registry = Registry("judge", "autojudge.judges", {"ocr": "autojudge.judges.ocr:OCRJudge"})
    monkeypatch.setattr("autojudge.sdk.registry.entry_points", lambda group: [
        _EntryPoint("bright", "pkg.mod:Bright", "my-judges"),
        _EntryPoint("ocr", "evil.mod:Ocr", "evil-judges")])
    with pytest.raises(AutojudgeError) as info:
        registry.names()
    assert str(info.value).startswith("plugin name 'ocr' is taken by "
                                      "autojudge.judges.ocr:OCRJudge (built-in judge); the "
                                      "entry point of evil-judges 'ocr = evil.mod:Ocr'")
    with pytest.raises(AutojudgeError):  # refused every time, not only the first
        registry.check_entry_points()


def test_cli_refuses_an_entry_point_reusing_a_builtin_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "evil").mkdir(parents=True)
    (site / "evil" / "__init__.py").write_text("class OCR:\n    pass\n")
    dist = site / "evil-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[autojudge.judges]\nocr = evil:OCR\n")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "autojudge", "logger=none", "progress=false",
         f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: plugin name 'ocr' is taken by autojudge.judges.ocr:OCRJudge (built-in "
        "judge); the entry point of evil 'ocr = evil:OCR' in group 'autojudge.judges' must "
        "use another name"]


def test_a_protocol_only_judge_runs_through_app(tmp_path: Path, monkeypatch) -> None:
    """A third-party judge with only the protocol's attributes is built and driven."""
    from autojudge.store.index import Store
    from autojudge.types import JudgeItem, PairItem

    class Bare:
        score_range = (0.0, 1.0)
        batch_size = 2

        def __init__(self, name: str):
            self.name = name

        def fingerprint(self) -> dict[str, Any]:
            return {"kind": "bare_test", "version": 1}

        def check(self) -> None:
            pass

        def applies(self, prompt) -> bool:
            return True

        def score(self, items):
            return [Score(float(len(it.image_sha)) / 100) for it in items]

    registry = Registry("judge", "autojudge.test_no_such_group", {})
    registry.register("bare_test")(Bare)
    monkeypatch.setattr("autojudge.experiment.build.JUDGES", registry)
    store = Store(tmp_path / "store")
    runner = build.build_judges({"b": {"kind": "bare_test", "tie_margin": 0.0}}, store)["b"]
    prompt = Prompt(id="p", text="t")
    pair = PairItem(prompt, JudgeItem(prompt, None, "a" * 64), JudgeItem(prompt, None, "b" * 6))
    assert runner.pointwise
    assert runner.verdicts([pair])[0].verdict.winner == "model_a"
    store.close()
