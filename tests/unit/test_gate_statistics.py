"""Gate statistics on simulated battles: coverage, false alarms, power, clustered vs naive.

Full-size acceptance runs (200 coverage runs, 1000 false-alarm runs, power curve) are in
benchmarks/bench_statistics.py; these run the same studies smaller, with tolerances
widened for the smaller Monte-Carlo sample (binomial sd shown beside each bound).
"""
from __future__ import annotations

import numpy as np
import pytest
from studies import coverage_study, gate_study

from autojudge.errors import AutojudgeError
from autojudge.experiment.gate import holm
from autojudge.ratings import fit_bt
from autojudge.ratings.bradley_terry import encode_battles
from autojudge.ratings.gate_stats import rating_difference, shared_prompt_mask
from autojudge.ratings.simulate import population_ratings, simulate_battles, simulate_scores


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


@pytest.mark.slow  # a statistical study
def test_clustered_ci_covers_and_naive_undercovers() -> None:
    # 120 runs: binomial sd of a 95% coverage is 2%; bounds at about -2.5 / +2 sd.
    res = coverage_study(120, rounds=400, seed=3)
    assert 0.90 <= res["clustered"] <= 0.99, res
    assert res["naive"] < res["clustered"], res
    assert res["mean_width_naive"] < res["mean_width_clustered"], res


@pytest.mark.slow  # a statistical study
def test_gate_false_alarm_rate_on_equal_models_is_at_most_five_percent() -> None:
    res = gate_study(0.0, 300, rounds=300, seed=7)
    # nominal 2.5% (the two-sided CI must exclude 0); 300 runs: sd of 2.5% is 0.9%.
    assert res["regression"] <= 0.05, res


@pytest.mark.slow  # a statistical study
def test_holm_keeps_three_judges_family_wise_false_alarms_at_most_five_percent() -> None:
    holm = gate_study(0.0, 200, judges=3, rounds=300, seed=17)
    raw = gate_study(0.0, 200, judges=3, rounds=300, seed=17, correction="none")
    assert holm["regression"] <= 0.05, holm
    assert holm["regression"] <= raw["regression"]


@pytest.mark.slow  # a statistical study
def test_pass_is_never_given_below_the_margin() -> None:
    # true regression 25 points beyond the margin: a PASS would be a false claim
    res = gate_study(50.0, 150, margin=25.0, rounds=300, seed=11)
    assert res["pass"] <= 0.025 + 0.02, res
    # and equal models with a margin pass most of the time at 400 prompts
    ok = gate_study(0.0, 100, margin=50.0, rounds=300, seed=12)
    assert ok["pass"] >= 0.8, ok


@pytest.mark.slow  # a statistical study
def test_gate_catches_a_50_point_regression_with_400_prompts() -> None:
    res = gate_study(50.0, 100, rounds=300, seed=8)
    assert res["regression"] >= 0.80, res
    small = gate_study(10.0, 60, rounds=200, seed=9)
    assert small["regression"] < res["regression"]


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.2]) == [0.2] and holm([]) == []


def test_models_never_linked_are_inconclusive_both_ways() -> None:
    # base only met oppA, cand only met oppB (on the same prompts): no chain links them
    a = ["base"] * 40 + ["cand"] * 40
    b = ["oppA"] * 40 + ["oppB"] * 40
    w = ["model_a"] * 30 + ["model_b"] * 10 + ["model_b"] * 30 + ["model_a"] * 10
    battles = encode_battles(a, b, w)
    prompts = np.arange(80) % 40
    for base, cand in (("base", "cand"), ("cand", "base")):
        res = rating_difference(battles, prompts, battles.names.index(base),
                                battles.names.index(cand), rounds=300, margin=25)
        assert not res.linked and res.method == "unlinked"
        assert res.diff is None and res.ci_low is None and res.ci_high is None
        assert res.decide() == "inconclusive"


def test_candidate_that_lost_every_battle_is_a_regression_with_an_open_side() -> None:
    battles = encode_battles(["base"] * 30, ["cand"] * 30, ["model_a"] * 30)
    prompts = np.arange(30)
    base, cand = battles.names.index("base"), battles.names.index("cand")
    res = rating_difference(battles, prompts, base, cand, rounds=300, margin=25)
    assert res.method == "profile" and res.ci_low is None and res.diff is None
    assert res.ci_high is not None and res.ci_high < -25
    assert res.decide() == "regression"
    won = rating_difference(battles, prompts, cand, base, rounds=300, margin=25)
    assert won.ci_high is None and won.ci_low > -25 and won.decide() == "pass"


def test_all_ties_give_a_likelihood_interval_not_a_point() -> None:
    battles = encode_battles(["base"] * 40, ["cand"] * 40, ["tie"] * 40)
    res = rating_difference(battles, np.arange(40), 0, 1, rounds=300, margin=25)
    assert res.method == "profile" and res.ci_low < -25 < 0 < 25 < res.ci_high
    assert res.decide() == "inconclusive"
    wide = rating_difference(battles, np.arange(40), 0, 1, rounds=300, margin=200)
    assert wide.decide() == "pass"


def test_score_path_used_for_pointwise_judges_and_narrows_the_ci() -> None:
    sim = simulate_scores([1000.0, 950.0, 1100.0, 900.0], 400, prompt_sd=100.0, seed=1)
    b = sim.battles
    scores = {"score_a": sim.score_a, "score_b": sim.score_b, "seed": b.seed.astype(float)}
    new = rating_difference(b.battles(), b.prompt, 0, 1, rounds=400, scores=scores)
    old = rating_difference(b.battles(), b.prompt, 0, 1, rounds=400, paths=False)
    assert set(new.paths) == {"bt", "direct", "score"} and new.paths["score"]["weight"] > 0
    assert new.ci_high - new.ci_low < old.ci_high - old.ci_low
    assert abs(sum(p["weight"] for p in new.paths.values()) - 1.0) < 1e-3
    # a pairwise judge's numbers (one image, several scores) do not count as scores
    jitter = dict(scores, score_a=scores["score_a"] + np.linspace(0, 1e-3, len(b.ia)))
    other = rating_difference(b.battles(), b.prompt, 0, 1, rounds=100, scores=jitter)
    assert "score" not in other.paths


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
    assert res.decide(min_prompts=10) == "regression"
    assert res.decide(min_prompts=50) == "inconclusive"
    assert res.decide(regression_p=0.5) == "inconclusive"  # e.g. after Holm
    lenient = rating_difference(sim.battles(), sim.prompt, 0, 1, rounds=200, margin=1000.0)
    assert lenient.decide(min_prompts=10) == "pass"
    assert lenient.ci_low > -1000.0
    assert res.ci_low <= res.diff <= res.ci_high
    with pytest.raises(AutojudgeError, match="same model"):
        rating_difference(sim.battles(), sim.prompt, 1, 1)
    with pytest.raises(AutojudgeError, match="margin"):
        rating_difference(sim.battles(), sim.prompt, 0, 1, margin=-1)
    again = rating_difference(sim.battles(), sim.prompt, 0, 1, rounds=200)
    assert again == res  # explicit seed: deterministic
