"""Gate statistics on simulated battles: coverage, false alarms, power, clustered vs naive.

Full-size acceptance runs (200 coverage runs, 1000 false-alarm runs, power curve) are in
benchmarks/bench_statistics.py; these run the same studies smaller, with tolerances
widened for the smaller Monte-Carlo sample (binomial sd shown beside each bound).
"""
from __future__ import annotations

import numpy as np
import pytest

from autojudge.errors import AutojudgeError
from autojudge.ratings import fit_bt
from autojudge.ratings.compare import rating_difference, shared_prompt_mask
from autojudge.ratings.simulate import (coverage_study, gate_study, population_ratings,
                                        simulate_battles)


def test_simulation_is_seeded_and_shaped() -> None:
    a = simulate_battles([1000, 1100, 900], 5, seeds=2, prompt_sd=50, runs=3, seed=4)
    b = simulate_battles([1000, 1100, 900], 5, seeds=2, prompt_sd=50, runs=3, seed=4)
    assert a.score.shape == (3, 5 * 2 * 3)
    np.testing.assert_array_equal(a.score, b.score)
    assert set(np.unique(a.prompt)) == set(range(5))
    assert a.winners(0).tolist()[:1][0] in ("model_a", "model_b", "tie")


def test_population_ratings_match_a_huge_sample() -> None:
    ratings = [1000.0, 950.0, 1150.0]
    pop = population_ratings(ratings, prompt_sd=150.0, tie_rate=0.1)
    # prompt effects compress the marginal ratings toward the mean
    assert abs(pop[2] - pop[1]) < 200.0 and pop[2] > pop[0] > pop[1]
    sim = simulate_battles(ratings, 40_000, prompt_sd=150.0, tie_rate=0.1, seed=1)
    fit = fit_bt(np.array(sim.names)[sim.ia], np.array(sim.names)[sim.ib], sim.winners())
    got = np.array([fit[n] for n in sim.names])
    np.testing.assert_allclose(got, pop, atol=6.0)
    np.testing.assert_allclose(population_ratings(ratings), np.array(ratings) -
                               np.mean(ratings) + 1000.0, atol=0.01)


def test_clustered_ci_covers_and_naive_undercovers() -> None:
    # 120 runs: binomial sd of a 95% coverage is 2%; bounds at about -2.5 / +2 sd.
    res = coverage_study(120, rounds=400, seed=3)
    assert 0.90 <= res["clustered"] <= 0.99, res
    assert res["naive"] < res["clustered"], res
    assert res["mean_width_naive"] < res["mean_width_clustered"], res


def test_gate_false_alarm_rate_on_equal_models_is_at_most_five_percent() -> None:
    res = gate_study(0.0, 300, rounds=300, seed=7)
    # nominal 2.5% (the two-sided CI must exclude 0); 300 runs: sd of 2.5% is 0.9%.
    assert res["regression"] <= 0.05, res


def test_gate_catches_a_50_point_regression_with_400_prompts() -> None:
    res = gate_study(50.0, 100, rounds=300, seed=8)
    assert res["regression"] >= 0.80, res
    small = gate_study(10.0, 60, rounds=200, seed=9)
    assert small["regression"] < res["regression"]


def test_difference_is_paired_on_shared_prompts() -> None:
    sim = simulate_battles([1000.0, 1000.0, 900.0], 30, seed=2)
    keep = ~((sim.prompt < 10) & ((sim.ia == 1) | (sim.ib == 1)))
    battles = sim.battles()
    from autojudge.ratings.bradley_terry import Battles

    sub = Battles(battles.names, battles.ia[keep], battles.ib[keep], battles.score[keep])
    mask = shared_prompt_mask(sub, sim.prompt[keep], 0, 1)
    assert not mask[sim.prompt[keep] < 10].any() and mask[sim.prompt[keep] >= 10].all()
    res = rating_difference(sub, sim.prompt[keep], 0, 1, rounds=50)
    assert res.n_prompts == 20


def test_decision_rules() -> None:
    sim = simulate_battles([1000.0, 700.0, 900.0], 40, seed=5)
    res = rating_difference(sim.battles(), sim.prompt, 0, 1, rounds=200)
    assert res.diff < -150 and res.p_worse > 0.99
    assert res.decide(min_prompts=10, max_ci_width=1000) == "regression"
    assert res.decide(min_prompts=50, max_ci_width=1000) == "inconclusive"
    lenient = rating_difference(sim.battles(), sim.prompt, 0, 1, rounds=200, margin=1000.0)
    assert lenient.decide(min_prompts=10, max_ci_width=1000) == "pass"
    assert lenient.decide(min_prompts=10, max_ci_width=1) == "inconclusive"
    assert res.ci_low <= res.diff <= res.ci_high
    with pytest.raises(AutojudgeError, match="same model"):
        rating_difference(sim.battles(), sim.prompt, 1, 1)
    with pytest.raises(AutojudgeError, match="margin"):
        rating_difference(sim.battles(), sim.prompt, 0, 1, margin=-1)
    again = rating_difference(sim.battles(), sim.prompt, 0, 1, rounds=200)
    assert again == res  # explicit seed: deterministic
