"""Every config file composes, and every plugin config lists all of its plugin's params
(so `model.<label>.<param>=...` works from the command line for each of them)."""
from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from autojudge.cli.checks import available
from autojudge.experiment import build
from autojudge.experiment.schema import CONF_DIR
from autojudge.sdk.registry import GENERATORS, JUDGES
from autojudge.stages.runner import RUNNER_KEYS

NEEDS_PATH = {"suite": {"partiprompts", "geneval"}, "model": {"folder"}}


def _overrides(group: str, name: str, tmp_path) -> list[str]:
    extra = []
    if name in NEEDS_PATH.get(group, ()):
        extra.append(f"{group}.{'' if group == 'suite' else name + '.'}path={tmp_path}")
    selector = f"{group}=[{name}]" if group in ("model", "judge") else f"{group}={name}"
    return [selector, *extra]


@pytest.mark.parametrize("group,name", [(g, n) for g in ("model", "judge", "suite", "logger")
                                        for n in available(CONF_DIR, g)])
def test_every_config_file_composes(compose, tmp_path, group, name) -> None:
    cfg = compose(_overrides(group, name, tmp_path))
    plain = OmegaConf.to_container(cfg, resolve=True)
    if group in ("model", "judge"):
        assert list(plain[group]) == [name]
        registry = GENERATORS if group == "model" else JUDGES
        node = dict(plain[group][name])
        cls = registry.get(node.pop("kind"))
        for key in RUNNER_KEYS:
            node.pop(key, None)
        assert set(node) == {f.name for f in dataclasses.fields(cls.Config)}, \
            f"conf/{group}/{name}.yaml should list every {cls.__name__}.Config field"
        build.validate_params(cls, node, f"{group}.{name}")


def test_several_models_are_chosen_as_a_list(compose) -> None:
    cfg = compose(["model=[typeset,blank,noise]", "model.typeset.max_font_size=20"])
    assert list(cfg.model) == ["typeset", "blank", "noise"]
    assert cfg.model.typeset.max_font_size == 20


def test_plugin_param_typo_is_caught_with_a_suggestion() -> None:
    from autojudge.errors import AutojudgeError

    with pytest.raises(AutojudgeError, match="did you mean 'color'"):
        build.build_generators({"blank": {"kind": "blank", "colour": "red"}})


def test_unknown_kind_suggests_a_close_one() -> None:
    from autojudge.errors import AutojudgeError

    with pytest.raises(AutojudgeError, match="Did you mean 'typeset'"):
        build.build_generators({"x": {"kind": "typeset2"}})
