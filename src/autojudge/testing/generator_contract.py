"""The contract every generator plugin passes (and the base every plugin contract shares).

Import it from `autojudge.testing` (needs pytest), in this repository or in a plugin's own
package. Like diffusers' PipelineTesterMixin: a test class inherits the mixin, says which
plugin it tests and how to build it, and gets the whole contract as tests:

    class TestBlank(GeneratorContract):
        plugin_cls = BlankGenerator
        import_module = "autojudge.generators.baselines"
        fingerprint_changes = [{"color": "black"}]

        def sample_requests(self):
            return [GenRequest(Prompt(id="a", text="a cat"), 0), ...]

What a test class sets (class attributes) or overrides (methods / fixtures):

    plugin_cls             the plugin class: `plugin_cls(name, plugin_cls.Config(**params))`
    plugin_name            the label passed as `name` (default "under_test")
    import_module          module that defines it; importing it must not import
                           anything in `forbidden_imports` (checked in a subprocess)
    forbidden_imports      heavy modules a plugin module must import lazily
    fingerprint_changes    list of param overrides, each of which must change the fingerprint
    fingerprint_invariant  list of param overrides that must NOT change it (batch sizes...)
    deterministic          False for plugins whose output may differ between two calls
                           (a remote API without seeds): skips the equality tests
    default_params()       params of the plugin under test (default {}); or override the
                           `plugin_params` fixture when they need other fixtures (tmp_path)
    make_plugin            fixture: `make_plugin(**overrides) -> plugin`; override it to
                           share expensive state (a loaded model) between instances
    sample_requests()      requests to run (generators); or override the `gen_requests`
                           fixture when they need other fixtures
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import textwrap
from typing import Any, Callable

import pytest

DEFAULT_FORBIDDEN_IMPORTS = (
    "torch", "torchvision", "torchmetrics", "transformers", "diffusers", "open_clip",
    "onnxruntime", "rapidocr", "cv2", "wandb",
)


def run_isolated(code: str, timeout: float = 120) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; it must print one JSON object as its last line."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


class PluginContract:
    """What every plugin (generator or judge) shares: construction from a Config dataclass
    that OmegaConf can validate, a JSON fingerprint that tracks its params, a `check()` that
    passes when it is set up right, and a module that imports without heavy dependencies."""

    plugin_cls: type
    plugin_name: str = "under_test"
    import_module: str = ""
    forbidden_imports: tuple[str, ...] = DEFAULT_FORBIDDEN_IMPORTS
    fingerprint_changes: list[dict[str, Any]] = []
    fingerprint_invariant: list[dict[str, Any]] = []
    deterministic: bool = True

    # ------------------------------------------------------------- building

    def default_params(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def plugin_params(self) -> dict[str, Any]:
        return self.default_params()

    @pytest.fixture
    def make_plugin(self, plugin_params: dict[str, Any]) -> Callable[..., Any]:
        def make(**overrides: Any) -> Any:
            config = self.plugin_cls.Config(**{**plugin_params, **overrides})
            return self.plugin_cls(self.plugin_name, config)

        return make

    @pytest.fixture
    def plugin(self, make_plugin: Callable[..., Any]) -> Any:
        return make_plugin()

    # ------------------------------------------------------------- config

    def test_config_is_a_dataclass_with_defaults(self) -> None:
        config_cls = self.plugin_cls.Config
        assert dataclasses.is_dataclass(config_cls)
        missing = [f.name for f in dataclasses.fields(config_cls)
                   if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
        assert not missing, f"Config fields without defaults: {missing}"
        # building with defaults is cheap and never fails (no I/O, no model loads)
        self.plugin_cls(self.plugin_name, config_cls())

    def test_config_validates_with_omegaconf(self, plugin_params: dict[str, Any],
                                             plugin: Any) -> None:
        """experiment.build builds plugins from `OmegaConf.structured(Config)` merged with YAML."""
        from omegaconf import OmegaConf

        schema = OmegaConf.structured(self.plugin_cls.Config)
        merged = OmegaConf.merge(schema, plugin_params)
        config = OmegaConf.to_object(merged)
        assert isinstance(config, self.plugin_cls.Config)
        rebuilt = self.plugin_cls(self.plugin_name, config)
        assert rebuilt.fingerprint() == plugin.fingerprint()

    # ------------------------------------------------------------- fingerprint

    def test_fingerprint_is_json_and_names_kind_version_params(self, plugin: Any) -> None:
        fp = plugin.fingerprint()
        text = json.dumps(fp, sort_keys=True)
        assert json.loads(text) == json.loads(json.dumps(dict(fp)))
        assert isinstance(fp["kind"], str) and fp["kind"]
        assert isinstance(fp["version"], int) and not isinstance(fp["version"], bool)
        assert isinstance(fp["params"], dict)

    def test_fingerprint_is_stable(self, make_plugin: Callable[..., Any]) -> None:
        a, b = make_plugin().fingerprint(), make_plugin().fingerprint()
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    def test_fingerprint_changes_with_output_params(self,
                                                    make_plugin: Callable[..., Any]) -> None:
        if not self.fingerprint_changes:
            pytest.skip("no params listed in fingerprint_changes")
        base = json.dumps(make_plugin().fingerprint(), sort_keys=True)
        for overrides in self.fingerprint_changes:
            changed = json.dumps(make_plugin(**overrides).fingerprint(), sort_keys=True)
            assert changed != base, f"fingerprint ignores {overrides}"

    def test_fingerprint_ignores_batching_params(self,
                                                 make_plugin: Callable[..., Any]) -> None:
        if not self.fingerprint_invariant:
            return  # optional: most plugins have no batching params
        base = json.dumps(make_plugin().fingerprint(), sort_keys=True)
        for overrides in self.fingerprint_invariant:
            same = json.dumps(make_plugin(**overrides).fingerprint(), sort_keys=True)
            assert same == base, f"fingerprint depends on {overrides}, which can't change output"

    # ------------------------------------------------------------- check + import

    def test_check_passes_when_set_up(self, plugin: Any) -> None:
        assert plugin.check() is None

    def test_sdk_hooks_have_valid_values(self, plugin: Any) -> None:
        """Every hook the core reads (autojudge.sdk) has a value it can use, whether the
        plugin subclasses an SDK base or only has the protocol's attributes."""
        from autojudge.sdk import (PLACEMENTS, cheap_to_remake, placement_of,
                                   pool_resources_of)

        assert placement_of(plugin) in PLACEMENTS
        assert set(pool_resources_of(plugin)) <= {"num_cpus", "num_gpus", "actors",
                                                  "max_in_flight"}
        assert isinstance(cheap_to_remake(plugin), bool)

    def test_module_import_is_light(self) -> None:
        if not self.import_module:
            pytest.skip("import_module not set")
        # the behaviour that keeps start-up light: no heavy module at import (its time is
        # a benchmark's business, not a test's)
        result = run_isolated(f"""
            import json, sys
            import numpy, PIL.Image
            import {self.import_module}
            heavy = sorted(m for m in {list(self.forbidden_imports)!r} if m in sys.modules)
            print(json.dumps({{"heavy": heavy}}))
        """)
        assert result["heavy"] == [], (
            f"importing {self.import_module} imports {result['heavy']}; import them lazily")


def image_digest(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def output_key(out: Any) -> tuple[str | None, str | None]:
    """What must match between two runs of a request: the image bytes and failure kind."""
    return image_digest(out.image), (out.failure.kind if out.failure else None)


class GeneratorContract(PluginContract):
    """Contract of `autojudge.generators.base.Generator` plugins."""

    def sample_requests(self) -> list[Any]:
        raise NotImplementedError("a GeneratorContract test class defines sample_requests()")

    @pytest.fixture
    def gen_requests(self) -> list[Any]:
        return self.sample_requests()

    # ------------------------------------------------------------- protocol

    def test_implements_generator_protocol(self, plugin: Any) -> None:
        from autojudge.generators.base import Generator

        assert isinstance(plugin, Generator)
        assert isinstance(plugin.cacheable, bool)
        assert isinstance(plugin.batch_size, int) and plugin.batch_size >= 1

    def test_one_output_per_request(self, plugin: Any, gen_requests: list[Any]) -> None:
        from autojudge.types import GenOutput

        assert len(gen_requests) >= 2, "give at least two sample requests"
        outputs = plugin.generate(gen_requests)
        assert isinstance(outputs, list) and len(outputs) == len(gen_requests)
        for out in outputs:
            assert isinstance(out, GenOutput)
            assert out.latency_s >= 0 and out.cost_usd >= 0
            if out.failure is None:
                assert isinstance(out.image, bytes) and out.image
            else:
                assert out.image is None, "a failed output carries no image"
                assert out.failure.kind and out.failure.message
                assert "\n" not in out.failure.message.strip(), "failure messages are one line"

    def test_ok_outputs_decode_as_images(self, plugin: Any, gen_requests: list[Any]) -> None:
        from PIL import Image

        ok = [out for out in plugin.generate(gen_requests) if out.ok]
        assert ok, "at least one sample request should succeed"
        for out in ok:
            with Image.open(io.BytesIO(out.image)) as im:
                im.load()
                assert im.width > 0 and im.height > 0

    def test_empty_batch(self, plugin: Any) -> None:
        assert plugin.generate([]) == []

    # ------------------------------------------------------------- equalities

    def test_outputs_follow_request_order(self, plugin: Any, gen_requests: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        forward = [output_key(o) for o in plugin.generate(gen_requests)]
        backward = [output_key(o) for o in plugin.generate(list(reversed(gen_requests)))]
        assert backward == list(reversed(forward))

    def test_batch_equals_one_by_one(self, plugin: Any, gen_requests: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        batched = [output_key(o) for o in plugin.generate(gen_requests)]
        single = [output_key(plugin.generate([r])[0]) for r in gen_requests]
        assert batched == single

    def test_deterministic(self, make_plugin: Callable[..., Any],
                           gen_requests: list[Any]) -> None:
        if not self.deterministic:
            pytest.skip("plugin is not deterministic")
        first = [output_key(o) for o in make_plugin().generate(gen_requests)]
        again = [output_key(o) for o in make_plugin().generate(gen_requests)]
        assert first == again
