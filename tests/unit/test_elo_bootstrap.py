"""Online Elo, prompt-clustered bootstrap CIs and the CI-aware rank."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from autojudge.ratings import (RatingConfig, bootstrap_bt, ci_rank, fit_bt, online_elo,
                               percentile_interval, rate_battles)
from autojudge.ratings import bootstrap as bootstrap_mod
from autojudge.ratings.bootstrap import cluster_codes


def test_elo_matches_hand_computed_example() -> None:
    # 1. a (1000) beats b (1000): E = 0.5, a += 4 * 0.5 -> a 1002, b 998.
    # 2. b (998) ties c (1000): E_b = 1 / (1 + 10**(2/400)) = 0.4971218004,
    #    b += 4 * (0.5 - E_b) = 0.0115127984 -> b 998.0115127984, c 999.9884872016.
    # 3. c (999.98849) as model_a loses to a (1002): E_c = 1 / (1 + 10**(2.01151/400))
    #    = 0.4971052, c -= 4 * E_c = 1.9884209 -> c 998.0000663, a 1003.9884209.
    r = online_elo(["a", "b", "c"], ["b", "c", "a"], ["model_a", "tie", "model_b"])
    assert r == pytest.approx({"a": 1003.9884209, "b": 998.0115128, "c": 998.0000663},
                              abs=1e-6)
    assert sum(r.values()) == pytest.approx(3000.0)


def fastchat_compute_elo(a: list[str], b: list[str], w: list[str], k: float = 4.0,
                         scale: float = 400.0, base: float = 10.0, init: float = 1000.0
                         ) -> dict[str, float]:
    """FastChat's compute_elo, verbatim in structure."""
    rating: dict[str, float] = defaultdict(lambda: init)
    for model_a, model_b, winner in zip(a, b, w):
        ra, rb = rating[model_a], rating[model_b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        sa = {"model_a": 1.0, "model_b": 0.0}.get(winner, 0.5)
        rating[model_a] += k * (sa - ea)
        rating[model_b] += k * (1 - sa - eb)
    return dict(rating)


def simulate(n: int, n_models: int, n_prompts: int, seed: int
             ) -> tuple[list[str], list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    strength = np.linspace(-1.0, 1.0, n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    p = 1.0 / (1.0 + np.exp(strength[b] - strength[a]))
    u = rng.random(n)
    w = np.where(u < 0.1, "tie", np.where(u < 0.1 + 0.9 * p, "model_a", "model_b"))
    names = [f"m{k}" for k in range(n_models)]
    prompts = rng.integers(0, n_prompts, n)
    return ([names[x] for x in a], [names[x] for x in b], w.tolist(),
            [f"p{x}" for x in prompts])


def test_elo_matches_fastchat_and_rate_battles_reports_it() -> None:
    a, b, w, _ = simulate(3000, 5, 50, seed=1)
    ref = fastchat_compute_elo(a, b, w)
    assert online_elo(a, b, w) == pytest.approx(ref, abs=1e-7)
    rows = rate_battles(a, b, w, config=RatingConfig(bootstrap_rounds=0))
    assert {r["model"]: r["elo"] for r in rows} == pytest.approx(ref, abs=1e-7)
    anchored = rate_battles(a, b, w, config=RatingConfig(bootstrap_rounds=0, anchor="m1"))
    elo = {r["model"]: r["elo"] for r in anchored}
    assert elo["m1"] == pytest.approx(1000.0)
    assert elo["m4"] - elo["m0"] == pytest.approx(ref["m4"] - ref["m0"])


def test_same_seed_same_ci_different_seed_differs() -> None:
    a, b, w, p = simulate(600, 4, 40, seed=2)
    one = bootstrap_bt(a, b, w, p, rounds=200, seed=7)
    two = bootstrap_bt(a, b, w, p, rounds=200, seed=7)
    other = bootstrap_bt(a, b, w, p, rounds=200, seed=8)
    assert np.array_equal(one.ratings, two.ratings)
    assert not np.allclose(one.interval()[0], other.interval()[0])
    rows1 = rate_battles(a, b, w, p, config=RatingConfig(bootstrap_rounds=100, seed=3))
    rows2 = rate_battles(a, b, w, p, config=RatingConfig(bootstrap_rounds=100, seed=3))
    assert rows1 == rows2


def correlated_prompts(n_prompts: int, per_prompt: int, seed: int
                       ) -> tuple[list[str], list[str], list[str], list[str]]:
    """Every battle of a prompt repeats the same pair and outcome: perfectly correlated."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    a, b, w, p = [], [], [], []
    for k in range(n_prompts):
        i = int(rng.integers(0, 3))
        j = (i + int(rng.integers(1, 3))) % 3
        win = "model_a" if rng.random() < (0.65 if i < j else 0.35) else "model_b"
        a += [names[i]] * per_prompt
        b += [names[j]] * per_prompt
        w += [win] * per_prompt
        p += [f"prompt-{k}"] * per_prompt
    return a, b, w, p


def test_clustered_resampling_is_wider_than_per_battle_for_correlated_prompts() -> None:
    a, b, w, p = correlated_prompts(60, 10, seed=4)
    clustered = bootstrap_bt(a, b, w, p, rounds=400, seed=0)
    per_battle = bootstrap_bt(a, b, w, None, rounds=400, seed=0)
    width_c = np.subtract(*clustered.interval()[::-1])
    width_b = np.subtract(*per_battle.interval()[::-1])
    # Ten identical battles per prompt: clusters carry a tenth of the information, so
    # the honest interval is ~sqrt(10) wider.
    assert (width_c > 2.0 * width_b).all()


def test_no_clusters_is_exactly_one_cluster_per_battle() -> None:
    a, b, w, _ = simulate(500, 4, 10, seed=5)
    none = bootstrap_bt(a, b, w, None, rounds=100, seed=1).ratings
    singles = bootstrap_bt(a, b, w, [f"id{k}" for k in range(500)], rounds=100, seed=1)
    assert np.array_equal(none, singles.ratings)


def brute_force_std(a: list[str], b: list[str], w: list[str], clusters: list, rounds: int,
                    seed: int) -> np.ndarray:
    """Textbook cluster bootstrap: draw cluster ids with replacement, refit each round."""
    rng = np.random.default_rng(seed)
    ids = sorted({c for c in clusters})
    members = {c: [k for k, x in enumerate(clusters) if x == c] for c in ids}
    names = sorted(set(a) | set(b))
    out = []
    for _ in range(rounds):
        rows = [k for c in rng.choice(len(ids), len(ids)) for k in members[ids[c]]]
        r = fit_bt([a[k] for k in rows], [b[k] for k in rows], [w[k] for k in rows],
                   models=names)
        out.append([r[m] for m in names])
    return np.std(out, axis=0)


def test_merged_units_match_textbook_cluster_bootstrap_in_distribution() -> None:
    # Mixed data: multi-battle prompts, many one-battle prompts (merged into type
    # units by the fast path) and a few self-battle-only prompts (an empty unit).
    a, b, w, p = simulate(300, 4, 30, seed=12)
    a2, b2, w2, _ = simulate(300, 4, 1, seed=13)
    a, b, w = a + a2 + ["m0"] * 5, b + b2 + ["m0"] * 5, w + w2 + ["tie"] * 5
    p = p + [f"single{k}" for k in range(300)] + [f"self{k}" for k in range(5)]
    fast = bootstrap_bt(a, b, w, p, rounds=2000, seed=0).ratings.std(axis=0)
    slow = brute_force_std(a, b, w, p, rounds=300, seed=1)
    assert fast == pytest.approx(slow, rel=0.2)


def test_fast_path_equals_refitting_each_resampled_data_set() -> None:
    a, b, w, p = simulate(300, 4, 25, seed=6)
    res = bootstrap_bt(a, b, w, p, rounds=6, seed=11)
    codes = cluster_codes(p, len(p))
    n_clusters = int(codes.max()) + 1
    assert np.bincount(codes).min() >= 2  # no one-battle clusters: units == clusters
    from autojudge.ratings.bootstrap import draw_counts

    draws = draw_counts(np.random.default_rng(11), n_clusters,
                        np.full(n_clusters, 1 / n_clusters), 6).astype(int)
    for r in range(6):
        times = draws[r, codes]
        ra = [x for x, t in zip(a, times) for _ in range(t)]
        rb = [x for x, t in zip(b, times) for _ in range(t)]
        rw = [x for x, t in zip(w, times) for _ in range(t)]
        direct = fit_bt(ra, rb, rw, models=res.models)
        assert res.ratings[r] == pytest.approx([direct[m] for m in res.models], abs=1e-6)


def test_dense_sparse_and_chunked_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, w, p = simulate(400, 5, 30, seed=7)
    base = bootstrap_bt(a, b, w, p, rounds=50, seed=3).ratings
    monkeypatch.setattr(bootstrap_mod, "_DENSE_MAX_BYTES", 0)
    monkeypatch.setattr(bootstrap_mod, "_CHUNK_BYTES", 1)
    assert bootstrap_bt(a, b, w, p, rounds=50, seed=3).ratings == pytest.approx(base,
                                                                                abs=1e-8)


def test_ci_contains_point_estimate_in_typical_data() -> None:
    a, b, w, p = simulate(3000, 6, 150, seed=8)
    rows = rate_battles(a, b, w, p, config=RatingConfig(bootstrap_rounds=300, seed=0))
    for r in rows:
        assert r["ci_low"] < r["rating"] < r["ci_high"]
        assert r["ci_high"] - r["ci_low"] < 150
    anchored = rate_battles(a, b, w, p, config=RatingConfig(bootstrap_rounds=100,
                                                            anchor="m0"))
    m0 = next(r for r in anchored if r["model"] == "m0")
    assert m0["ci_low"] == pytest.approx(1000.0) and m0["ci_high"] == pytest.approx(1000.0)


def test_percentile_interval_levels() -> None:
    samples = np.arange(1001, dtype=float)[:, None] * np.ones((1, 2))
    low, high = percentile_interval(samples, 0.9)
    assert low == pytest.approx([50.0, 50.0]) and high == pytest.approx([950.0, 950.0])


def test_missing_cluster_ids_are_clusters_of_their_own() -> None:
    codes = cluster_codes(["p", None, "q", float("nan"), "p", None], 6)
    assert codes[0] == codes[4]
    assert len({codes[1], codes[3], codes[5], codes[0], codes[2]}) == 5
    assert sorted(set(codes.tolist())) == list(range(5))


def test_ci_rank_rule() -> None:
    assert ci_rank([10, 5, 0], [12, 11, 4]) == [1, 1, 3]
    assert ci_rank([100, 90, 50, 0], [120, 110, 95, 60]) == [1, 1, 2, 3]
    assert ci_rank([1, 1], [1, 1]) == [1, 1]


def test_rate_battles_ranks_follow_ci_rule() -> None:
    a, b, w, p = simulate(1500, 6, 60, seed=9)
    rows = rate_battles(a, b, w, p, config=RatingConfig(bootstrap_rounds=200))
    for r in rows:
        expected = 1 + sum(o["ci_low"] > r["ci_high"] for o in rows)
        assert r["rank"] == expected
    assert rows[0]["rank"] == 1
    assert all(math.isfinite(r["ci_low"]) for r in rows)


@pytest.mark.parametrize("kind", ["none", "mixed"])
def test_units_on_average_reproduce_the_full_data(kind: str) -> None:
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.bootstrap import unit_matrix

    a, b, w, p = simulate(200, 4, 20, seed=14)
    p = p[:100] + [f"one{k}" for k in range(100)]
    battles = encode_battles(a + ["m1"], b + ["m1"], w + ["tie"])
    codes = None if kind == "none" else cluster_codes(p + ["self"], len(p) + 1)
    c, pvals, draws, mu = unit_matrix(battles, codes)
    expected = np.asarray((draws * pvals) @ c)  # E[W] @ C
    assert pvals.sum() == pytest.approx(1.0)
    assert expected[0::2] == pytest.approx(mu.eff_i) and expected[1::2] == pytest.approx(
        mu.eff_j)
