"""The gate on logs where a degenerate path, intransitive preferences, a small sample or
the battle graph could make it claim more than the data give (issue: the gate's numbers
under stress). Full-size rates with Monte Carlo intervals: benchmarks/bench_statistics.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from studies import (gate_study, hard_cases, intransitive_matrix, matrix_study,
                     population_diff_of_matrix, regression_for, wilson)

from autojudge.battles.log import write_battle_log
from autojudge.cli import gate as gate_cli
from autojudge.ratings.gate_paths import head_to_head_bound, heterogeneity
from autojudge.ratings.gate_stats import rating_difference, student_interval

CASES = hard_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_hard_case_gets_the_verdict_its_data_support(name: str) -> None:
    battles, clusters, base, cand, expected, _ = CASES[name]
    res = rating_difference(battles, clusters, base, cand, rounds=400, margin=25.0)
    assert res.decide() == expected, res


def test_won_every_head_to_head_passes_on_the_common_opponent_interval() -> None:
    battles, clusters, base, cand, _, _ = CASES["won_every_head_to_head"]
    res = rating_difference(battles, clusters, base, cand, rounds=400, margin=25.0)
    bt = res.paths["bt"]
    direct = res.paths["direct"]
    # the separated path bounds one side only and carries no weight
    assert direct["separated"] and direct["ci_high"] is None and direct["weight"] == 0.0
    # never a narrow interval around the head-to-head logit (+1111 Elo here): the lower
    # bound is the common-opponent path's and the upper side is open
    assert res.ci_low == pytest.approx(bt["ci_low"]) and res.ci_high is None
    assert res.ci_low < bt["diff"] < direct["diff"]
    # the mirror: lost every head-to-head battle
    mirror = rating_difference(battles, clusters, cand, base, rounds=400, margin=25.0)
    assert mirror.ci_low is None and mirror.ci_high == pytest.approx(-res.ci_low, abs=0.5)
    assert mirror.decide() == "regression"


def test_intransitive_log_is_never_pass_and_says_why() -> None:
    battles, clusters, base, cand, _, _ = CASES["intransitive"]
    res = rating_difference(battles, clusters, base, cand, rounds=400, margin=25.0)
    assert res.decide() != "pass"
    assert res.diff is None and "not transitive" in res.disagreement
    # the interval shown holds every path's: the BT path's below, open above
    assert res.ci_low == pytest.approx(res.paths["bt"]["ci_low"]) and res.ci_high is None
    assert res.paths["bt"]["ci_high"] < -25.0  # BT alone would say REGRESSION
    assert population_diff_of_matrix(intransitive_matrix()) < -25.0


def test_separated_head_to_head_bound_is_one_sided() -> None:
    battles, clusters, base, cand, _, _ = CASES["won_every_head_to_head"]
    bound, p_pass = head_to_head_bound(battles, clusters, cand, base, 0.95, 400 / np.log(10),
                                       25.0)
    assert bound > 500.0 and p_pass < 1e-6
    sim_b, sim_c, b, c, _, _ = CASES["linked_across_prompts_only"]
    assert head_to_head_bound(sim_b, sim_c, c, b, 0.95, 173.7, 25.0) is None  # never met


def test_heterogeneity_test_flags_paths_that_disagree_and_not_those_that_agree() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(0, 10, 2000)
    same = {"bt": (0.0, common + rng.normal(0, 3, 2000)),
            "direct": (2.0, common + rng.normal(0, 5, 2000))}
    assert heterogeneity(same, ["bt", "direct"], 100) > 0.5
    apart = {"bt": (0.0, same["bt"][1]), "direct": (40.0, same["direct"][1])}
    assert heterogeneity(apart, ["bt", "direct"], 100) < 1e-6
    assert heterogeneity(same, ["bt"], 100) == 1.0


def test_student_interval_agrees_with_its_p_values_and_widens_at_few_prompts() -> None:
    draws = np.random.default_rng(1).normal(-40.0, 10.0, 1000)
    for margin in (0.0, 10.0, 17.0, 19.0, 25.0, 40.0):
        low, high, p_reg, p_pass = student_interval(-40.0, draws, 15, 0.95, margin)
        # a claim is made exactly when the interval shows it
        assert (high < -margin) == (p_reg < 0.025) and (low > -margin) == (p_pass < 0.025)
        assert low < -40.0 < high
    wide = student_interval(-40.0, draws, 15, 0.95, 0.0)[1] - \
        student_interval(-40.0, draws, 15, 0.95, 0.0)[0]
    many = student_interval(-40.0, draws, 1000, 0.95, 0.0)
    assert wide > (many[1] - many[0]) * 1.1  # t(14) and sqrt(k/(k-1)) at 15 prompts
    assert student_interval(0.0, np.zeros(100), 20, 0.95, 0.0) is None  # no spread


@pytest.mark.slow  # a statistical study
def test_fifteen_prompts_keep_the_stated_error_rates_small_study() -> None:
    # 150 data sets each (full size, 800: benchmarks); bound = 2.5% + ~2 binomial sd
    at_50, at_25 = regression_for(-50.0), regression_for(-25.0)
    assert 55.0 < at_50 < 80.0  # prompt effects and ties compress BT ratings
    false_pass = gate_study(at_50, 150, n_prompts=15, margin=25.0, rounds=200, seed=21)
    false_reg = gate_study(at_25, 150, n_prompts=15, margin=25.0, rounds=200, seed=22)
    equal = gate_study(0.0, 150, n_prompts=15, rounds=200, seed=23)
    for res, key in ((false_pass, "pass"), (false_reg, "regression"), (equal, "regression")):
        assert res[key] <= 0.025 + 0.026, res


@pytest.mark.slow  # a statistical study
def test_holm_over_three_judges_small_study() -> None:
    res = gate_study(0.0, 150, judges=3, n_prompts=40, rounds=200, seed=24)
    assert res["regression"] <= 0.025 + 0.026, res


@pytest.mark.slow  # a statistical study
def test_intransitive_judge_small_study() -> None:
    res = matrix_study(intransitive_matrix(), 40, n_prompts=60, seeds=1, rounds=200, seed=5)
    assert res["pass"] == 0.0 and res["disagreement"] > 0.5, res


def test_wilson_interval() -> None:
    low, high = wilson(0, 800)
    assert low == 0.0 and 0.004 < high < 0.006
    low, high = wilson(20, 800)
    assert low < 0.025 < high


def _write_run(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True)
    write_battle_log(rows, path / "battles.jsonl")
    return path


def test_gate_names_no_shared_prompts_not_no_chain(tmp_path: Path, capsys) -> None:
    battles, clusters, base, cand, _, _ = CASES["linked_across_prompts_only"]
    names = np.array(battles.names, dtype=object)
    winner = np.where(battles.score == 1.0, "model_a", "model_b")
    rows = [{"model_a": a, "model_b": b, "winner": w, "judge": "ocr", "prompt_id": f"p{p}"}
            for a, b, w, p in zip(names[battles.ia], names[battles.ib], winner, clusters)]
    run = _write_run(tmp_path / "run", rows)
    code = gate_cli.main([str(run), "--baseline", "base", "--candidate", "cand"])
    out = capsys.readouterr().out
    assert code == 1 and "share no prompt" in out and "never linked" not in out
    assert "margin 25 Elo: the candidate may win as little as 46.4%" in out
    doc = json.loads((run / "gate.json").read_text())
    assert doc["checks"][0]["unlinked"] == "no_shared_prompts"
    assert doc["inputs"]["margin_win_rate"] == pytest.approx(0.4641, abs=1e-4)


def test_gate_on_intransitive_log_says_the_paths_disagree(tmp_path: Path, capsys) -> None:
    battles, clusters, base, cand, _, _ = CASES["intransitive"]
    names = np.array(battles.names, dtype=object)
    names[[base, cand]] = ["base", "cand"]
    winner = np.where(battles.score == 1.0, "model_a",
                      np.where(battles.score == 0.0, "model_b", "tie"))
    rows = [{"model_a": a, "model_b": b, "winner": w, "judge": "vlm", "prompt_id": f"p{p}"}
            for a, b, w, p in zip(names[battles.ia], names[battles.ib], winner, clusters)]
    run = _write_run(tmp_path / "run", rows)
    code = gate_cli.main([str(run), "--baseline", "base", "--candidate", "cand",
                      "--bootstrap", "300"])
    out = capsys.readouterr().out
    assert code == 1 and "INCONCLUSIVE" in out.splitlines()[-1]
    assert "not transitive" in out and "direct (separated) >=" in out
    check = json.loads((run / "gate.json").read_text())["checks"][0]
    assert check["diff"] is None and check["disagreement"]
    assert {"ci_low", "ci_high", "diff"} <= set(check["paths"]["bt"])


def test_group_markers_show_in_rate_and_the_run_table(tmp_path: Path, capsys) -> None:
    from rich.console import Console

    from autojudge.cli.rate import main as rate_main
    from autojudge.report.terminal import board_table

    rows = [{"model_a": a, "model_b": b, "winner": w, "prompt_id": f"p{k}"}
            for k in range(20) for a, b, w in (("x", "y", "model_a" if k % 3 else "model_b"),
                                               ("u", "v", "model_b" if k % 3 else "model_a"))]
    log = tmp_path / "two_groups.jsonl"
    write_battle_log(rows, log)
    assert rate_main([str(log), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "[g1]" in out and "[g2]" in out and "[gN] group N" in out
    board = {"judge": "ocr", "tag": None, "method": "bt", "n_battles": 40,
             "connected": False, "n_components": 2,
             "models": [{"model": m, "rating": 1000.0, "ci_low": 950.0, "ci_high": 1050.0,
                         "rank": 1, "elo": 1000.0, "battles": 20, "wins": 10, "losses": 10,
                         "ties": 0, "component": c} for m, c in (("x", 0), ("u", 1))]}
    console = Console(record=True, width=130)
    console.print(board_table(board, {}, 0.95))
    text = console.export_text()
    assert "x [g1]" in text and "u [g2]" in text
