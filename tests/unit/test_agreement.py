"""Judge-vs-judge agreement: orientation, ties, repeated votes, seeds, kappa, CI, ranks."""
from __future__ import annotations

import numpy as np
import pytest

from autojudge.ratings.agreement import (agreement_table, battle_keys, pairwise_agreement,
                                         rank_correlation)


def keys(rows, seeds=True):
    p, s, a, b, w = zip(*rows)
    return battle_keys(list(p), list(s) if seeds else None, list(a), list(b), list(w))


def test_orientation_is_normalised_and_ties_are_explicit() -> None:
    j1 = keys([("p1", 0, "x", "y", "model_a"), ("p2", 0, "x", "y", "tie"),
               ("p3", 0, "y", "z", "model_b"), ("p4", 0, "x", "z", "model_a")])
    j2 = keys([("p1", 0, "y", "x", "model_b"),   # same verdict, swapped sides
               ("p2", 0, "x", "y", "model_a"),   # tie vs decisive
               ("p3", 0, "z", "y", "model_a"),   # same (z wins)
               ("p4", 0, "x", "z", "model_b")])  # disagree
    res = pairwise_agreement(j1, j2, rounds=200)
    assert res["n_shared"] == 4
    assert res["agreement"] == pytest.approx(2 / 4)
    assert res["decisive_agreement"] == pytest.approx(2 / 3)
    assert res["ci_low"] <= res["agreement"] <= res["ci_high"]


def test_only_same_prompt_seed_and_pair_are_shared() -> None:
    j1 = keys([("p1", 0, "x", "y", "model_a"), ("p1", 1, "x", "y", "model_a"),
               ("p2", 0, "x", "z", "model_a")])
    j2 = keys([("p1", 0, "x", "y", "model_a"), ("p1", 2, "x", "y", "model_b"),
               ("p2", 0, "x", "y", "model_a")])
    res = pairwise_agreement(j1, j2, rounds=0)
    assert res["n_shared"] == 1 and res["agreement"] == 1.0 and res["ci_low"] is None


def test_votes_without_seed_match_every_seed_and_repeated_votes_are_frequencies() -> None:
    judge = keys([("p1", 0, "x", "y", "model_a"), ("p1", 1, "x", "y", "model_a")])
    human = keys([("p1", None, "x", "y", "model_a"), ("p1", None, "y", "x", "model_a"),
                  ("p1", None, "x", "y", "model_a"), ("p1", None, "x", "y", "tie")],
                 seeds=True)
    res = pairwise_agreement(judge, human, rounds=0)
    # judge says x (both seeds); humans: x twice, y once, tie once -> 2/4 agree
    assert res["n_shared"] == 1 and res["agreement"] == pytest.approx(0.5)
    assert res["decisive_agreement"] == pytest.approx(2 / 3)


def test_kappa_is_one_for_identical_and_near_zero_for_independent_judges() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    prompts = [f"p{k}" for k in range(n)]
    w1 = rng.choice(["model_a", "model_b", "tie"], n, p=[0.45, 0.45, 0.1])
    w2 = rng.choice(["model_a", "model_b", "tie"], n, p=[0.45, 0.45, 0.1])
    a = battle_keys(prompts, [0] * n, ["x"] * n, ["y"] * n, w1)
    b = battle_keys(prompts, [0] * n, ["x"] * n, ["y"] * n, w2)
    same = pairwise_agreement(a, a, rounds=0)
    assert same["kappa"] == pytest.approx(1.0) and same["agreement"] == 1.0
    indep = pairwise_agreement(a, b, rounds=300)
    assert abs(indep["kappa"]) < 0.05
    assert indep["ci_low"] < 0.415 < indep["ci_high"]  # 0.45^2*2 + 0.1^2 = 0.415


def test_nothing_shared_gives_none() -> None:
    a = keys([("p1", 0, "x", "y", "model_a")])
    b = keys([("p2", 0, "x", "y", "model_a")])
    res = pairwise_agreement(a, b)
    assert res["n_shared"] == 0 and res["agreement"] is None and res["kappa"] is None


def test_rank_correlation_over_common_models() -> None:
    same = rank_correlation({"a": 1, "b": 2, "c": 3}, {"a": 10, "b": 20, "c": 30, "d": 0})
    assert same == {"n_models": 3, "kendall_tau": 1.0, "spearman": 1.0}
    rev = rank_correlation({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1})
    assert rev["kendall_tau"] == -1.0 and rev["spearman"] == -1.0
    assert rank_correlation({"a": 1}, {"a": 2})["kendall_tau"] is None


def test_agreement_table_rows_for_every_pair() -> None:
    k = keys([("p1", 0, "x", "y", "model_a")])
    rows = agreement_table({"j1": k, "j2": k, "human": k},
                           {"j1": {"x": 2, "y": 1}, "j2": {"x": 1, "y": 2}}, rounds=10)
    assert [(r["judge_a"], r["judge_b"]) for r in rows] == [("j1", "j2"), ("j1", "human"),
                                                           ("j2", "human")]
    assert rows[0]["kendall_tau"] == -1.0 and rows[1]["kendall_tau"] is None
    for key in ("n_shared", "agreement", "ci_low", "ci_high", "decisive_agreement", "kappa",
                "kendall_tau", "spearman"):
        assert key in rows[0]
