"""Sweeps inside one run (model variants), the sweep objective, and the checks that stop
a sweep before any work (Optuna without an objective or minimising it)."""
from __future__ import annotations

import pytest
from helpers import assert_one_line_error, run_cli

from autojudge.errors import AutojudgeError
from autojudge.sweeps.variants import (check_objective, check_sweeper, compute_objective,
                                       expand_variants, task_return)
from autojudge.types import Battle


def test_variants_expand_to_labelled_models_in_order() -> None:
    models = {"sd15": {"kind": "diffusers", "steps": 20,
                       "sweep": {"guidance_scale": [3, 5.5], "scheduler": ["ddim", "euler"]}},
              "blank": {"kind": "blank"}}
    out = expand_variants(models)
    assert list(out) == ["sd15[guidance_scale=3,scheduler=ddim]",
                         "sd15[guidance_scale=3,scheduler=euler]",
                         "sd15[guidance_scale=5.5,scheduler=ddim]",
                         "sd15[guidance_scale=5.5,scheduler=euler]", "blank"]
    assert out["sd15[guidance_scale=5.5,scheduler=euler]"] == {
        "kind": "diffusers", "steps": 20, "guidance_scale": 5.5, "scheduler": "euler"}
    # the same spec from the run's sweep.variants (for typed plugin nodes)
    same = expand_variants({"t": {"kind": "typeset"}}, {"t": {"max_font_size": [8, 24]}})
    assert list(same) == ["t[max_font_size=8]", "t[max_font_size=24]"]
    assert expand_variants({"t": {"kind": "typeset", "sweep": {"lora_scales": [[0.5], [1.0]]}}}) \
        .keys() == {"t[lora_scales=[0.5]]", "t[lora_scales=[1]]"}


@pytest.mark.parametrize("models,variants,needle", [
    ({"t": {"kind": "typeset", "sweep": {"max_font_size": 8}}}, None, "non-empty list"),
    ({"t": {"kind": "typeset", "sweep": {"kind": ["a", "b"]}}}, None, "cannot be swept"),
    ({"t": {"kind": "typeset"}}, {"x": {"a": [1]}}, "sweep.variants.x"),
    ({"t": {"kind": "typeset", "sweep": {"a": [1, 1]}}}, None, "appears twice"),
])
def test_bad_variant_specs_are_one_line(models, variants, needle) -> None:
    with pytest.raises(AutojudgeError, match=needle.replace("[", r"\[")):
        expand_variants(models, variants)


def _document(ratings: dict, cost: float = 0.0) -> dict:
    rows = [{"model": m, "rating": r, "component": 0, "battles": 4} for m, r in ratings.items()]
    return {"run": {"models": list(ratings)},
            "boards": [{"judge": "ocr", "tag": None, "models": rows},
                       {"judge": "all", "tag": None, "models": rows}],
            "models": [{"model": m, "cost_per_image_usd": cost if m == "t" else 0.0}
                       for m in ratings]}


def _battles() -> list[Battle]:
    return [Battle("t", "ref", "model_a", "ocr", "p1", 0, (), 0.9, 0.1),
            Battle("ref", "t", "tie", "ocr", "p2", 0, (), 0.5, 0.5),
            Battle("ref", "t", "model_a", "ocr", "p3", 0, (), 0.8, 0.2),
            Battle("t", "other", "model_a", "ocr", "p1", 0, (), 0.9, 0.0)]


def test_objectives_measure_the_target_against_the_reference() -> None:
    doc = _document({"t": 1100.0, "ref": 1000.0, "other": 900.0})
    base = {"reference": "ref", "target": "t", "judge": "ocr"}
    rating = compute_objective({"sweep": {**base, "objective": "rating"}}, doc, _battles())
    assert rating["value"] == pytest.approx(100.0) and rating["direction"] == "maximize"
    win = compute_objective({"sweep": {**base, "objective": "win_rate"}}, doc, _battles())
    assert win["value"] == pytest.approx(1.5 / 3) and win["n"] == 3
    score = compute_objective({"sweep": {**base, "objective": "score"}}, doc, _battles())
    assert score["value"] == pytest.approx((0.8 + 0.0 - 0.6) / 3)
    assert compute_objective({"sweep": {}}, doc, _battles()) is None


def test_cost_weight_and_budget() -> None:
    doc = _document({"t": 1100.0, "ref": 1000.0}, cost=0.02)
    sweep = {"reference": "ref", "objective": "rating", "judge": "ocr"}
    weighted = compute_objective({"sweep": {**sweep, "cost_weight": 1000}}, doc, [])
    assert weighted["value"] == pytest.approx(100.0 - 20.0)
    over = compute_objective({"sweep": {**sweep, "max_cost_per_image_usd": 0.01}}, doc, [])
    assert over["value"] is None and over["over_budget"] and "over budget" in over["reason"]
    assert task_return({"run": {"objective": over}}) == float("-inf")
    assert task_return({"run": {"objective": weighted}}) == pytest.approx(80.0)
    assert task_return({"run": {}}) is None


@pytest.mark.parametrize("sweep,needle", [
    ({"reference": "nope"}, "sweep.reference='nope'"),
    ({"reference": "a"}, "sweep.target is not set"),
    ({"reference": "a", "target": "b", "objective": "best"}, "sweep.objective"),
    ({"reference": "a", "target": "b", "judge": "clip"}, "sweep.judge='clip'"),
    ({"reference": "a", "target": "b", "objective": "score"}, "pointwise judge"),
    ({"reference": "a", "target": "b", "cost_weight": -1}, "sweep.cost_weight"),
])
def test_objective_settings_are_checked_before_any_work(sweep, needle) -> None:
    config = {"model": {"a": {}, "b": {}, "c": {}}, "judge": {"ocr": {}}, "sweep": sweep}
    with pytest.raises(AutojudgeError, match=needle.replace("[", r"\[")):
        check_objective(config)


def test_optuna_needs_an_objective_and_maximize() -> None:
    optuna = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
              "direction": "minimize"}
    with pytest.raises(AutojudgeError, match="needs an objective"):
        check_sweeper(optuna, {"sweep": {}})
    with pytest.raises(AutojudgeError, match="direction=maximize"):
        check_sweeper(optuna, {"sweep": {"reference": "blank"}})
    check_sweeper({**optuna, "direction": "maximize"}, {"sweep": {"reference": "blank"}})
    check_sweeper({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
                  {"sweep": {}})


def test_cli_refuses_an_optuna_sweep_without_objective(tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    proc = run_cli(["autojudge", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
                    "model.typeset.max_font_size=choice(8,24)", f"hydra.sweep.dir={tmp_path}",
                    f"store.root={tmp_path / 's'}", "logger=none", "progress=false"])
    assert proc.returncode == 2
    assert "needs an objective" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "s").rglob("*.png")), "work started before the check"


@pytest.mark.slow  # a whole run of the variants
def test_cli_runs_variants_as_models(tmp_path) -> None:
    proc = run_cli(["autojudge", "model=[typeset,blank]", "+model.typeset.sweep.max_font_size=[12,24]",
                    "model.typeset.width=128", "model.typeset.height=128",
                    "suite.tags=[text_rendering]", "suite.limit=2", f"store.root={tmp_path / 's'}",
                    f"hydra.run.dir={tmp_path / 'run'}", "logger=none", "progress=false",
                    "ratings.bootstrap_rounds=20", "report.html=false"])
    assert proc.returncode == 0, proc.stderr
    assert "typeset[max_font_size=24]" in proc.stdout  # not eaten as terminal markup
    assert not (tmp_path / "run" / "report.html").exists()
    assert_one_line_error(run_cli(["autojudge", "+model.typeset.sweep.max_font_size=8",
                                   f"store.root={tmp_path / 's'}", "logger=none",
                                   f"hydra.run.dir={tmp_path / 'run2'}"]), "non-empty list")


def test_compare_labels_models_by_config_not_by_name(tmp_path) -> None:
    from autojudge.sweeps.pool_jobs import Job, pool_models

    def job(name: str, models: dict, swept: dict) -> Job:
        return Job(tmp_path / name, {"model": models}, {}, [], swept)

    jobs = [job("0", {"t": {"k": 1, "w": 8}, "b": {"k": 0}, "b2": {"k": 0}}, {"model.t.k": 1}),
            job("1", {"t": {"k": 2, "w": 8}, "b": {"k": 0}}, {"model.t.k": 2}),
            job("2", {"t": {"k": 2, "w": 9}}, {}),  # no swept override names it
            job("3", {"t[k=1]": {"k": 1, "w": 8}}, {})]  # a pooled output, pooled again
    pooled, mapping = pool_models(jobs)
    assert list(pooled) == ["t[k=1,w=8]", "t[k=2,w=8]", "t[k=2,w=9]", "b", "b2"]
    assert mapping[(3, "t[k=1]")] == mapping[(0, "t")]  # equal config: one model
    assert mapping[(0, "b")] == mapping[(1, "b")] == "b"
    assert mapping[(0, "b2")] == "b2"  # an A/A copy inside one job stays two models
