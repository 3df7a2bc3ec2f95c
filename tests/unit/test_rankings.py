"""K-wise battles: rank breaking rules, validation, the pairwise path as K = 2, mixed fits,
agreement with the exact Plackett-Luce likelihood, and clustered CIs that cover."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp

from autojudge.errors import AutojudgeError
from autojudge.ratings import RatingConfig, rate_battles
from autojudge.ratings.bradley_terry import ELO_PER_NAT
from autojudge.ratings.rankings import (RankingCluster, break_rankings, consensus_pairs,
                                        fit_plackett_luce, pair_probability, rate_rankings,
                                        simulate_rankings, validate_rankings)
from autojudge.ratings.simulate import population_ratings


def triples(b) -> list[tuple]:
    return list(zip(b.model_a.tolist(), b.model_b.tolist(), b.winner.tolist()))


def test_full_order_with_a_tie_breaks_into_every_pair() -> None:
    b = break_rankings([["a", "b", "c", "d"]], [[1, 2, 2, 4]])
    assert triples(b) == [("a", "b", "model_a"), ("a", "c", "model_a"),
                          ("a", "d", "model_a"), ("b", "c", "tie"),
                          ("b", "d", "model_a"), ("c", "d", "model_a")]
    assert b.source_row.tolist() == [0] * 6


def test_best_of_four_and_top_two_never_pair_two_unranked() -> None:
    best = break_rankings([["a", "b", "c", "d"]], [[None, None, 1, None]])
    assert triples(best) == [("a", "c", "model_b"), ("b", "c", "model_b"),
                             ("c", "d", "model_a")]
    top2 = break_rankings([["a", "b", "c", "d"]], [[None, 2, 1, None]])
    assert triples(top2) == [("a", "b", "model_b"), ("a", "c", "model_b"),
                             ("b", "c", "model_b"), ("b", "d", "model_a"),
                             ("c", "d", "model_a")]


def test_ranks_need_not_be_dense_and_numpy_ints_are_ranks() -> None:
    b = break_rankings([["x", "y", "z"]], [[np.int64(7), 3, None]])
    assert triples(b) == [("x", "y", "model_b"), ("x", "z", "model_a"), ("y", "z", "model_a")]


@pytest.mark.parametrize("models, ranks, why", [
    (["a"], [1], "1 model(s); a ranking needs at least 2"),
    (["a", "a"], [1, 2], "model 'a' appears twice"),
    (["a", "b", "c"], [1, 2], "3 models but 2 ranks"),
    (["a", "b"], [0, 1], "rank 0 of model 'a' is not an integer >= 1"),
    (["a", "b"], [1.0, 2], "rank 1.0 of model 'a' is not an integer >= 1"),
    (["a", "b"], [True, 2], "rank True of model 'a'"),
    (["a", "b"], [None, None], "no ranked entry"),
    ("ab", [1, 2], "must be lists, not strings"),
])
def test_a_bad_ranking_is_one_error_naming_the_row(models, ranks, why) -> None:
    good = (["p", "q"], [1, 2])
    with pytest.raises(AutojudgeError) as err:
        validate_rankings([good[0], models], [good[1], ranks])
    msg = str(err.value)
    assert msg.startswith("bad ranking at row 1: ") and why in msg and "\n" not in msg
    with pytest.raises(AutojudgeError, match="row 1"):
        break_rankings([good[0], models], [good[1], ranks])


def test_k2_rankings_are_exactly_the_pairwise_path() -> None:
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d"]
    ma, mb, winner, prompt, models, ranks = [], [], [], [], [], []
    for k in range(300):
        i, j = rng.choice(4, size=2, replace=False)
        outcome = rng.choice(["model_a", "model_b", "tie"], p=[0.5, 0.35, 0.15])
        ma.append(names[i]); mb.append(names[j]); winner.append(str(outcome))
        prompt.append(f"p{k % 40}")
        models.append([names[i], names[j]])
        ranks.append({"model_a": [1, 2], "model_b": [2, 1], "tie": [1, 1]}[str(outcome)])
    cfg = RatingConfig(bootstrap_rounds=200, seed=3)
    assert rate_rankings(models, ranks, prompt, config=cfg) == \
        rate_battles(ma, mb, winner, prompt, config=cfg)
    assert rate_rankings(models, ranks, config=cfg) == rate_battles(ma, mb, winner,
                                                                    config=cfg)


def test_pairwise_and_kwise_mix_in_one_fit() -> None:
    rng = np.random.default_rng(1)
    truth = np.array([0.0, 60.0, 120.0, 180.0, 240.0])
    groups = np.array([rng.permutation(4)[:3] for _ in range(400)])  # models 0..3 only
    ranks = simulate_rankings(rng, truth, groups)
    models = [[f"m{k}" for k in g] for g in groups]
    # m4 meets the others only in pairwise battles
    opp = rng.integers(0, 4, 300)
    win = rng.random(300) < pair_probability(truth[4] - truth[opp])
    pa = ["m4"] * 300
    pb = [f"m{k}" for k in opp]
    pw = ["model_a" if w else "model_b" for w in win]
    cfg = RatingConfig(bootstrap_rounds=100)
    rows = rate_rankings(models, ranks, [f"p{k}" for k in range(400)], model_a=pa,
                         model_b=pb, winner=pw, pair_clusters=[f"q{k}" for k in range(300)],
                         config=cfg)
    broken = break_rankings(models, ranks, clusters=[f"p{k}" for k in range(400)])
    same = rate_battles(pa + broken.model_a.tolist(), pb + broken.model_b.tolist(),
                        pw + broken.winner.tolist(),
                        [f"q{k}" for k in range(300)] + broken.clusters.tolist(), config=cfg)
    assert rows == same
    assert [r["model"] for r in rows] == ["m4", "m3", "m2", "m1", "m0"]
    assert all(r["component"] == 0 for r in rows)
    assert rows[0]["battles"] == 300 and sum(r["battles"] for r in rows) == 2 * (300 + 1200)


def test_a_ranking_without_prompt_is_one_cluster_never_each_pair() -> None:
    rng = np.random.default_rng(2)
    groups = np.tile(np.arange(4), (60, 1))
    ranks = simulate_rankings(rng, [0.0, 50.0, 100.0, 150.0], groups, top=1)
    models = [["a", "b", "c", "d"]] * 60
    clusters = [None if k % 2 else f"p{k}" for k in range(60)]
    b = break_rankings(models, ranks, clusters=clusters)
    for row in range(60):
        ids = set(b.clusters[b.source_row == row].tolist())
        assert ids == ({RankingCluster(row)} if row % 2 else {f"p{row}"})
    cfg = RatingConfig(bootstrap_rounds=200)
    explicit = [f"p{k}" if k % 2 == 0 else ("row", k) for k in range(60)]
    assert rate_rankings(models, ranks, clusters, config=cfg) == \
        rate_rankings(models, ranks, explicit, config=cfg)


def test_consensus_of_two_calls_keeps_agreement_and_ties_the_rest() -> None:
    models = [["a", "b", "c"], ["a", "b", "c", "d"]]
    first = [[1, 2, 3], [1, None, None, None]]
    second = [[2, 1, 3], [None, 1, None, None]]
    b = consensus_pairs(models, first, second, clusters=["p", "q"])
    assert triples(b) == [("a", "b", "tie"), ("a", "c", "model_a"), ("b", "c", "model_a"),
                          ("a", "b", "tie")]
    assert b.clusters.tolist() == ["p", "p", "p", "q"]


def test_simulated_rankings_imply_bradley_terry_pairs_for_any_k() -> None:
    rng = np.random.default_rng(4)
    truth = np.array([0.0, 100.0, 150.0, 400.0])
    ranks = np.array(simulate_rankings(rng, truth, np.tile(np.arange(4), (40000, 1))))
    for i, j in combinations(range(4), 2):
        above = (ranks[:, i] < ranks[:, j]).mean()
        p = float(pair_probability(truth[i] - truth[j]))
        assert abs(above - p) < 4 * np.sqrt(p * (1 - p) / 40000)


def _pl_reference(groups: np.ndarray, ranks: list, m: int) -> np.ndarray:
    """The PL log-likelihood written out choice by choice, minimised by L-BFGS."""
    def nll(s):
        total = 0.0
        for g, r in zip(groups, ranks):
            order = [x for _, x in sorted((v, x) for v, x in zip(r, g) if v is not None)]
            rest = [x for v, x in zip(r, g) if v is None]
            for p, chosen in enumerate(order[:len(g) - 1]):
                pool = order[p:] + rest
                total += logsumexp(s[pool]) - s[chosen]
        return total
    s = minimize(nll, np.zeros(m), method="L-BFGS-B", options={"gtol": 1e-10}).x
    return (s - s.mean()) * ELO_PER_NAT + 1000.0


@pytest.mark.parametrize("top", [None, 2])
def test_plackett_luce_fit_is_the_likelihood_maximum(top) -> None:
    rng = np.random.default_rng(5)
    groups = np.array([rng.permutation(5)[:4] for _ in range(60)])
    ranks = simulate_rankings(rng, [0.0, 80.0, 160.0, 240.0, 320.0], groups, top=top)
    fit = fit_plackett_luce([[f"m{k}" for k in g] for g in groups], ranks, prior=1e-9)
    ref = _pl_reference(groups, ranks, 5)
    assert np.allclose([fit[f"m{k}"] for k in range(5)], ref, atol=0.05)


def test_plackett_luce_refuses_ties() -> None:
    with pytest.raises(AutojudgeError, match="row 1: tied ranks"):
        fit_plackett_luce([["a", "b"], ["a", "b", "c"]], [[1, 2], [1, 1, 3]])


@pytest.mark.parametrize("top", [None, 1])
def test_breaking_agrees_with_the_plackett_luce_mle_on_large_data(top) -> None:
    rng = np.random.default_rng(6 if top is None else 7)
    truth = np.array([0.0, 40.0, 90.0, 150.0, 220.0, 300.0])
    groups = np.array([rng.permutation(6)[:4] for _ in range(30000)])
    ranks = simulate_rankings(rng, truth, groups, top=top)
    models = [[f"m{k}" for k in g] for g in groups]
    pl = fit_plackett_luce(models, ranks, prior=1e-6)
    rows = rate_rankings(models, ranks, config=RatingConfig(bootstrap_rounds=0, prior=1e-6))
    broken = {r["model"]: r["rating"] for r in rows}
    centred = truth - truth.mean() + 1000.0
    for k in range(6):
        assert abs(broken[f"m{k}"] - pl[f"m{k}"]) < 3.0
        assert abs(broken[f"m{k}"] - centred[k]) < 12.0


def test_clustered_kwise_intervals_cover_the_population_ratings() -> None:
    """Coverage smoke (40 data sets): four models ranked together on every prompt with
    per-prompt effects sd 100; the board's 95% CIs should cover the value the estimator
    targets (all pairs' marginal win rates, as for pairwise battles)."""
    truth = np.array([1000.0, 1040.0, 1100.0, 1180.0])
    target = population_ratings(truth, prompt_sd=100.0)
    groups = np.tile(np.arange(4), (150, 1))
    models = [["m0", "m1", "m2", "m3"]] * 150
    hits = 0
    for k in range(40):
        rng = np.random.default_rng(100 + k)
        offsets = rng.normal(0.0, 100.0, (150, 4))
        ranks = simulate_rankings(rng, truth, groups, offsets=offsets)
        rows = rate_rankings(models, ranks, [f"p{p}" for p in range(150)],
                             config=RatingConfig(bootstrap_rounds=200, seed=k))
        for r in rows:
            hits += r["ci_low"] <= target[int(r["model"][1:])] <= r["ci_high"]
    assert hits / 160 >= 0.85


ranking = st.integers(2, 6).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=k, max_size=k)
    .filter(lambda r: any(v is not None for v in r)), st.permutations(range(k))))


@settings(max_examples=80, deadline=None)
@given(ranking)
def test_breaking_follows_the_ranks_whatever_the_listing_order(case) -> None:
    k, ranks, perm = case
    names = [f"n{i}" for i in range(k)]
    b = break_rankings([names], [ranks])
    n_ranked = sum(v is not None for v in ranks)
    assert len(b) == n_ranked * (n_ranked - 1) // 2 + n_ranked * (k - n_ranked)
    rank = dict(zip(names, ranks))
    for a, c, w in triples(b):
        ra, rc = (np.inf if rank[x] is None else rank[x] for x in (a, c))
        assert w == ("model_a" if ra < rc else "model_b" if ra > rc else "tie")
    relations = {(frozenset((a, c)), a if w == "model_a" else c if w == "model_b" else None)
                 for a, c, w in triples(b)}
    shuffled = break_rankings([[names[i] for i in perm]], [[ranks[i] for i in perm]])
    assert relations == {(frozenset((a, c)),
                          a if w == "model_a" else c if w == "model_b" else None)
                         for a, c, w in triples(shuffled)}
