"""Bradley-Terry fit: agreement with logistic regression / FastChat, invariances, edges."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from autojudge.errors import AutojudgeError
from autojudge.ratings import (BOARD_KEYS, DEFAULT_PRIOR, RatingConfig, fit_bt, fit_strengths,
                               rate_battles, winner_to_score)
from autojudge.types import WINNERS

NAMES = [f"m{k}" for k in range(5)]
POINT = RatingConfig(bootstrap_rounds=0)
ELO_PER_NAT = 400.0 / math.log(10.0)


def simulate(n: int, n_models: int, seed: int, spread: float = 1.0, tie_rate: float = 0.15
             ) -> tuple[list[str], list[str], list[str]]:
    """Random BT battles with ties of both kinds."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, spread, n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    p = expit(strength[a] - strength[b])
    u = rng.random(n)
    winner = np.where(u < p, "model_a", "model_b").astype(object)
    tie = rng.random(n) < tie_rate
    winner[tie] = np.where(rng.random(int(tie.sum())) < 0.5, "tie", "tie (bothbad)")
    names = np.array([f"m{k}" for k in range(n_models)], dtype=object)
    return names[a].tolist(), names[b].tolist(), winner.tolist()


def sklearn_ratings(a: list[str], b: list[str], w: list[str], prior: float) -> dict[str, float]:
    """Reference: +1/-1 design, ties as two half-weight rows, penalty prior/2 |s|^2."""
    names = sorted(set(a) | set(b))
    pos = {n: k for k, n in enumerate(names)}
    rows, y, weight = [], [], []
    for ma, mb, win in zip(a, b, w):
        x = np.zeros(len(names))
        x[pos[ma]], x[pos[mb]] = 1.0, -1.0
        if win.startswith("tie"):
            rows += [x, x]
            y += [1, 0]
            weight += [0.5, 0.5]
        else:
            rows.append(x)
            y.append(int(win == "model_a"))
            weight.append(1.0)
    lr = LogisticRegression(fit_intercept=False, C=1.0 / prior, tol=1e-12, max_iter=10_000)
    lr.fit(np.array(rows), np.array(y), sample_weight=np.array(weight))
    r = lr.coef_[0] * ELO_PER_NAT
    return dict(zip(names, r - r.mean() + 1000.0))


def ratings_of(rows: list[dict]) -> dict[str, float]:
    return {r["model"]: r["rating"] for r in rows}


@pytest.mark.parametrize("prior,seed,n", [(DEFAULT_PRIOR, 0, 300), (1.0, 1, 120),
                                          (DEFAULT_PRIOR, 2, 40)])
def test_matches_sklearn_logistic_regression(prior: float, seed: int, n: int) -> None:
    a, b, w = simulate(n, 5, seed)
    ours = ratings_of(rate_battles(a, b, w, config=RatingConfig(bootstrap_rounds=0,
                                                                prior=prior)))
    ref = sklearn_ratings(a, b, w, prior)
    assert ours.keys() == ref.keys()
    for name in ref:
        assert ours[name] == pytest.approx(ref[name], abs=0.5)


def test_matches_sklearn_under_perfect_separation() -> None:
    a = ["top"] * 30 + ["base"] * 30 + ["top"] * 10
    b = ["mid"] * 30 + ["mid"] * 30 + ["base"] * 10
    w = ["model_a"] * 30 + ["model_b"] * 30 + ["model_a"] * 10
    ours = ratings_of(rate_battles(a, b, w, config=POINT))
    ref = sklearn_ratings(a, b, w, DEFAULT_PRIOR)
    for name in ref:
        assert ours[name] == pytest.approx(ref[name], abs=0.5)
    assert ours["top"] > ours["mid"] > ours["base"]


def fastchat_bt(a: list[str], b: list[str], w: list[str]) -> dict[str, float]:
    """FastChat's compute_bt: unique (a, b, outcome) rows, L-BFGS, no penalty."""
    names = sorted(set(a) | set(b))
    pos = {n: k for k, n in enumerate(names)}
    rows = np.array([[pos[x], pos[y], {"model_a": 2, "model_b": 0}.get(v, 1)]
                     for x, y, v in zip(a, b, w)])
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    matchups, outcomes, alpha = uniq[:, :2], uniq[:, 2] / 2.0, math.log(10.0)

    def loss_and_grad(r: np.ndarray) -> tuple[float, np.ndarray]:
        logits = alpha * (r[matchups[:, 0]] - r[matchups[:, 1]])
        p = expit(logits)
        loss = -(counts * (outcomes * np.log(p) + (1 - outcomes) * np.log(1 - p))).sum()
        g = -alpha * (outcomes - p) * counts
        grad = np.zeros_like(r)
        np.add.at(grad, matchups[:, 0], g)
        np.add.at(grad, matchups[:, 1], -g)
        return loss, grad

    res = minimize(loss_and_grad, np.zeros(len(names)), jac=True, method="L-BFGS-B",
                   options={"maxiter": 1000, "gtol": 1e-10, "ftol": 1e-15})
    r = res.x * 400.0
    return dict(zip(names, r - r.mean() + 1000.0))


def test_large_data_matches_unregularised_fastchat_fit() -> None:
    a, b, w = simulate(60_000, 6, seed=3)
    ours = ratings_of(rate_battles(a, b, w, config=POINT))
    ref = fastchat_bt(a, b, w)
    for name in ref:
        assert ours[name] == pytest.approx(ref[name], abs=0.5)


def test_fit_bt_equals_rate_battles_and_anchor_pins_model() -> None:
    a, b, w = simulate(200, 4, seed=4)
    plain = fit_bt(a, b, w)
    assert plain == pytest.approx(ratings_of(rate_battles(a, b, w, config=POINT)))
    assert sum(plain.values()) / len(plain) == pytest.approx(1000.0)
    anchored = ratings_of(rate_battles(a, b, w, config=RatingConfig(bootstrap_rounds=0,
                                                                    anchor="m2")))
    assert anchored["m2"] == pytest.approx(1000.0, abs=1e-9)
    for name in plain:
        assert anchored[name] - anchored["m0"] == pytest.approx(plain[name] - plain["m0"])


battle_st = st.lists(
    st.tuples(st.integers(0, 4), st.integers(1, 4), st.sampled_from(WINNERS)),
    min_size=1, max_size=40)


def unpack(battles: list[tuple[int, int, str]]) -> tuple[list[str], list[str], list[str]]:
    a = [NAMES[i] for i, _, _ in battles]
    b = [NAMES[(i + k) % 5] for i, k, _ in battles]
    return a, b, [w for _, _, w in battles]


def point(a: list[str], b: list[str], w: list[str]) -> dict[str, float]:
    return ratings_of(rate_battles(a, b, w, config=POINT, models=NAMES))


@settings(max_examples=60, deadline=None)
@given(battles=battle_st, data=st.data())
def test_battle_order_does_not_matter(battles: list, data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(len(battles))))
    a, b, w = unpack(battles)
    pa, pb, pw = unpack([battles[k] for k in order])
    assert point(pa, pb, pw) == pytest.approx(point(a, b, w), abs=1e-6)


FLIP = {"model_a": "model_b", "model_b": "model_a", "tie": "tie",
        "tie (bothbad)": "tie (bothbad)"}


@settings(max_examples=60, deadline=None)
@given(battles=battle_st, data=st.data())
def test_swapping_sides_with_flipped_winner_does_not_matter(battles: list,
                                                            data: st.DataObject) -> None:
    swap = data.draw(st.lists(st.booleans(), min_size=len(battles), max_size=len(battles)))
    a, b, w = unpack(battles)
    sa = [y if s else x for x, y, s in zip(a, b, swap)]
    sb = [x if s else y for x, y, s in zip(a, b, swap)]
    sw = [FLIP[v] if s else v for v, s in zip(w, swap)]
    assert point(sa, sb, sw) == pytest.approx(point(a, b, w), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(battles=battle_st, hero=st.integers(0, 4), rival=st.integers(1, 4),
       extra=st.integers(1, 30), hero_is_a=st.booleans())
def test_adding_wins_never_lowers_rating(battles: list, hero: int, rival: int, extra: int,
                                         hero_is_a: bool) -> None:
    a, b, w = unpack(battles)
    x, y = NAMES[hero], NAMES[(hero + rival) % 5]
    rows = {r["model"]: r for r in rate_battles(a, b, w, config=POINT, models=NAMES)}
    # Ratings compare only inside a component: new battles that merge two components
    # re-centre them, so the property holds for models already linked.
    assume(rows[x]["component"] is not None and rows[x]["component"] == rows[y]["component"])
    before = rows[x]["rating"]
    more = ([x] * extra, [y] * extra, ["model_a"] * extra) if hero_is_a else (
        [y] * extra, [x] * extra, ["model_b"] * extra)
    after = point(a + more[0], b + more[1], w + more[2])[NAMES[hero]]
    assert after >= before - 1e-6


@settings(max_examples=40, deadline=None)
@given(battles=battle_st, loser=st.integers(0, 4), losses=st.integers(0, 400))
def test_ratings_always_finite_even_with_perfect_separation(battles: list, loser: int,
                                                            losses: int) -> None:
    a, b, w = unpack(battles)
    # `loser` loses `losses` more battles against every other model: perfect separation
    # whenever the random battles give it no win.
    for k in range(1, 5):
        a += [NAMES[(loser + k) % 5]] * losses
        b += [NAMES[loser]] * losses
        w += ["model_a"] * losses
    rows = rate_battles(a, b, w, config=RatingConfig(bootstrap_rounds=20), models=NAMES)
    for r in rows:
        values = [r[k] for k in ("rating", "ci_low", "ci_high", "elo")]
        assert all(v is None or math.isfinite(v) for v in values)
        if r["rating"] is not None:
            assert math.isfinite(r["rating"]) and math.isfinite(r["elo"])
        if r["model"] == NAMES[loser] and losses and r["wins"] == 0 and r["ties"] == 0:
            assert r["separated"] and r["ci_low"] is None  # no lower bound from the data
    json.dumps(rows, allow_nan=False)


def test_model_that_loses_every_battle_is_finite_last_and_open_below() -> None:
    rows = rate_battles(["a"] * 500 + ["b"] * 500, ["c"] * 500 + ["c"] * 500,
                        ["model_a"] * 1000, config=RatingConfig(bootstrap_rounds=50))
    c = rows[-1]
    # a and b both beat c every time: both are shown above it
    assert c["model"] == "c" and c["rank"] == 3 and c["separated"]
    assert math.isfinite(c["rating"]) and c["rating"] < 1000 - 400
    # the data bound c from above only; the open side is None, never a point
    assert c["ci_low"] is None and c["ci_high"] >= c["rating"]
    assert c["ci_method"] == "profile"
    for top in rows[:2]:
        # a and b never met: each is unbounded above, and (as b may run away from a)
        # below too, against the mean; their ranks still say they beat c
        assert top["ci_high"] is None and top["ci_low"] is None and top["rank"] == 1


def test_edge_cases_never_crash() -> None:
    assert rate_battles([], [], []) == []
    solo = rate_battles([], [], [], models=["solo"])
    assert [(r["model"], r["rating"], r["battles"], r["rank"], r["unrated_reason"])
            for r in solo] == [("solo", None, 0, None, "no battles")]
    once = rate_battles(["a", "b", "b"], ["b", "c", "c"], ["model_a", "tie", "model_b"],
                        config=RatingConfig(bootstrap_rounds=100))
    assert {r["model"] for r in once} == {"a", "b", "c"}
    extra = rate_battles(["a"], ["b"], ["model_a"], models=["zz"],
                         config=RatingConfig(bootstrap_rounds=10))
    zz = next(r for r in extra if r["model"] == "zz")
    assert (zz["rating"], zz["ci_low"], zz["ci_high"], zz["rank"], zz["elo"],
            zz["battles"]) == (None,) * 5 + (0,)
    assert extra[-1]["model"] == "zz"  # unrated models come last, never ranked
    self_only = rate_battles(["a"], ["a"], ["model_a"])
    assert self_only[0]["battles"] == 0 and self_only[0]["rating"] is None
    for rows in (once, extra):
        json.dumps(rows, allow_nan=False)


def test_disconnected_components_are_each_centred() -> None:
    a = ["a"] * 20 + ["c"] * 20
    b = ["b"] * 20 + ["d"] * 20
    w = ["model_a"] * 15 + ["model_b"] * 5 + ["model_a"] * 10 + ["tie"] * 10
    r = ratings_of(rate_battles(a, b, w, config=RatingConfig(bootstrap_rounds=30)))
    assert all(math.isfinite(v) for v in r.values())
    assert r["a"] > r["b"] and r["c"] > r["d"]
    assert r["a"] + r["b"] == pytest.approx(2000.0) and r["c"] + r["d"] == pytest.approx(2000.0)


def test_board_rows_have_exact_keys_types_and_stats() -> None:
    rows = rate_battles(["a", "a", "b", "c"], ["b", "c", "a", "a"],
                        ["model_a", "tie (bothbad)", "tie", "model_a"],
                        config=RatingConfig(bootstrap_rounds=20))
    by = {r["model"]: r for r in rows}
    assert all(tuple(r) == BOARD_KEYS for r in rows)
    assert (by["a"]["battles"], by["a"]["wins"], by["a"]["losses"], by["a"]["ties"]) == (
        4, 1, 1, 2)
    assert (by["c"]["wins"], by["c"]["losses"], by["c"]["ties"]) == (1, 0, 1)
    assert [r["rating"] for r in rows] == sorted((r["rating"] for r in rows), reverse=True)
    for r in rows:
        assert type(r["model"]) is str and type(r["rank"]) is int
        assert all(type(r[k]) is float for k in ("rating", "ci_low", "ci_high", "elo"))
        assert all(type(r[k]) is int for k in ("battles", "wins", "losses", "ties"))


def test_winner_to_score_and_unknown_values() -> None:
    assert winner_to_score(list(WINNERS)).tolist() == [1.0, 0.0, 0.5, 0.5]
    with pytest.raises(AutojudgeError, match="'A'.*'draw'"):
        rate_battles(["x", "x", "x"], ["y", "y", "y"], ["A", "model_a", "draw"])
    with pytest.raises(AutojudgeError, match="length"):
        rate_battles(["x"], ["y", "z"], ["tie"])
    with pytest.raises(AutojudgeError, match="anchor"):
        rate_battles(["x"], ["y"], ["tie"], config=RatingConfig(anchor="nope"))
    with pytest.raises(AutojudgeError, match="prior"):
        rate_battles(["x"], ["y"], ["tie"], config=RatingConfig(prior=0.0))


def test_batched_fit_equals_single_fits() -> None:
    rng = np.random.default_rng(5)
    i, j = np.triu_indices(4, k=1)
    a = rng.integers(0, 30, (7, len(i))).astype(float)
    b = rng.integers(0, 30, (7, len(i))).astype(float)
    a[3] = 0.0  # one round with perfect separation
    batched = fit_strengths(i, j, a, b, 4)
    for r in range(7):
        assert batched[r] == pytest.approx(fit_strengths(i, j, a[r], b[r], 4), abs=1e-9)
    assert np.isfinite(batched).all()
    assert np.abs(batched.sum(axis=1)).max() < 1e-8
