"""Test doubles that speak real protocols (a fal-compatible queue server), for tests,
benchmarks and dry runs without an account, and the plugin contract mixins every built-in
plugin passes, for plugin authors anywhere (they need pytest):

    from autojudge.testing import GeneratorContract, PointwiseJudgeContract

    class TestMyJudge(PointwiseJudgeContract):
        plugin_cls = MyJudge
        def sample_items(self): ...

The mixins are imported on first use, so `autojudge.testing.fake_fal` needs no pytest.
"""
from __future__ import annotations

from typing import Any

_CONTRACTS = {
    "PluginContract": "generator_contract",
    "GeneratorContract": "generator_contract",
    "PointwiseJudgeContract": "judge_contract",
    "PairwiseJudgeContract": "judge_contract",
}

__all__ = sorted(_CONTRACTS)


def __getattr__(name: str) -> Any:
    if name not in _CONTRACTS:
        raise AttributeError(f"module 'autojudge.testing' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"autojudge.testing.{_CONTRACTS[name]}")
    return getattr(module, name)
