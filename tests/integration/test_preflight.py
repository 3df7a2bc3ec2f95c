"""Refuse before spending: runs that cannot produce an answer fail before the first image
is generated, with one line. Every case here exited 0 (or crashed) after generating."""
from __future__ import annotations

import pytest
from helpers import (GENEVAL, PARTI, assert_one_line_error, needs_shared_data, never_generates,
                     run_cli)

from autojudge.cli.checks import check_composition, check_overrides
from autojudge.errors import AutojudgeError
from autojudge.experiment import pipeline
from autojudge.experiment.schema import CONF_DIR

NeverGenerates = never_generates()


def refused(compose, tmp_path, *overrides: str) -> str:
    NeverGenerates.calls = 0
    base = ["logger=none", "progress=false", f"store.root={tmp_path / 'store'}",
            "model=[typeset]", "+model.boom={kind: never_generates_test}"]
    with pytest.raises(AutojudgeError) as info:
        pipeline.run(compose([*base, *overrides]), tmp_path / "run")
    assert NeverGenerates.calls == 0
    assert not (tmp_path / "run" / "leaderboard.json").exists()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("overrides, needle", [
    pytest.param(["suite=geneval", f"suite.path={GENEVAL}"],
                 "judge ocr applies to none of the 553 selected prompts: it needs prompts "
                 "with expected_text", marks=needs_shared_data(GENEVAL.name)),
    pytest.param(["suite=partiprompts", f"suite.path={PARTI}", "suite.limit=40",
                  "suite.only_judged=false"], "judge ocr applies to none of the 40",
                 marks=needs_shared_data(PARTI.name)),
    (["ratings.bootstrap_rounds=-5"], "ratings.bootstrap_rounds=-5: must be an integer >= 0"),
    (["ratings.confidence=1.5"], "ratings.confidence=1.5: must be between 0 and 1"),
    (["ratings.prior=-1"], "ratings.prior=-1.0: must be between 1e-6"),
    (["ratings.anchor=nosuch"], "ratings.anchor='nosuch': not a model of this run"),
    (["gate.baseline=typeset", "gate.candidate=nosuch"], "gate.candidate='nosuch': not a model"),
    (["gate.baseline=typeset"], "gate.candidate is not set"),
    (["gate.baseline=typeset", "gate.candidate=boom", "gate.bootstrap_rounds=5"],
     "gate.bootstrap_rounds=5: must be an integer >= 200"),
    (["battles.max_battles=0"], "battles.max_battles=0: must be an integer >= 1"),
    (["+ratings.bootstrap_round=5"], "unknown key 'ratings.bootstrap_round' (did you mean "
                                     "'ratings.bootstrap_rounds'?)"),
    (["+suite.limt=3"], "unknown key 'suite.limt' (did you mean 'suite.limit'?)"),
    (["judge.ocr.tie_margin=-1"], "judge.ocr.tie_margin: must be a finite number >= 0"),
    (["+human_votes.models.X=nosuch", "human_votes.path=votes.csv"],
     "human_votes.models.X='nosuch': not a model of this run"),
])
def test_refused_before_any_generation(compose, tmp_path, overrides, needle) -> None:
    assert needle in refused(compose, tmp_path, *overrides)


def test_one_model_is_refused(compose, tmp_path) -> None:
    NeverGenerates.calls = 0
    with pytest.raises(AutojudgeError, match="this one has 1 \\(boom\\); choose at least two"):
        pipeline.run(compose(["logger=none", f"store.root={tmp_path}", "model=[]",
                              "+model.boom={kind: never_generates_test}"]), tmp_path / "run")
    assert NeverGenerates.calls == 0


def test_folder_whose_files_match_no_prompt_is_refused(compose, tmp_path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(3):
        (folder / f"img_{k:03d}.png").write_bytes(b"\x89PNG not read")
    message = refused(compose, tmp_path, "+model.folder={kind: folder, path: " + str(folder)
                      + "}")
    assert "0 of 28 prompts have an image" in message and "img_000.png" in message


def test_suite_that_needs_a_path_says_so(compose, tmp_path) -> None:
    with pytest.raises(AutojudgeError, match="suite.path' is required"):
        pipeline.run(compose(["suite=partiprompts", "logger=none"]), tmp_path / "run")


def test_duplicate_model_is_refused_on_the_command_line() -> None:
    problem = check_overrides(["model=[typeset,typeset]"], CONF_DIR)
    assert problem is not None and "names typeset twice" in problem
    assert check_composition(["+ratings.bootstrap_round=5"]).startswith(
        "unknown key 'ratings.bootstrap_round'")


def test_unknown_executor_and_missing_hydra_plugins_are_one_line(monkeypatch) -> None:
    problem = check_overrides(["executor=rya"], CONF_DIR)
    assert problem is not None and problem.startswith("unknown executor 'rya' (did you mean "
                                                      "'ray'?); available: local, ray")
    # a sweeper or launcher whose Hydra plugin is absent names the pip command
    from autojudge.runtime import extras

    monkeypatch.setattr(extras, "find_spec", lambda name: None)
    assert check_overrides(["hydra/sweeper=optuna"], CONF_DIR) == (
        "hydra/sweeper=optuna needs a Hydra plugin that is not installed: "
        "pip install 'autojudge[sweep]'")
    assert "pip install hydra-submitit-launcher" in check_overrides(
        ["hydra/launcher=submitit_slurm"], CONF_DIR)
    assert check_overrides(["hydra/launcher=basic"], CONF_DIR) is None


@pytest.mark.slow  # a whole run over 28 prompts
def test_partial_applicability_is_reported_up_front(tmp_path) -> None:
    proc = run_cli(["autojudge", "logger=none", "suite.limit=30", f"store.root={tmp_path}",
                    f"hydra.run.dir={tmp_path / 'run'}", "ratings.bootstrap_rounds=50"])
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.index("note: keeping 28 of 94 prompts: judge ocr applies to those")
    assert first < proc.stdout.index("judge: ocr")  # before the results, not after


@pytest.mark.parametrize("args, needle", [
    (["model=[typeset,typeset]"], "names typeset twice"),
    pytest.param(["suite=geneval", f"suite.path={GENEVAL}"], "applies to none",
                 marks=needs_shared_data(GENEVAL.name)),
    (["+suite.limt=3"], "unknown key 'suite.limt'"),
    # plugin params are typed by the plugin's Config schema when Hydra composes
    (["judge.ocr.tie_margin=abc"], "judge.ocr.tie_margin=abc: Value 'abc' of type 'str' "
                                   "could not be converted to Float"),
    (["model.typeset.font_sise=3"], "did you mean 'model.typeset.min_font_size'?"),
])
def test_cli_refusals_are_one_line_exit_2(tmp_path, args, needle) -> None:
    proc = run_cli(["autojudge", *args, "logger=none", f"store.root={tmp_path}",
                    f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2
    assert_one_line_error(proc, needle)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """Offline, with a Hugging Face cache that holds nothing (whatever this machine has)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def diffusers_spy(monkeypatch):
    """Records every attempt to load a diffusers pipeline or generate with one."""
    from autojudge.generators.diffusers_local import DiffusersGenerator

    calls: list[str] = []

    def spy(name):
        def record(self, *args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called before the pre-flight checks refused the run")
        return record

    monkeypatch.setattr(DiffusersGenerator, "generate", spy("generate"))
    monkeypatch.setattr(DiffusersGenerator, "pipeline", spy("pipeline"))
    return calls


def test_diffusers_model_without_cached_weights_is_refused_offline(
        compose, tmp_path, empty_hf_cache, diffusers_spy) -> None:
    with pytest.raises(AutojudgeError) as info:
        pipeline.run(compose(["model=[sd15,blank]", "logger=none", "progress=false",
                              f"store.root={tmp_path / 'store'}"]), tmp_path / "run")
    assert diffusers_spy == []
    assert not (tmp_path / "run" / "leaderboard.json").exists()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("model 'sd15' needs weights for stable-diffusion-v1-5/")
    assert "not in the Hugging Face cache and the hub is offline" in message
    assert "model.sd15.model=/local/folder" in message


@pytest.mark.parametrize("extra, needle", [
    (["model=[sd15,blank]"], "set model.sd15.model=/local/folder"),
    (["model=[sdxl_turbo,flux_schnell_local]"], "model 'sdxl_turbo' needs weights for "
                                                "stabilityai/sdxl-turbo"),
])
def test_diffusers_refusal_on_the_command_line_is_one_line_exit_2(tmp_path, extra,
                                                                   needle) -> None:
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    proc = run_cli(["autojudge", *extra, "logger=none", f"store.root={tmp_path / 'store'}",
                    f"hydra.run.dir={tmp_path / 'run'}"],
                   env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert proc.returncode == 2
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "store" / "blobs").exists() or not any(
        (tmp_path / "store" / "blobs").rglob("*.png"))


def test_local_tiny_pipeline_passes_preflight_offline(compose, tmp_path, empty_hf_cache,
                                                      diffusers_spy) -> None:
    from tiny_diffusers import build_tiny_sd

    from autojudge.store.index import Store

    folder = build_tiny_sd(tmp_path / "tiny_sd")
    cfg = compose(["model=[sd15,blank]", f"model.sd15.model={folder}", "logger=none",
                   "progress=false", f"store.root={tmp_path / 'store'}"])
    with Store(tmp_path / "store") as store:
        exp = pipeline.prepare(cfg, pipeline.plain_config(cfg), store)
    assert set(exp.generators) == {"sd15", "blank"}
    assert diffusers_spy == []  # checked without loading anything
